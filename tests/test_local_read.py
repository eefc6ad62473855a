"""Rotation, compression and reading back local logs: Docker's file names and counts, gzip files with
`lastTime`, and tail (counted in messages, though a record holds a batch), since and until over plain,
rotated and compressed files."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import struct
from pathlib import Path

import pytest

from logship.drivers import local
from logship.drivers.local import framing, record
from logship.drivers.util.timestamps import format_rfc3339nano
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, STDOUT, Batch, Message
from logship.pipeline.readconfig import ReadConfig

SECOND = 1_000_000_000
T0 = 1_764_398_000 * SECOND


def numbered(first: int, count: int, at: int | None = None) -> Batch:
    """Lines first..first+count-1 ("%08d"), stamped T0 + `at` (default: `first`) seconds."""
    return Batch(
        STDOUT, T0 + (first if at is None else at) * SECOND, [b"%08d" % n for n in range(first, first + count)]
    )


RECORD_SIZE = len(record.RecordEncoder({}).encode(numbered(0, 1)))  # a one-line record of these tests


def container(tmp_path: Path, **opts: str) -> ContainerInfo:
    return ContainerInfo("f" * 64, "/c", config=opts, container_dir=str(tmp_path))


def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "local-logs"


def write(tmp_path: Path, batches: list[Batch], **opts: str) -> None:
    async def scenario() -> None:
        driver = await local.new(container(tmp_path, **opts))
        for batch in batches:
            await driver.log(batch)
        await driver.close()

    asyncio.run(scenario())


def read(tmp_path: Path, config: ReadConfig, **opts: str) -> list[Message]:
    async def scenario() -> list[Message]:
        driver = await local.new(container(tmp_path, **opts))
        messages = [m async for chunk in driver.read_logs(config) for m in chunk]
        await driver.close()
        return messages

    return asyncio.run(scenario())


def files(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(log_dir(tmp_path)))


def numbers(messages: list[Message]) -> list[int]:
    return [int(m.line) for m in messages]


def numbers_in(data: bytes) -> list[int]:
    found = framing.scan(data, at_end=True)
    messages, bad = record.decode_records(data, found.payloads)
    assert bad == 0 and found.damaged == 0
    return numbers(messages)


# Rotation and compression.


def test_by_default_files_rotate_at_20_mib_keeping_five_compressed(tmp_path: Path) -> None:
    assert local.DEFAULT_ROTATION.max_size == 20 * 1024 * 1024
    assert (local.DEFAULT_ROTATION.max_files, local.DEFAULT_ROTATION.compress) == (5, True)
    big = [Batch(STDOUT, T0 + n, [b"%07d " % n + b"z" * 1_000_000]) for n in range(130)]  # about 130 MB
    write(tmp_path, big)
    assert files(tmp_path) == ["container.log", *(f"container.log.{n}.gz" for n in range(1, 5))]
    with gzip.open(log_dir(tmp_path) / "container.log.1.gz") as rotated:
        assert 20 * 1024 * 1024 <= len(rotated.read()) <= 20 * 1024 * 1024 + 1_000_100


def test_a_file_is_rotated_before_the_first_record_written_at_or_past_max_size(tmp_path: Path) -> None:
    # max-size of 10.5 records: a file takes 11 records (the 11th starts below max-size), then rotates.
    opts = {"max-size": str(RECORD_SIZE * 10 + RECORD_SIZE // 2), "compress": "false"}
    write(tmp_path, [numbered(n, 1) for n in range(25)], **opts)
    assert files(tmp_path) == ["container.log", "container.log.1", "container.log.2"]
    assert numbers_in((log_dir(tmp_path) / "container.log.2").read_bytes()) == list(range(0, 11))
    assert numbers_in((log_dir(tmp_path) / "container.log.1").read_bytes()) == list(range(11, 22))
    assert numbers_in((log_dir(tmp_path) / "container.log").read_bytes()) == list(range(22, 25))


def test_max_file_keeps_that_many_files_dropping_the_oldest(tmp_path: Path) -> None:
    opts = {"max-size": str(RECORD_SIZE * 10), "max-file": "3", "compress": "false"}
    write(tmp_path, [numbered(n, 1) for n in range(50)], **opts)
    assert files(tmp_path) == ["container.log", "container.log.1", "container.log.2"]
    assert numbers_in((log_dir(tmp_path) / "container.log.2").read_bytes()) == list(range(20, 30))


def test_max_file_one_starts_the_file_over(tmp_path: Path) -> None:
    opts = {"max-size": str(RECORD_SIZE * 10), "max-file": "1", "compress": "false"}
    write(tmp_path, [numbered(n, 1) for n in range(25)], **opts)
    assert files(tmp_path) == ["container.log"]
    assert numbers_in((log_dir(tmp_path) / "container.log").read_bytes()) == list(range(20, 25))


def test_max_size_zero_never_rotates(tmp_path: Path) -> None:
    write(tmp_path, [numbered(n, 1) for n in range(300)], **{"max-size": "0"})
    assert files(tmp_path) == ["container.log"]


def test_compressed_rotations_are_gzip_files_carrying_the_last_entry_time(tmp_path: Path) -> None:
    opts = {"max-size": str(RECORD_SIZE * 10), "max-file": "3"}  # compress is on by default
    write(tmp_path, [numbered(n, 1) for n in range(21)], **opts)
    assert files(tmp_path) == ["container.log", "container.log.1.gz", "container.log.2.gz"]
    with gzip.open(log_dir(tmp_path) / "container.log.2.gz") as older:
        assert numbers_in(older.read()) == list(range(10))
    data = (log_dir(tmp_path) / "container.log.1.gz").read_bytes()
    (extra_length,) = struct.unpack_from("<H", data, 10)
    assert data[12 : 12 + extra_length] == b'{"lastTime":"' + format_rfc3339nano(T0 + 19 * SECOND).encode() + b'"}'


def test_a_batch_of_several_records_is_cut_between_records_when_a_file_fills(tmp_path: Path) -> None:
    lines = [b"%08d" % n + b"w" * 400_000 for n in range(10)]  # 4 MB: five records of two lines
    opts = {"max-size": "1", "max-file": "9", "compress": "false"}
    write(tmp_path, [Batch(STDOUT, T0, lines)], **opts)
    assert files(tmp_path) == ["container.log", *(f"container.log.{n}" for n in range(1, 5))]
    for name in files(tmp_path):
        assert len(framing.scan((log_dir(tmp_path) / name).read_bytes(), at_end=True).payloads) == 1
    assert [m.line for m in read(tmp_path, ReadConfig(), **opts)] == lines


# Reading back: tail, since, until over plain, rotated and compressed files.

PER_RECORD = 7  # lines per batch, so per record: tail must count messages, not records


@pytest.fixture(params=["plain", "rotated", "compressed"])
def hundred_lines(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Lines 0..99 in batches of 7 (line n stamped T0 + n seconds, rounded down to its batch's first
    line), in one file, or spread over rotated files, plain or gzipped."""
    opts = {
        "plain": {"max-size": "0", "compress": "false"},
        "rotated": {"max-size": "200", "max-file": "20", "compress": "false"},
        "compressed": {"max-size": "200", "max-file": "20", "compress": "true"},
    }[request.param]
    write(tmp_path, [numbered(n, min(PER_RECORD, 100 - n)) for n in range(0, 100, PER_RECORD)], **opts)
    if request.param != "plain":
        assert len(files(tmp_path)) > 5
        assert any(name.endswith(".gz") for name in files(tmp_path)) == (request.param == "compressed")
    return opts


def test_all_lines_in_order(tmp_path: Path, hundred_lines: dict[str, str]) -> None:
    assert numbers(read(tmp_path, ReadConfig(), **hundred_lines)) == list(range(100))


@pytest.mark.parametrize("tail", [1, 3, 6, 7, 8, 10, 11, 55, 99, 100, 150])
def test_tail_gives_the_last_n_messages(tmp_path: Path, hundred_lines: dict[str, str], tail: int) -> None:
    expected = list(range(max(0, 100 - tail), 100))
    assert numbers(read(tmp_path, ReadConfig(tail=tail), **hundred_lines)) == expected


def test_tail_zero_gives_nothing(tmp_path: Path, hundred_lines: dict[str, str]) -> None:
    assert read(tmp_path, ReadConfig(tail=0), **hundred_lines) == []


def test_since_and_until_are_inclusive(tmp_path: Path, hundred_lines: dict[str, str]) -> None:
    # Batches start at 0, 7, 14, ...: since 42 s takes the batch stamped 42, until 57 s the one stamped 56.
    config = ReadConfig(since_ns=T0 + 42 * SECOND, until_ns=T0 + 56 * SECOND)
    assert numbers(read(tmp_path, config, **hundred_lines)) == list(range(42, 63))


def test_since_between_batches_starts_at_the_next_one(tmp_path: Path, hundred_lines: dict[str, str]) -> None:
    config = ReadConfig(since_ns=T0 + 84 * SECOND + 1)
    assert numbers(read(tmp_path, config, **hundred_lines)) == list(range(91, 100))


def test_tail_is_taken_before_since_and_until(tmp_path: Path, hundred_lines: dict[str, str]) -> None:
    config = ReadConfig(tail=10, since_ns=T0 + 91 * SECOND)
    assert numbers(read(tmp_path, config, **hundred_lines)) == list(range(91, 100))
    assert read(tmp_path, ReadConfig(tail=5, until_ns=T0 + 50 * SECOND), **hundred_lines) == []


def test_since_stops_filtering_after_the_first_message_it_lets_through(tmp_path: Path) -> None:
    times = [1, 5, 2, 7, 3]  # clocks can step back; Docker keeps everything after the first match
    write(tmp_path, [Batch(STDOUT, T0 + t * SECOND, [b"%d" % t]) for t in times])
    assert numbers(read(tmp_path, ReadConfig(since_ns=T0 + 4 * SECOND))) == [5, 2, 7, 3]
    assert numbers(read(tmp_path, ReadConfig(until_ns=T0 + 4 * SECOND))) == [1]


def test_tail_counts_across_both_streams_in_the_order_written(tmp_path: Path) -> None:
    write(tmp_path, [Batch(STDOUT, T0, [b"o1", b"o2"]), Batch(STDERR, T0 + 1, [b"e1"]), Batch(STDOUT, T0 + 2, [b"o3"])])
    messages = read(tmp_path, ReadConfig(tail=3))
    assert [(m.stream, m.line) for m in messages] == [(STDOUT, b"o2"), (STDERR, b"e1"), (STDOUT, b"o3")]


def test_tail_reaches_back_over_large_records(tmp_path: Path) -> None:
    big = [Batch(STDOUT, T0, [bytes([65 + n]) * 150_000]) for n in range(4)]
    write(tmp_path, [*big, numbered(0, 3)])
    messages = read(tmp_path, ReadConfig(tail=5))
    assert [len(m.line) for m in messages] == [150_000, 150_000, 8, 8, 8]


def test_a_gzip_file_ending_before_since_is_skipped_without_decompressing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    opts = {"max-size": str(RECORD_SIZE * 10), "max-file": "3"}
    write(tmp_path, [numbered(n, 1) for n in range(25)], **opts)
    older = log_dir(tmp_path) / "container.log.2.gz"
    data = older.read_bytes()
    header_end = 12 + struct.unpack_from("<H", data, 10)[0]
    older.write_bytes(data[:header_end] + b"\x00" * (len(data) - header_end))  # body destroyed
    with caplog.at_level(logging.WARNING):
        messages = read(tmp_path, ReadConfig(since_ns=T0 + 9 * SECOND + 1), **opts)
    assert numbers(messages) == list(range(10, 25))
    assert caplog.records == []
