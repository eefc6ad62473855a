"""Reading json-file logs back: what `docker logs` showed, tail/since/until across rotated and gzipped
files, Docker's own rotated files, and damaged records."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import logging
import shutil
from pathlib import Path

import orjson
import pytest

from logship.drivers import jsonfile
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, STDOUT, Batch, Message, PartialMeta
from logship.pipeline.readconfig import ReadConfig

SAMPLES = Path(__file__).parent / "fixtures" / "docker-samples"
ROTATION = SAMPLES / "rotation"
ROTATION_ID = "dbac4d9ede104b984a83a551950f191470316ffb8ec5214450c1f7ee08f1472a"
SECOND = 1_000_000_000
T0 = 1_764_398_000 * SECOND


def info(log_path: Path, **opts: str) -> ContainerInfo:
    return ContainerInfo("f" * 64, "/c", config=opts, log_path=str(log_path))


def read(log_path: Path, config: ReadConfig, **opts: str) -> list[Message]:
    async def scenario() -> list[Message]:
        driver = await jsonfile.new(info(log_path, **opts))
        messages = [message async for chunk in driver.read_logs(config) for message in chunk]
        await driver.close()
        return messages

    return asyncio.run(scenario())


def write(log_path: Path, batches: list[Batch], **opts: str) -> None:
    async def scenario() -> None:
        driver = await jsonfile.new(info(log_path, **opts))
        for batch in batches:
            await driver.log(batch)
        await driver.close()

    asyncio.run(scenario())


def lines(messages: list[Message]) -> list[bytes]:
    return [message.line for message in messages]


def as_docker_logs_prints(messages: list[Message], stream: str) -> bytes:
    return b"".join(m.line + (b"\n" if m.ends_line else b"") for m in messages if m.stream == stream)


# The samples read back as `docker logs` printed them.

CASES = sorted(path.name[: -len("-json.log")] for path in SAMPLES.glob("*-json.log"))


@pytest.mark.parametrize("case", CASES)
def test_reading_a_docker_log_gives_what_docker_logs_printed(case: str, tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    shutil.copy(SAMPLES / f"{case}-json.log", log_path)
    messages = read(log_path, ReadConfig())
    assert as_docker_logs_prints(messages, STDOUT) == (SAMPLES / f"{case}.logs.stdout").read_bytes()
    assert as_docker_logs_prints(messages, STDERR) == (SAMPLES / f"{case}.logs.stderr").read_bytes()


def test_reading_does_not_touch_the_file(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    shutil.copy(SAMPLES / "interleave-json.log", log_path)
    read(log_path, ReadConfig(), **{"max-size": "1k", "max-file": "2"})
    assert log_path.read_bytes() == (SAMPLES / "interleave-json.log").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log"]


def test_a_message_carries_stream_time_attrs_and_the_missing_newline(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    shutil.copy(SAMPLES / "tag_only-json.log", log_path)
    [message] = read(log_path, ReadConfig())
    assert message == Message(
        line=b"tag only",
        stream=STDOUT,
        timestamp_ns=parse_rfc3339nano("2026-11-29T06:35:41.913294038Z"),
        partial=None,
        attrs={"tag": "mytag"},
    )
    shutil.copy(SAMPLES / "nonewline-json.log", log_path)
    [message] = read(log_path, ReadConfig())
    assert message.partial == PartialMeta("", 0, False)
    assert message.attrs is None


def test_the_pieces_of_a_long_line_are_separate_messages(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    shutil.copy(SAMPLES / "long40000_nonl-json.log", log_path)
    messages = read(log_path, ReadConfig())
    assert [len(m.line) for m in messages] == [16384, 16384, 7232]
    assert all(not m.ends_line for m in messages)


# tail, since, until.


def numbered_batches(count: int, per_batch: int = 1) -> list[Batch]:
    """Lines 0..count-1, line n stamped T0 + n seconds (per_batch lines share the first one's time)."""
    return [
        Batch(STDOUT, T0 + first * SECOND, [b"%05d" % n for n in range(first, min(first + per_batch, count))])
        for first in range(0, count, per_batch)
    ]


def numbers(messages: list[Message]) -> list[int]:
    return [int(m.line) for m in messages]


@pytest.fixture(params=["plain", "rotated", "compressed"])
def hundred_lines(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """100 numbered lines in one file, or spread over rotated files, or over gzipped rotated files."""
    opts = {
        "plain": {},
        "rotated": {"max-size": "900", "max-file": "9"},
        "compressed": {"max-size": "900", "max-file": "9", "compress": "true"},
    }[request.param]
    log_path = tmp_path / "c-json.log"
    write(log_path, numbered_batches(100), **opts)
    if request.param != "plain":
        assert len(list(tmp_path.iterdir())) > 5
    return log_path, opts


def test_all_lines_in_order(hundred_lines: tuple[Path, dict[str, str]]) -> None:
    log_path, opts = hundred_lines
    assert numbers(read(log_path, ReadConfig(), **opts)) == list(range(100))


@pytest.mark.parametrize("tail", [1, 3, 7, 10, 11, 55, 99, 100, 150])
def test_tail_gives_the_last_n_records(hundred_lines: tuple[Path, dict[str, str]], tail: int) -> None:
    log_path, opts = hundred_lines
    assert numbers(read(log_path, ReadConfig(tail=tail), **opts)) == list(range(max(0, 100 - tail), 100))


def test_tail_zero_gives_nothing(hundred_lines: tuple[Path, dict[str, str]]) -> None:
    log_path, opts = hundred_lines
    assert read(log_path, ReadConfig(tail=0), **opts) == []


def test_since_and_until_are_inclusive(hundred_lines: tuple[Path, dict[str, str]]) -> None:
    log_path, opts = hundred_lines
    config = ReadConfig(since_ns=T0 + 42 * SECOND, until_ns=T0 + 57 * SECOND)
    assert numbers(read(log_path, config, **opts)) == list(range(42, 58))


def test_since_between_records_starts_at_the_next_one(hundred_lines: tuple[Path, dict[str, str]]) -> None:
    log_path, opts = hundred_lines
    assert numbers(read(log_path, ReadConfig(since_ns=T0 + 89 * SECOND + 1), **opts)) == list(range(90, 100))


def test_tail_is_taken_before_since_and_until(hundred_lines: tuple[Path, dict[str, str]]) -> None:
    log_path, opts = hundred_lines
    assert numbers(read(log_path, ReadConfig(tail=5, since_ns=T0 + 97 * SECOND), **opts)) == [97, 98, 99]
    assert read(log_path, ReadConfig(tail=5, until_ns=T0 + 50 * SECOND), **opts) == []


def test_since_stops_filtering_after_the_first_record_it_lets_through(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    times = [1, 5, 2, 7, 3]  # clocks can step back; Docker keeps everything after the first match
    write(log_path, [Batch(STDOUT, T0 + t * SECOND, [b"%d" % t]) for t in times])
    assert numbers(read(log_path, ReadConfig(since_ns=T0 + 4 * SECOND))) == [5, 2, 7, 3]


def test_until_stops_at_the_first_later_record(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    times = [1, 5, 2, 7, 3]
    write(log_path, [Batch(STDOUT, T0 + t * SECOND, [b"%d" % t]) for t in times])
    assert numbers(read(log_path, ReadConfig(until_ns=T0 + 4 * SECOND))) == [1]


def test_tail_counts_each_piece_of_a_long_line(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    shutil.copy(SAMPLES / "long20000-json.log", log_path)
    [message] = read(log_path, ReadConfig(tail=1))
    assert message.line == b"a" * 3616


def test_tail_reaches_back_over_large_records(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    big = [Batch(STDOUT, T0, [bytes([65 + n % 26]) * 150_000]) for n in range(4)]
    write(log_path, [*big, *numbered_batches(3)])
    messages = read(log_path, ReadConfig(tail=5))
    assert [len(m.line) for m in messages] == [150_000, 150_000, 5, 5, 5]


def test_reading_while_plain_and_compressed_copies_of_a_file_both_exist_prefers_the_plain_one(
    tmp_path: Path,
) -> None:
    # Compression of `.1` in progress: the `.gz` may be incomplete, the plain file is whole.
    log_path = tmp_path / "c-json.log"
    write(log_path, numbered_batches(30), **{"max-size": "900", "max-file": "2"})
    plain = log_path.with_name("c-json.log.1")
    (tmp_path / "c-json.log.1.gz").write_bytes(gzip.compress(plain.read_bytes())[:40])
    opts = {"max-size": "900", "max-file": "2", "compress": "true"}
    assert numbers(read(log_path, ReadConfig(), **opts))[0] == int(orjson.loads(plain.read_bytes().split()[0])["log"])


# Docker's own rotated, compressed log (max-size=1m, max-file=3, compress=true, 50,000 lines).

ROTATION_OPTS = {"max-size": "1m", "max-file": "3", "compress": "true"}


@pytest.fixture
def docker_rotation(tmp_path: Path) -> Path:
    for source in ROTATION.iterdir():
        shutil.copy(source, tmp_path / source.name)
    return tmp_path / f"{ROTATION_ID}-json.log"


def rotation_numbers(messages: list[Message]) -> list[int]:
    return [int(m.line.split()[0]) for m in messages]


def test_docker_rotated_files_read_as_docker_logs_read_them(docker_rotation: Path) -> None:
    messages = read(docker_rotation, ReadConfig(), **ROTATION_OPTS)
    assert rotation_numbers(messages) == list(range(35323, 50001))
    assert all(a.timestamp_ns <= b.timestamp_ns for a, b in itertools.pairwise(messages))


def test_docker_rotated_files_tail_across_the_gzip_boundary(docker_rotation: Path) -> None:
    live_records = len(docker_rotation.read_bytes().splitlines())
    messages = read(docker_rotation, ReadConfig(tail=live_records + 10), **ROTATION_OPTS)
    assert rotation_numbers(messages) == list(range(50001 - live_records - 10, 50001))


def test_a_gzip_file_ending_before_since_is_skipped_without_decompressing(
    docker_rotation: Path, caplog: pytest.LogCaptureFixture
) -> None:
    older = docker_rotation.with_name(docker_rotation.name + ".2.gz")
    header_end = 12 + 45  # fixed header, XLEN, the 45-byte {"lastTime":...}
    data = older.read_bytes()
    older.write_bytes(data[:header_end] + b"\x00" * (len(data) - header_end))  # body destroyed
    since = parse_rfc3339nano("2026-11-29T06:47:01.455205929Z") + 1  # just after its lastTime
    with caplog.at_level(logging.WARNING):
        messages = read(docker_rotation, ReadConfig(since_ns=since), **ROTATION_OPTS)
    assert rotation_numbers(messages) == list(range(41210, 50001))
    assert caplog.records == []


def test_a_corrupt_gzip_file_is_reported_and_the_rest_still_read(
    docker_rotation: Path, caplog: pytest.LogCaptureFixture
) -> None:
    older = docker_rotation.with_name(docker_rotation.name + ".2.gz")
    older.write_bytes(older.read_bytes()[:1000])
    with caplog.at_level(logging.ERROR):
        messages = read(docker_rotation, ReadConfig(), **ROTATION_OPTS)
    assert rotation_numbers(messages) == list(range(41210, 50001))
    assert "c-json.log" not in caplog.text and ".2.gz" in caplog.text


# Damaged records.


def test_an_undecodable_record_is_skipped_alone_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log_path = tmp_path / "c-json.log"
    good = (SAMPLES / "interleave-json.log").read_bytes().splitlines(keepends=True)
    log_path.write_bytes(b"".join([*good[:3], b'{"log":"torn\n', b"not json\n", *good[3:]]))
    with caplog.at_level(logging.WARNING, logger="logship.drivers.jsonfile"):
        messages = read(log_path, ReadConfig())
    assert len(messages) == 10
    assert "skipped 2 undecodable record(s)" in caplog.text


def test_a_record_with_a_lone_surrogate_escape_reads_as_a_replacement_character(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    log_path.write_bytes(b'{"log":"a\\ud800b\\n","stream":"stdout","time":"2026-11-29T06:35:35Z"}\n')
    [message] = read(log_path, ReadConfig())
    assert message.line == "a\ufffdb".encode()
    assert message.timestamp_ns == parse_rfc3339nano("2026-11-29T06:35:35Z")


def test_times_with_a_zone_offset_are_understood(tmp_path: Path) -> None:
    log_path = tmp_path / "c-json.log"
    log_path.write_bytes(b'{"log":"x\\n","stream":"stdout","time":"2026-11-29T07:35:35.5+01:00"}\n')
    [message] = read(log_path, ReadConfig())
    assert message.timestamp_ns == parse_rfc3339nano("2026-11-29T06:35:35.5Z")
