"""json-file rotation and compression: Docker's sizes, names and gzip header, plus whole-line writes."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import resource
import signal
import stat
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from logship.drivers import jsonfile
from logship.drivers.jsonfile.driver import count_records, next_record
from logship.drivers.jsonfile.encode import BatchEncoder
from logship.drivers.util.logfile import LogFile, Rotation
from logship.drivers.util.timestamps import format_rfc3339nano
from logship.errors import LogshipError
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDOUT, Batch

T0 = 1_764_398_000_000_000_000
# Every record of these tests is exactly this long: {"log":"NNNNNNNN\n","stream":"stdout","time":"...Z"}\n
RECORD_SIZE = len(b'{"log":"00000000\\n","stream":"stdout","time":"2025-11-29T06:33:20.000000001Z"}\n')


def numbered(first: int, count: int) -> list[bytes]:
    return [b"%08d" % n for n in range(first, first + count)]


def batch(first: int, count: int, at: int = 1) -> Batch:
    """`count` numbered lines stamped T0+at: the stamp never has trailing zeros, so records keep one size."""
    return Batch(STDOUT, T0 + at, numbered(first, count))


def info(tmp_path: Path, **opts: str) -> ContainerInfo:
    return ContainerInfo("f" * 64, "/c", config=opts, log_path=str(tmp_path / "c-json.log"))


def write(tmp_path: Path, batches: list[Batch], **opts: str) -> None:
    async def scenario() -> None:
        driver = await jsonfile.new(info(tmp_path, **opts))
        for each in batches:
            await driver.log(each)
        await driver.close()

    asyncio.run(scenario())


def files(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(tmp_path))


def numbers_in(data: bytes) -> list[int]:
    return [int(orjson.loads(line)["log"]) for line in data.splitlines()]


def test_records_have_the_size_these_tests_assume() -> None:
    from logship.drivers.jsonfile.encode import BatchEncoder

    assert len(BatchEncoder({}).encode(batch(0, 1))) == RECORD_SIZE


def test_a_file_is_rotated_before_the_first_record_written_at_or_past_max_size(tmp_path: Path) -> None:
    # max-size of 10.5 records: a file takes 11 records (the 11th starts below max-size), then rotates.
    max_size = RECORD_SIZE * 10 + RECORD_SIZE // 2
    write(tmp_path, [batch(0, 25)], **{"max-size": str(max_size), "max-file": "5"})
    assert files(tmp_path) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert numbers_in((tmp_path / "c-json.log.2").read_bytes()) == list(range(0, 11))
    assert numbers_in((tmp_path / "c-json.log.1").read_bytes()) == list(range(11, 22))
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == list(range(22, 25))


def test_a_file_reaching_max_size_exactly_rotates_before_the_next_record(tmp_path: Path) -> None:
    write(tmp_path, [batch(0, 21)], **{"max-size": str(RECORD_SIZE * 10), "max-file": "5"})
    assert (tmp_path / "c-json.log.2").stat().st_size == RECORD_SIZE * 10
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == [20]


def test_batching_does_not_change_where_files_are_cut(tmp_path: Path) -> None:
    opts = {"max-size": str(RECORD_SIZE * 7 + 5), "max-file": "9"}
    one_batch, per_record = tmp_path / "one", tmp_path / "per-record"
    one_batch.mkdir()
    per_record.mkdir()
    write(one_batch, [batch(0, 40)], **opts)
    write(per_record, [batch(n, 1) for n in range(40)], **opts)
    assert files(one_batch) == files(per_record)
    for name in files(one_batch):
        assert (one_batch / name).read_bytes() == (per_record / name).read_bytes()


def test_max_file_keeps_that_many_files_dropping_the_oldest(tmp_path: Path) -> None:
    # Five files' worth: the fifth is full but only rotates when a next record comes.
    write(tmp_path, [batch(0, 50)], **{"max-size": str(RECORD_SIZE * 10), "max-file": "3"})
    assert files(tmp_path) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert numbers_in((tmp_path / "c-json.log.2").read_bytes()) == list(range(20, 30))
    assert numbers_in((tmp_path / "c-json.log.1").read_bytes()) == list(range(30, 40))
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == list(range(40, 50))


def test_max_file_one_starts_the_file_over(tmp_path: Path) -> None:
    write(tmp_path, [batch(0, 25)], **{"max-size": str(RECORD_SIZE * 10)})
    assert files(tmp_path) == ["c-json.log"]
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == list(range(20, 25))


def test_without_max_size_the_file_grows_forever(tmp_path: Path) -> None:
    write(tmp_path, [batch(0, 1000)], **{"max-file": "3"})
    assert files(tmp_path) == ["c-json.log"]
    assert len(numbers_in((tmp_path / "c-json.log").read_bytes())) == 1000


def test_a_restarted_container_appends_to_its_log(tmp_path: Path) -> None:
    write(tmp_path, [batch(0, 3)])
    write(tmp_path, [batch(3, 2)])
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == [0, 1, 2, 3, 4]


def test_rotation_counts_what_the_file_held_before_a_restart(tmp_path: Path) -> None:
    opts = {"max-size": str(RECORD_SIZE * 10), "max-file": "3"}
    write(tmp_path, [batch(0, 10)], **opts)
    write(tmp_path, [batch(10, 1)], **opts)
    assert numbers_in((tmp_path / "c-json.log.1").read_bytes()) == list(range(10))
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == [10]


def test_the_log_file_is_created_with_mode_0640(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        write(tmp_path, [batch(0, 1)], **{"max-size": str(RECORD_SIZE), "max-file": "2"})
        write(tmp_path, [batch(1, 1)], **{"max-size": str(RECORD_SIZE), "max-file": "2"})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "c-json.log").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "c-json.log.1").stat().st_mode) == 0o640


def test_a_write_on_the_event_loop_rotates_but_never_waits_for_a_compression(tmp_path: Path) -> None:
    # write_if_quick runs on the event loop: a rotation is a few renames and happens there, but one that
    # would wait for the previous compression declines (writing nothing) and is left to a thread.
    path = str(tmp_path / "c-json.log")
    rotation = Rotation(max_size=RECORD_SIZE * 3, max_files=2, compress=True)
    file = LogFile(path, rotation, next_record, count_records, logging.getLogger("test"))
    encoder = BatchEncoder({})
    assert file.write_if_quick(encoder.encode(batch(0, 4)), T0)  # rotates after the third record
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == [3]
    compression = file._compression
    assert compression is not None
    compression.join()
    release = threading.Event()
    file._compression = threading.Thread(target=release.wait)  # a compression that is still running
    file._compression.start()
    assert file.write_if_quick(encoder.encode(batch(4, 1)), T0)  # no rotation due: written on the spot
    assert not file.write_if_quick(encoder.encode(batch(5, 2)), T0)  # would rotate, so wait for gzip
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == [3, 4]
    release.set()
    file._compression.join()
    assert file.write_if_quick(encoder.encode(batch(5, 2)), T0)
    file.close()
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == [6]
    with gzip.open(tmp_path / "c-json.log.1.gz") as rotated:
        assert numbers_in(rotated.read()) == [3, 4, 5]


def test_writing_after_close_fails_with_dockers_text(tmp_path: Path) -> None:
    async def scenario() -> None:
        driver = await jsonfile.new(info(tmp_path))
        await driver.close()
        with pytest.raises(LogshipError, match="cannot write because the output file was closed"):
            await driver.log(batch(0, 1))

    asyncio.run(scenario())


# Compression.


def gzip_header(path: Path) -> tuple[bytes, bytes]:
    """(the 10 fixed header bytes, the FEXTRA field)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<H", data[10:12])
    return data[:10], data[12 : 12 + length]


def test_compressed_rotations_are_gzip_files_carrying_the_last_entry_time(tmp_path: Path) -> None:
    opts = {"max-size": str(RECORD_SIZE * 10), "max-file": "3", "compress": "true"}
    write(tmp_path, [batch(0, 10, at=1), batch(10, 10, at=2), batch(20, 1, at=3)], **opts)
    assert files(tmp_path) == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    with gzip.open(tmp_path / "c-json.log.2.gz") as older, gzip.open(tmp_path / "c-json.log.1.gz") as newer:
        assert numbers_in(older.read()) == list(range(10))
        assert numbers_in(newer.read()) == list(range(10, 20))
    fixed, extra = gzip_header(tmp_path / "c-json.log.1.gz")
    assert fixed == b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"  # FEXTRA, mtime 0, XFL 0, OS 255, as Go writes
    assert extra == b'{"lastTime":"' + format_rfc3339nano(T0 + 2).encode() + b'"}'
    assert gzip_header(tmp_path / "c-json.log.2.gz")[1] == b'{"lastTime":"2025-11-29T06:33:20.000000001Z"}'


def test_our_gzip_header_is_laid_out_like_dockers() -> None:
    sample = Path(__file__).parent / "fixtures/docker-samples/rotation"
    docker_gz = next(sample.glob("*.1.gz"))
    fixed, extra = gzip_header(docker_gz)
    assert fixed == b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"
    assert extra == b'{"lastTime":"2026-11-29T06:47:01.474533271Z"}'


# A write that fails leaves whole lines only.


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Limit the size of files this process writes (a real EFBIG from the kernel), then lift it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_write_leaves_no_torn_line(tmp_path: Path) -> None:
    limit = 10_000

    async def scenario() -> None:
        driver = await jsonfile.new(info(tmp_path))
        await driver.log(batch(0, 10))
        with file_size_limit(limit), pytest.raises(LogshipError, match=r"^error writing log entry: "):
            await driver.log(batch(10, limit // RECORD_SIZE))  # crosses the limit part way through
        await driver.log(batch(500, 1))  # and the file is still usable afterwards
        await driver.close()

    asyncio.run(scenario())
    assert numbers_in((tmp_path / "c-json.log").read_bytes()) == [*range(10), 500]
