"""Damaged local files: a record torn by a crash is cut off before the next write and never misread;
damage in the middle costs only the damaged record, reported in a warning, and reading goes on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from logship.drivers import local
from logship.drivers.local import framing, record
from logship.drivers.local.codec import LOCAL_RECORDS
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDOUT, Batch, Message
from logship.pipeline.readconfig import ReadConfig

T0 = 1_764_398_000_000_000_000

FIRST = Batch(STDOUT, T0 + 1, [b"a0", b"a1", b"a2"])
SECOND = Batch(STDOUT, T0 + 2, [b"b0", b"b1"])
# The last record carries the magic and a whole frame among its lines, as a container printing a local
# log would: a torn copy of it must not turn into messages.
EMBEDDED_FRAME = record.RecordEncoder({}).encode(Batch(STDOUT, T0, [b"not a message of ours"]))
LAST = Batch(STDOUT, T0 + 3, [b"c0", framing.MAGIC + b"c1", EMBEDDED_FRAME, b"c3"])
AFTER = Batch(STDOUT, T0 + 4, [b"d0"])


def container(tmp_path: Path, **opts: str) -> ContainerInfo:
    return ContainerInfo("f" * 64, "/c", config=opts, container_dir=str(tmp_path))


def log_file(tmp_path: Path) -> Path:
    return tmp_path / "local-logs" / "container.log"


def write(tmp_path: Path, batches: list[Batch], **opts: str) -> None:
    async def scenario() -> None:
        driver = await local.new(container(tmp_path, **opts))
        for batch in batches:
            await driver.log(batch)
        await driver.close()

    asyncio.run(scenario())


def read(tmp_path: Path, config: ReadConfig | None = None, **opts: str) -> list[Message]:
    async def scenario() -> list[Message]:
        driver = await local.new(container(tmp_path, **opts))
        messages = [m async for chunk in driver.read_logs(config or ReadConfig()) for m in chunk]
        await driver.close()
        return messages

    return asyncio.run(scenario())


def lines(messages: list[Message]) -> list[bytes]:
    return [m.line for m in messages]


def frame_starts(data: bytes) -> list[int]:
    return [start - framing.HEAD.size for start, _ in framing.scan(data, at_end=True).payloads]


@pytest.fixture
def three_records(tmp_path: Path) -> bytes:
    write(tmp_path, [FIRST, SECOND, LAST])
    data = log_file(tmp_path).read_bytes()
    assert len(frame_starts(data)) == 3
    return data


# A torn last record.


def test_a_torn_last_record_is_cut_off_at_open_and_writing_goes_on_after_the_last_whole_one(
    tmp_path: Path, three_records: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    last_start = frame_starts(three_records)[-1]
    for cut in range(last_start + 1, len(three_records)):
        log_file(tmp_path).write_bytes(three_records[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="logship.drivers.local"):
            assert lines(read(tmp_path)) == [*FIRST.lines, *SECOND.lines], f"cut at {cut}"
        assert log_file(tmp_path).stat().st_size == last_start
        assert f"ended in {cut - last_start} bytes that are not a whole record" in caplog.text
        write(tmp_path, [AFTER])
        assert lines(read(tmp_path)) == [*FIRST.lines, *SECOND.lines, *AFTER.lines], f"cut at {cut}"


def test_a_file_torn_in_its_first_record_starts_over_empty(tmp_path: Path, three_records: bytes) -> None:
    first_end = frame_starts(three_records)[1]
    for cut in range(1, first_end):
        log_file(tmp_path).write_bytes(three_records[:cut])
        assert read(tmp_path) == []
        assert log_file(tmp_path).stat().st_size == 0
    write(tmp_path, [AFTER])
    assert lines(read(tmp_path)) == AFTER.lines


def test_a_whole_file_is_left_alone(tmp_path: Path, three_records: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="logship.drivers.local"):
        assert lines(read(tmp_path)) == [*FIRST.lines, *SECOND.lines, *LAST.lines]
    assert log_file(tmp_path).read_bytes() == three_records
    assert caplog.records == []


def test_a_reader_meeting_a_torn_end_returns_only_whole_records_and_counts_the_damage(three_records: bytes) -> None:
    last_start = frame_starts(three_records)[-1]
    for cut in range(last_start + 1, len(three_records)):
        torn = three_records[:cut]
        assert LOCAL_RECORDS.complete_length(torn) == last_start
        messages, damaged = LOCAL_RECORDS.decode(torn[:last_start])
        assert lines(messages) == [*FIRST.lines, *SECOND.lines] and damaged == 0
        messages, damaged = LOCAL_RECORDS.decode(torn)
        assert lines(messages) == [*FIRST.lines, *SECOND.lines] and damaged == 1


# Damage in the middle of a file.


def damage_second_record(tmp_path: Path, data: bytes, offset_in_frame: int) -> None:
    """Flip one byte of the second frame, `offset_in_frame` bytes from its start (negative: from its end)."""
    starts = [*frame_starts(data), len(data)]
    position = (starts[1] if offset_in_frame >= 0 else starts[2]) + offset_in_frame
    damaged = bytearray(data)
    damaged[position] ^= 0x5A
    log_file(tmp_path).write_bytes(bytes(damaged))


@pytest.mark.parametrize(
    "offset_in_frame",
    [0, 3, 4, 6, 8, 9, 8 + 24, 8 + 24 + 6, -9, -8, -5, -4, -1],
    ids=[
        "magic",
        "magic-last-byte",
        "length",
        "length-high-byte",
        "record-version",
        "record-head",
        "stream",
        "line-lengths",
        "last-line",
        "crc",
        "crc-last-byte",
        "trailing-length",
        "trailing-length-high-byte",
    ],
)
def test_a_damaged_record_in_the_middle_is_skipped_alone_with_a_warning(
    tmp_path: Path, three_records: bytes, offset_in_frame: int, caplog: pytest.LogCaptureFixture
) -> None:
    damage_second_record(tmp_path, three_records, offset_in_frame)
    with caplog.at_level(logging.WARNING, logger="logship.drivers.local"):
        messages = read(tmp_path)
    assert lines(messages) == [*FIRST.lines, *LAST.lines]
    assert "undecodable record(s)" in caplog.text


@pytest.mark.parametrize("offset_in_frame", [4, -4, -8], ids=["length", "trailing-length", "crc"])
def test_tail_over_a_damaged_record_still_counts_the_last_messages(
    tmp_path: Path, three_records: bytes, offset_in_frame: int
) -> None:
    damage_second_record(tmp_path, three_records, offset_in_frame)
    assert lines(read(tmp_path, ReadConfig(tail=5))) == [b"a2", *LAST.lines]
    assert lines(read(tmp_path, ReadConfig(tail=100))) == [*FIRST.lines, *LAST.lines]


def test_garbage_between_records_is_skipped_even_when_it_holds_the_magic(
    tmp_path: Path, three_records: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    starts = frame_starts(three_records)
    garbage = b"\x00" * 7 + framing.MAGIC + b"\x10\x00\x00\x00junk" + framing.MAGIC[:3]
    log_file(tmp_path).write_bytes(three_records[: starts[1]] + garbage + three_records[starts[1] :])
    with caplog.at_level(logging.WARNING, logger="logship.drivers.local"):
        assert lines(read(tmp_path)) == [*FIRST.lines, *SECOND.lines, *LAST.lines]
        assert lines(read(tmp_path, ReadConfig(tail=5))) == [b"b1", *LAST.lines]
    assert "undecodable record(s)" in caplog.text


def test_a_damaged_length_never_makes_a_reader_wait_for_more_than_the_largest_record(three_records: bytes) -> None:
    huge = bytearray(three_records)
    huge[4:8] = (framing.MAX_PAYLOAD + 1).to_bytes(4, "little")
    # Not "a frame still being read": damage, decided now, and the frames after it are found.
    assert LOCAL_RECORDS.complete_length(bytes(huge)) == len(huge)
    messages, damaged = LOCAL_RECORDS.decode(bytes(huge))
    assert lines(messages) == [*SECOND.lines, *LAST.lines] and damaged == 1


def test_damage_spanning_many_chunks_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, [FIRST])
    noise = bytes(range(251)) * 12_000  # 3 MB without the magic: more than the reader's chunk
    with log_file(tmp_path).open("ab") as file:
        file.write(noise + record.RecordEncoder({}).encode(AFTER))
    assert lines(read(tmp_path)) == [*FIRST.lines, *AFTER.lines]
    assert lines(read(tmp_path, ReadConfig(tail=2))) == [b"a2", *AFTER.lines]


def test_noise_at_the_end_of_a_file_is_cut_off_like_a_torn_record(tmp_path: Path) -> None:
    write(tmp_path, [FIRST])
    size = log_file(tmp_path).stat().st_size
    with log_file(tmp_path).open("ab") as file:
        file.write(b"\x00" * 5000)  # what a power cut can leave: the size grew, the data never came
    write(tmp_path, [AFTER])
    assert log_file(tmp_path).stat().st_size == size + len(record.RecordEncoder({}).encode(AFTER))
    assert lines(read(tmp_path)) == [*FIRST.lines, *AFTER.lines]
