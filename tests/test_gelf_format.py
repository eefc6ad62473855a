"""The gelf driver's messages are Docker's, byte for byte: each recorded message
(tests/fixtures/docker-samples/syslog-gelf, decompressed and reassembled) is encoded again from the same
container and line and must come out identical; UDP chunks have Docker's layout, compression is what the
options ask for, and options are checked with Docker's messages."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import zlib

import pytest

from logship.drivers.gelf.encode import CHUNK_SIZE, Datagrams, GelfEncoder, chunks, extras, gelf_timestamp, tcp_frames
from logship.drivers.gelf.options import parse_config, validate_options
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch, PartialMeta
from tests.syslog_gelf_samples import GELF_CASES, SAMPLES, datagrams, gelf_messages, transport


def container_of(case: str) -> ContainerInfo:
    """The recorded container, as logship's ContainerInfo: same id, name, image, command, labels, env."""
    opts, run_args, command = GELF_CASES[case]
    first = json.loads(gelf_messages(case)[0])
    labels = dict(a.split("=", 1) for f, a in itertools.pairwise(run_args) if f == "--label")
    env = tuple(a for f, a in itertools.pairwise(run_args) if f == "-e")
    return ContainerInfo(
        container_id=first["_container_id"],
        container_name="/" + first["_container_name"],
        config={"gelf-address": f"{transport(case)}://127.0.0.1:12201", **opts},
        entrypoint=command[0],
        args=tuple(command[1:]),
        image_id=first["_image_id"],
        image_name=first["_image_name"],
        created_ns=parse_rfc3339nano(first["_created"]),
        env=env,
        labels=labels,
    )


@pytest.mark.parametrize("case", sorted(GELF_CASES))
def test_each_recorded_message_is_encoded_again_byte_for_byte(case: str) -> None:
    info = container_of(case)
    for raw in gelf_messages(case):
        message = json.loads(raw)
        encoder = GelfEncoder(message["host"], extras(info, message["_tag"]))
        stream = "stderr" if message["level"] == 3 else "stdout"
        when = round(message["timestamp"] * 1000) * 1_000_000
        if "\ufffd" in message["short_message"]:  # Docker had the invalid bytes \xff\xfe there
            line = message["short_message"].replace("\ufffd\ufffd", "\udcff\udcfe").encode("utf-8", "surrogateescape")
        else:
            line = message["short_message"].encode()
        assert encoder.messages(Batch(stream, when, [line])) == [raw]


def test_the_tag_defaults_to_the_short_id_and_a_template_is_rendered_as_docker_does() -> None:
    (raw,) = gelf_messages("gelf_udp_zlib")
    assert json.loads(raw)["_tag"] == json.loads(raw)["_container_id"][:12]
    assert json.loads(gelf_messages("gelf_tcp")[0])["_tag"] == "s_gelf_tcp"


def test_a_batch_of_a_read_gives_docker_s_messages_empty_lines_left_out_pieces_separate() -> None:
    info = container_of("gelf_tcp_specials")
    recorded = gelf_messages("gelf_tcp_specials")
    first = json.loads(recorded[0])
    encoder = GelfEncoder(first["host"], extras(info, first["_tag"]))
    when = round(first["timestamp"] * 1000) * 1_000_000
    lines = [b"bad:\xff\xfe|tab:\t|cr:\r|end", b"", b"", b"after-empty"]
    assert encoder.messages(Batch("stdout", when, lines)) == recorded
    assert tcp_frames(recorded) == (SAMPLES / "gelf_tcp_specials.tcp-stream").read_bytes()
    plain = Batch.of_text("stdout", when, b"one\ntwo <&>", 2)
    assert encoder.messages(plain) == encoder.messages(Batch("stdout", when, [b"one", b"two <&>"]))
    assert b'"short_message":"two \\u003c\\u0026\\u003e"' in encoder.messages(plain)[1]
    pieces = Batch(
        "stdout", when, [b"a" * 16384, b"a" * 3616], {0: PartialMeta("p", 1, False), 1: PartialMeta("p", 2, True)}
    )
    assert [len(json.loads(m)["short_message"]) for m in encoder.messages(pieces)] == [16384, 3616]


def test_timestamps_are_seconds_with_millisecond_decimals_printed_as_go_prints_a_float() -> None:
    assert gelf_timestamp(1_796_607_556_350_123_456) == b"1796607556.35"
    assert gelf_timestamp(1_796_607_556_000_999_999) == b"1796607556"
    assert gelf_timestamp(1_796_607_555_534_000_000) == b"1796607555.534"


def test_udp_chunks_have_docker_s_layout() -> None:
    recorded = datagrams("gelf_udp_long20000")  # two messages (16,384 + 3,616 bytes), uncompressed
    by_id: dict[bytes, list[bytes]] = {}
    for datagram in recorded:
        by_id.setdefault(datagram[2:10], []).append(datagram)
    for ident, parts in by_id.items():
        data = b"".join(part[12:] for part in parts)
        assert chunks(data, ident) == parts
        assert [part[10] for part in parts] == list(range(len(parts))) and {part[11] for part in parts} == {len(parts)}
    assert [len(parts) for parts in by_id.values()] == [12, 3]
    # go-gelf's count: a length that is a multiple of 1,408 ends with an empty chunk.
    assert [len(c) for c in chunks(b"x" * 2816, b"12345678")] == [1420, 1420, 12]
    with pytest.raises(ValueError, match="would need 129 chunks"):
        chunks(b"x" * (128 * 1408))


@pytest.mark.parametrize(("kind", "level", "open_"), [("gzip", 1, gzip.decompress), ("zlib", 9, zlib.decompress)])
def test_udp_messages_are_compressed_as_asked(kind: str, level: int, open_: object) -> None:
    message = b'{"version":"1.1","short_message":"' + b"x" * 5000 + b'"}'
    (datagram,) = Datagrams(kind, level).datagrams([message])
    assert len(datagram) <= CHUNK_SIZE and callable(open_) and open_(datagram) == message
    # What a GELF server looks for: gzip's magic, or zlib's 0x78 (a 32 KiB window) and a valid check.
    assert (
        datagram[:2] == b"\x1f\x8b"
        if kind == "gzip"
        else datagram[0] == 0x78 and int.from_bytes(datagram[:2]) % 31 == 0
    )
    assert Datagrams("none", 1).datagrams([b"{}"]) == [b"{}"]
    parts = Datagrams("none", 1).datagrams([message])
    assert [p[:2] for p in parts] == [b"\x1e\x0f"] * 4


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({}, "gelf-address is a required parameter"),
        ({"gelf-address": "127.0.0.1:12201"}, "gelf-address should be in form proto://address, got 127.0.0.1:12201"),
        ({"gelf-address": "unix:///x"}, "gelf: endpoint needs to be TCP or UDP"),
        ({"gelf-address": "udp://127.0.0.1"}, "gelf: please provide gelf-address as proto://host:port"),
        ({"gelf-address": "udp://h:1", "gelf-bogus": "1"}, 'unknown log opt "gelf-bogus" for gelf log driver'),
        ({"gelf-address": "tcp://h:1", "gelf-compression-type": "gzip"}, "compression is only supported on UDP"),
        (
            {"gelf-address": "udp://h:1", "gelf-compression-type": "lz4"},
            'unknown value "lz4" for log opt "gelf-compression-type" for gelf log driver',
        ),
        (
            {"gelf-address": "udp://h:1", "gelf-compression-level": "10"},
            'unknown value "10" for log opt "gelf-compression-level" for gelf log driver',
        ),
        (
            {"gelf-address": "udp://h:1", "gelf-tcp-max-reconnect": "3"},
            '"gelf-tcp-max-reconnect" is only valid for TCP',
        ),
        (
            {"gelf-address": "tcp://h:1", "gelf-tcp-reconnect-delay": "-1"},
            '"gelf-tcp-reconnect-delay" must be a positive integer',
        ),
    ],
)
def test_bad_options_are_refused_with_docker_s_message(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        validate_options(opts)


def test_docker_s_defaults() -> None:
    config = parse_config({"gelf-address": "udp://127.0.0.1:12201"})
    assert (config.compression, config.compression_level) == ("gzip", 1)
    assert parse_config({"gelf-address": "tcp://h:1", "gelf-tcp-max-reconnect": "0"}).max_reconnect == 0
