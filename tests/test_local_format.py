"""The local format: every field of every message comes back exactly as it was logged, and the frames
on disk are laid out as `drivers/local/framing.py` documents."""

from __future__ import annotations

import asyncio
import os
import stat
import struct
import zlib
from pathlib import Path

import pytest

from logship.drivers import local
from logship.drivers.local import framing, record
from logship.errors import LogshipError
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, STDOUT, Batch, Message, PartialMeta
from logship.pipeline.readconfig import ReadConfig

T0 = 1_764_398_000_123_456_789


def container(tmp_path: Path, **opts: str) -> ContainerInfo:
    return ContainerInfo("f" * 64, "/c", config=opts, container_dir=str(tmp_path), labels={"team": "a"})


def log_file(tmp_path: Path) -> Path:
    return tmp_path / "local-logs" / "container.log"


def round_trip(tmp_path: Path, batches: list[Batch], **opts: str) -> list[Message]:
    async def scenario() -> list[Message]:
        writer = await local.new(container(tmp_path, **opts))
        for batch in batches:
            await writer.log(batch)
        await writer.close()
        reader = await local.new(container(tmp_path, **opts))  # a fresh instance, as for a stopped container
        messages = [message async for chunk in reader.read_logs(ReadConfig()) for message in chunk]
        await reader.close()
        return messages

    return asyncio.run(scenario())


def test_stream_and_nanosecond_timestamp_come_back(tmp_path: Path) -> None:
    messages = round_trip(
        tmp_path, [Batch(STDOUT, T0, [b"out"]), Batch(STDERR, T0 + 1, [b"err"]), Batch(STDOUT, 0, [b"epoch"])]
    )
    assert messages == [
        Message(b"out", STDOUT, T0),
        Message(b"err", STDERR, T0 + 1),
        Message(b"epoch", STDOUT, 0),
    ]


def test_lines_come_back_byte_for_byte_whatever_they_hold(tmp_path: Path) -> None:
    lines = [
        b"",
        b"nul\x00inside",
        b"invalid utf-8 \xff\xfe\xc3",
        b"a newline \n and a carriage return \r inside",
        b'\xe2\x80\xa8 U+2028, \\ and " and <&>',
        b"",
        bytes(range(256)),
        b"x" * (1024 * 1024),  # a 1 MiB line
        b"last, without newline",
    ]
    messages = round_trip(tmp_path, [Batch(STDOUT, T0, lines)])
    assert [m.line for m in messages] == lines
    assert all(m.partial is None and m.stream == STDOUT and m.timestamp_ns == T0 for m in messages)


def test_partial_metadata_of_every_piece_comes_back_including_an_eof_piece(tmp_path: Path) -> None:
    pieces = {
        0: PartialMeta("4f2a", 1, False),
        1: PartialMeta("4f2a", 2, False),
        2: PartialMeta("4f2a", 3, True),
        4: PartialMeta("b711", 1, False),  # cut short by EOF: no last piece ever comes
    }
    batch = Batch(STDOUT, T0, [b"a" * 16384, b"b" * 16384, b"c", b"whole", b"eof piece"], pieces)
    messages = round_trip(tmp_path, [batch])
    assert [m.partial for m in messages] == [pieces[0], pieces[1], pieces[2], None, pieces[4]]
    assert [m.ends_line for m in messages] == [False, False, True, True, False]


def test_attributes_are_stored_with_every_message(tmp_path: Path) -> None:
    batches = [Batch(STDOUT, T0, [b"one", b"two"]), Batch(STDERR, T0, [b"three"])]
    messages = round_trip(tmp_path, batches, labels="team", tag="{{.Name}}")
    assert [m.attrs for m in messages] == [{"team": "a", "tag": "c"}] * 3


def test_without_attributes_messages_have_none(tmp_path: Path) -> None:
    [message] = round_trip(tmp_path, [Batch(STDOUT, T0, [b"plain"])])
    assert message.attrs is None


def test_attributes_with_bytes_that_are_not_utf8_keep_them(tmp_path: Path) -> None:
    attrs = {"k\udcff": "v\udcfe", "é": "ünïcode", "": ""}
    encoder = record.RecordEncoder(attrs)
    blob = encoder.encode(Batch(STDOUT, T0, [b"x"]))
    found = framing.scan(blob, at_end=True)
    [message], bad = record.decode_records(blob, found.payloads)
    assert bad == 0 and message.attrs == attrs


def test_a_batch_larger_than_a_record_is_split_and_reads_back_whole(tmp_path: Path) -> None:
    lines = [b"%07d " % n + b"y" * 92 for n in range(25_000)]  # 2.5 MB: three records
    pieces = {12_345: PartialMeta("id", 1, False), 24_999: PartialMeta("eof", 1, False)}
    blob = record.RecordEncoder({}).encode(Batch(STDOUT, T0, lines, pieces))
    assert len(framing.scan(blob, at_end=True).payloads) == 3
    messages = round_trip(tmp_path, [Batch(STDOUT, T0, lines, pieces)])
    assert [m.line for m in messages] == lines
    assert {i: m.partial for i, m in enumerate(messages) if m.partial} == pieces


def test_a_frame_is_magic_length_payload_crc_length() -> None:
    blob = record.RecordEncoder({"tag": "t"}).encode(Batch(STDERR, T0, [b"hello", b""]))
    magic, length = struct.unpack_from("<4sI", blob)
    payload = blob[8 : 8 + length]
    checksum, trailing = struct.unpack_from("<II", blob, 8 + length)
    assert magic == b"\xffLSF" and len(blob) == length + 16
    assert trailing == length and checksum == zlib.crc32(payload)
    # The payload: head, stream, line lengths, (no partial entries), attrs, lines.
    version, flags, stream_length, timestamp, count, partials, attrs_length = struct.unpack_from("<BBHqIII", payload)
    assert (version, flags, stream_length, timestamp, count, partials) == (1, 0, 6, T0, 2, 0)
    rest = payload[24:]
    assert rest[:6] == b"stderr" and struct.unpack_from("<II", rest, 6) == (5, 0)
    assert rest[14 : 14 + attrs_length] == b"\x03\x00\x00\x00tag\x01\x00\x00\x00t"
    assert rest[14 + attrs_length :] == b"hello"


def test_a_line_holding_the_magic_is_stored_escaped_so_only_real_frames_start_with_it(tmp_path: Path) -> None:
    inner = record.RecordEncoder({}).encode(Batch(STDOUT, T0, [b"a frame printed by the container"]))
    lines = [b"before", inner, b"\xff\x00\xff" + framing.MAGIC + b"\xff", b"after \xff"]
    blob = record.RecordEncoder({}).encode(Batch(STDOUT, T0, lines))
    assert blob.count(framing.MAGIC) == 1
    assert [m.line for m in round_trip(tmp_path, [Batch(STDOUT, T0, lines)])] == lines


def test_rotation_cuts_a_multi_record_blob_only_between_frames() -> None:
    blob = b"".join(record.RecordEncoder({}).encode(Batch(STDOUT, T0, [b"n" * n])) for n in (10, 20, 30))
    starts = [0, *(end + 8 for _, end in framing.scan(blob, at_end=True).payloads)]
    assert starts[-1] == len(blob)
    for index in range(len(blob) + 1):
        assert framing.next_frame(blob, index) == min(s for s in starts if s >= index)


def test_a_line_too_large_for_a_record_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        driver = await local.new(container(tmp_path))
        with pytest.raises(LogshipError, match=r"^error writing log entry: a record of \d+ bytes is larger than"):
            await driver.log(Batch(STDOUT, T0, [b"z" * (framing.MAX_PAYLOAD + 1)]))
        await driver.log(Batch(STDOUT, T0, [b"fine"]))
        await driver.close()

    asyncio.run(scenario())
    assert [m.line for m in round_trip(tmp_path, [])] == [b"fine"]


def test_the_log_lives_in_the_container_directory_with_dockers_name_and_modes(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        round_trip(tmp_path, [Batch(STDOUT, T0, [b"x"])])
    finally:
        os.umask(old_umask)
    assert sorted(os.listdir(tmp_path)) == ["local-logs"]
    assert os.listdir(tmp_path / "local-logs") == ["container.log"]
    assert stat.S_IMODE((tmp_path / "local-logs").stat().st_mode) == 0o700
    assert stat.S_IMODE(log_file(tmp_path).stat().st_mode) == 0o640


def test_a_restarted_container_appends_to_its_log(tmp_path: Path) -> None:
    round_trip(tmp_path, [Batch(STDOUT, T0, [b"first run"])])
    messages = round_trip(tmp_path, [Batch(STDOUT, T0 + 1, [b"second run"])])
    assert [m.line for m in messages] == [b"first run", b"second run"]


def test_open_local_keeps_a_log_at_any_path_with_the_rotation_given(tmp_path: Path) -> None:
    path = tmp_path / "container-cached.log"
    rotation = local.DEFAULT_ROTATION

    async def scenario() -> list[Message]:
        driver = await local.open_local(str(path), rotation, {"tag": "cached"})
        await driver.log(Batch(STDOUT, T0, [b"cached line"]))
        messages = [m async for chunk in driver.read_logs(ReadConfig()) for m in chunk]
        await driver.close()
        return messages

    assert asyncio.run(scenario()) == [Message(b"cached line", STDOUT, T0, None, {"tag": "cached"})]
    assert sorted(os.listdir(tmp_path)) == ["container-cached.log"]


def test_local_is_much_smaller_than_json_file_would_be_for_short_lines() -> None:
    from logship.drivers.jsonfile.encode import BatchEncoder

    batch = Batch(STDOUT, T0, [b"%06d" % n for n in range(1000)])
    assert len(record.RecordEncoder({}).encode(batch)) * 5 < len(BatchEncoder({}).encode(batch))
