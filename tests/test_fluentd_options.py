"""fluentd's options and addresses are checked at create time with Docker's texts, and records are
encoded as Docker's driver sends them."""

from __future__ import annotations

import re

import msgpack
import pytest

from logship.drivers.fluentd.encode import RecordEncoder, forward_message
from logship.drivers.fluentd.options import Address, parse_address, parse_config, validate_options
from logship.drivers.fluentd.retry import backoff_s
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch, PartialMeta


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("", Address("tcp", "127.0.0.1", 24224)),
        ("fluent", Address("tcp", "fluent", 24224)),
        ("fluent:24000", Address("tcp", "fluent", 24000)),
        ("tcp://10.0.0.1:5170", Address("tcp", "10.0.0.1", 5170)),
        ("tcp://:5170", Address("tcp", "127.0.0.1", 5170)),
        ("tls://logs.example.com", Address("tls", "logs.example.com", 24224)),
        ("[::1]:24225", Address("tcp", "::1", 24225)),
        ("unix:///var/run/fluent.sock", Address("unix", path="/var/run/fluent.sock")),
    ],
)
def test_every_docker_address_form_parses(text: str, address: Address) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("udp://127.0.0.1:24224", "invalid fluentd-address (udp://127.0.0.1:24224): unsupported scheme: 'udp'"),
        ("tcp://127.0.0.1:24224/path", "should not contain a path element"),
        ("unix://", "invalid fluentd-address (unix://): path is empty"),
        ("tcp://127.0.0.1:99999", "invalid port"),
    ],
)
def test_bad_addresses_give_dockers_errors(text: str, error: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(error)):
        validate_options({"fluentd-address": text})


@pytest.mark.parametrize(
    ("opts", "error"),
    [
        ({"fluentd-async-connect": "true"}, "unknown log opt 'fluentd-async-connect' for fluentd log driver"),
        ({"fluentd-async": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
        ({"fluentd-retry-wait": "soon"}, 'time: invalid duration "soon"'),
        ({"fluentd-max-retries": "4294967295"}, "invalid fluentd-max-retries: value out of range"),
        ({"fluentd-max-retries": "-1"}, 'strconv.ParseUint: parsing "-1": invalid syntax'),
        ({"fluentd-write-timeout": "x"}, "invalid value for fluentd-write-timeout: value must be a duration"),
        ({"fluentd-write-timeout": "-1s"}, "value must be a duration that is non-negative"),
        ({"fluentd-buffer-limit": "lots"}, "invalid size: 'lots'"),
        ({"fluentd-async-reconnect-interval": "20s"}, r'value \("20s"\) must be between 100ms and 10s'),
    ],
)
def test_option_values_are_checked_at_create_with_dockers_texts(opts: dict[str, str], error: str) -> None:
    with pytest.raises(InvalidParameter, match=error):
        validate_options(opts)


def test_defaults_and_units() -> None:
    config = parse_config({})
    assert config.buffer_limit == 8 << 20 and config.retry_wait_s == 1.0 and config.max_retries == 2**31 - 1
    assert not config.async_connect and not config.request_ack and not config.sub_second_precision
    assert parse_config({"fluentd-buffer-limit": "1m"}).buffer_limit == 1 << 20  # binary, as RAMInBytes
    assert parse_config({"fluentd-retry-wait": "250ms"}).retry_wait_s == 0.25


def test_backoff_grows_by_half_and_is_capped() -> None:
    assert [backoff_s(1.0, n) for n in (1, 2, 3)] == [1.0, 1.5, 2.25]
    assert backoff_s(1.0, 10_000) == 60.0


def decode(entries: bytes) -> list[list[object]]:
    unpacker = msgpack.Unpacker(raw=True)
    unpacker.feed(entries)
    return list(unpacker)


INFO = ContainerInfo("f" * 64, "/web", labels={"team": "logs", "log": "hijack"})


def test_records_carry_dockers_fields_and_attributes_never_replace_them() -> None:
    encoder = RecordEncoder(INFO, {"team": "logs", "log": "hijack"}, sub_second=False)
    (entry,) = decode(encoder.entries(Batch("stderr", 1_700_000_000_123_456_789, [b"bad\xffline"])))
    timestamp, record = entry
    assert timestamp == 1_700_000_000
    assert record == {
        b"container_id": b"f" * 64,
        b"container_name": b"/web",
        b"source": b"stderr",
        b"team": b"logs",
        b"log": b"bad\xffline",
    }


def test_sub_second_precision_sends_an_event_time_with_nanoseconds() -> None:
    encoder = RecordEncoder(INFO, {}, sub_second=True)
    ((timestamp, _),) = decode(encoder.entries(Batch("stdout", 1_700_000_000_123_456_789, [b"x"])))
    assert timestamp == msgpack.ExtType(0, (1_700_000_000).to_bytes(4, "big") + (123_456_789).to_bytes(4, "big"))


def test_pieces_of_long_lines_carry_partial_fields() -> None:
    encoder = RecordEncoder(INFO, {}, sub_second=False)
    batch = Batch(
        "stdout",
        0,
        [b"a" * 70000, b"b", b"whole"],
        {0: PartialMeta("p" * 64, 1, False), 1: PartialMeta("p" * 64, 2, True)},
    )
    records = [record for _, record in decode(encoder.entries(batch))]
    assert records[0][b"log"] == b"a" * 70000
    assert [(r.get(b"partial_ordinal"), r.get(b"partial_last"), r.get(b"partial_message")) for r in records] == [
        (b"1", b"false", b"true"),
        (b"2", b"true", b"true"),
        (None, None, None),
    ]
    assert records[0][b"partial_id"] == b"p" * 64


def test_mixed_line_lengths_encode_like_uniform_ones() -> None:
    encoder = RecordEncoder(INFO, {}, sub_second=False)
    lines = [b"", b"x" * 31, b"y" * 32, b"z" * 255, b"w" * 256, b"v" * 65536]
    assert [r[b"log"] for _, r in decode(encoder.entries(Batch("stdout", 0, lines)))] == lines


def test_batches_go_out_as_one_packed_forward_message_with_size_and_chunk() -> None:
    encoder = RecordEncoder(INFO, {}, sub_second=False)
    entries = [encoder.entries(Batch("stdout", 0, [b"1", b"2", b"3"])), encoder.entries(Batch("stderr", 0, [b"4"]))]
    tag, packed, option = msgpack.unpackb(forward_message(msgpack.packb("web"), entries, 4, "Y2h1bms="), raw=False)
    assert tag == "web" and isinstance(packed, bytes) and option == {"size": 4, "chunk": "Y2h1bms="}
    assert [record[b"log"] for _, record in decode(packed)] == [b"1", b"2", b"3", b"4"]
