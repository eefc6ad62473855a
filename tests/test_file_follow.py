"""Following a file driver's log (`logs -f`), json-file and local alike: history then new lines as they are
written, across rotations and compression, without loss or duplicates, ending when the container's
logging ends, and releasing files when the reader goes. A follower however far behind is handed the
files max-file deletes, up to its follow-backlog; past it, it reports exactly what it lost, where.
Both drivers share the reader (`logreader`); local's records carry whole batches, json-file's one
line each, which the knobs below account for."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from logship.drivers import jsonfile, local
from logship.drivers.base import LOST, LogDriver, LogReader
from logship.drivers.jsonfile.encode import BatchEncoder
from logship.drivers.local.record import RecordEncoder
from logship.drivers.util.followers import FollowLoss
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDOUT, Batch, Message
from logship.pipeline.readconfig import ReadConfig

SECOND = 1_000_000_000
T0 = 1_764_398_000 * SECOND
Result = TypeVar("Result")


class FileLogDriver(LogDriver, LogReader, Protocol):
    """A driver that writes files and reads them back."""


@dataclass(frozen=True)
class FileDriver:
    name: str
    open: Callable[[Path, dict[str, str]], Awaitable[FileLogDriver]]
    files_in: Callable[[Path], Path]  # the directory its log files are in
    keep_up_batch: int  # lines per write when a follower keeps up: ~100 rotations of a 1k file over 600 lines
    burst_lines: int  # lines written while a follower sleeps: ~20 rotations of a 1k file
    batch_size: int  # bytes on disk of a `batch(n, 5)`


async def _open_json_file(tmp_path: Path, opts: dict[str, str]) -> FileLogDriver:
    return await jsonfile.new(ContainerInfo("f" * 64, "/c", config=opts, log_path=str(tmp_path / "c-json.log")))


async def _open_local(tmp_path: Path, opts: dict[str, str]) -> FileLogDriver:
    return await local.new(ContainerInfo("f" * 64, "/c", config=opts, container_dir=str(tmp_path)))


LINE = b"%06d " + b"x" * 60
JSON_FILE = FileDriver(
    "json-file",
    _open_json_file,
    lambda tmp: tmp,
    keep_up_batch=3,
    burst_lines=200,
    batch_size=len(BatchEncoder({}).encode(Batch(STDOUT, T0, [LINE % n for n in range(5)]))),
)
# A local record holds a batch, so it takes bigger batches to rotate as often.
LOCAL = FileDriver(
    "local",
    _open_local,
    lambda tmp: tmp / "local-logs",
    keep_up_batch=6,
    burst_lines=400,
    batch_size=len(RecordEncoder({}).encode(Batch(STDOUT, T0, [LINE % n for n in range(5)]))),
)


@pytest.fixture(params=[JSON_FILE, LOCAL], ids=lambda kind: kind.name)
def kind(request: pytest.FixtureRequest) -> FileDriver:
    driver: FileDriver = request.param
    return driver


def batch(first: int, count: int) -> Batch:
    """Lines first..first+count-1, all stamped T0 + first seconds."""
    return Batch(STDOUT, T0 + first * SECOND, [LINE % n for n in range(first, first + count)])


def numbers(messages: list[Message]) -> list[int]:
    return [int(m.line.split()[0]) for m in messages]


def with_losses(messages: list[Message]) -> list[int | FollowLoss]:
    """The line numbers, and the loss notices where the reader yielded them."""
    return [FollowLoss.decode(m.line) if m.stream == LOST else int(m.line.split()[0]) for m in messages]


async def settle(awaitable: Awaitable[Result]) -> Result:
    """A safety net so a broken follower fails the test instead of hanging it (not a speed check)."""
    return await asyncio.wait_for(awaitable, 30)


async def drain(reader: AsyncIterator[list[Message]]) -> list[Message]:
    return [message async for chunk in reader for message in chunk]


def descriptors_on(directory: Path) -> list[str]:
    """What this process holds open in `directory` (deleted files included)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            held.append(target)
    return held


# ---- both drivers ------------------------------------------------------------------------------------


def test_a_follower_gets_history_then_new_lines_and_ends_when_the_driver_closes(
    tmp_path: Path, kind: FileDriver
) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {})
        await driver.log(batch(0, 5))
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(follow=True))))
        for first in range(5, 50, 5):
            await asyncio.sleep(0)
            await driver.log(batch(first, 5))
        await driver.close()
        return await settle(follower)

    assert numbers(asyncio.run(scenario())) == list(range(50))


def test_a_follower_with_a_tail_gets_the_last_messages_then_new_ones(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {})
        await driver.log(batch(0, 10))  # local: one record
        reader = driver.read_logs(ReadConfig(tail=3, follow=True))
        history = await settle(anext(reader))
        await driver.log(batch(10, 5))
        await driver.close()
        return history + await settle(drain(reader))

    assert numbers(asyncio.run(scenario())) == list(range(7, 15))


def test_a_follower_with_tail_zero_gets_only_new_lines(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {})
        await driver.log(batch(0, 5))
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(tail=0, follow=True))))
        await asyncio.sleep(0)  # let it take its starting point
        await asyncio.sleep(0)
        await driver.log(batch(5, 5))
        await driver.close()
        return await settle(follower)

    assert numbers(asyncio.run(scenario())) == list(range(5, 10))


def test_following_a_closed_driver_gives_the_history_and_ends(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {})
        await driver.log(batch(0, 3))
        await driver.close()
        return await settle(drain(driver.read_logs(ReadConfig(follow=True))))

    assert numbers(asyncio.run(scenario())) == [0, 1, 2]


def test_until_ends_a_follow_while_the_container_still_runs(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {})
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(follow=True, until_ns=T0 + 7 * SECOND))))
        await driver.log(batch(0, 5))  # stamped T0
        await driver.log(batch(5, 5))  # stamped T0+5s
        await driver.log(batch(10, 5))  # stamped T0+10s: after until
        result = await settle(follower)
        await driver.close()
        return result

    assert numbers(asyncio.run(scenario())) == list(range(10))


def test_since_in_the_future_waits_for_the_first_later_line(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {})
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(follow=True, since_ns=T0 + 12 * SECOND))))
        for first in range(0, 20, 4):
            await driver.log(batch(first, 4))
        await driver.close()
        return await settle(follower)

    assert numbers(asyncio.run(scenario())) == list(range(12, 20))


@pytest.mark.parametrize("compress", ["false", "true"])
def test_a_follower_that_keeps_up_sees_every_line_across_rotations(
    tmp_path: Path, kind: FileDriver, compress: str
) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {"max-size": "1k", "max-file": "3", "compress": compress})
        seen: list[Message] = []
        progress = asyncio.Condition()

        async def follow() -> None:
            async for chunk in driver.read_logs(ReadConfig(follow=True)):
                async with progress:
                    seen.extend(chunk)
                    progress.notify_all()

        follower = asyncio.create_task(follow())
        step = kind.keep_up_batch
        for first in range(0, 600, step):
            await driver.log(batch(first, step))
            written = first + step
            async with progress:  # the follower has read this batch before the next one is written
                await settle(progress.wait_for(lambda: len(seen) >= written))  # noqa: B023 - awaited here
        await driver.close()
        await settle(follower)
        return seen

    assert numbers(asyncio.run(scenario())) == list(range(600))


@pytest.mark.parametrize("compress", ["false", "true"])
def test_a_slow_follower_misses_nothing_when_several_rotations_happen_at_once(
    tmp_path: Path, kind: FileDriver, compress: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {"max-size": "1k", "max-file": "30", "compress": compress})
        await driver.log(batch(0, 5))
        reader = driver.read_logs(ReadConfig(follow=True))
        first = await settle(anext(reader))  # the history; the follower now waits at the end of the file
        for start in range(5, kind.burst_lines, 5):  # about twenty rotations before it runs again
            await driver.log(batch(start, 5))
        await driver.close()
        return first + await settle(drain(reader))

    with caplog.at_level(logging.WARNING):
        assert numbers(asyncio.run(scenario())) == list(range(kind.burst_lines))
    assert len(list(kind.files_in(tmp_path).iterdir())) > 15
    assert caplog.records == []


# ---- a follower far behind: max-file deletes files it has not read ----------------------------------------
# Each file holds two batches of five lines (`two_batches`): lines 10k..10k+9 are generation k's file.


def two_batches(kind: FileDriver, **more: str) -> dict[str, str]:
    return {"max-size": str(2 * kind.batch_size), **more}


async def behind(kind: FileDriver, tmp_path: Path, options: dict[str, str], lines: int) -> list[Message]:
    """Lines 0..4, then a follower reads them and waits at generation 0 while lines 5..lines-1 are written
    and the driver closes: everything it reads then."""
    driver = await kind.open(tmp_path, options)
    await driver.log(batch(0, 5))
    reader = driver.read_logs(ReadConfig(follow=True))
    first = await settle(anext(reader))
    for start in range(5, lines, 5):
        await driver.log(batch(start, 5))
    await driver.close()
    return first + await settle(drain(reader))


@pytest.mark.parametrize("compress", ["false", "true"])
def test_a_follower_far_behind_is_handed_the_files_max_file_deletes_and_misses_nothing(
    tmp_path: Path, kind: FileDriver, compress: str, caplog: pytest.LogCaptureFixture
) -> None:
    options = two_batches(kind, **{"max-file": "3", "compress": compress})
    with caplog.at_level(logging.WARNING):
        got = asyncio.run(behind(kind, tmp_path, options, 200))
    assert numbers(got) == list(range(200))
    # Generations 1..16 were deleted while the follower waited: it read them through what it was handed.
    assert len(list(kind.files_in(tmp_path).iterdir())) == 3
    assert caplog.records == []


def test_with_max_file_one_a_follower_far_behind_misses_nothing(tmp_path: Path, kind: FileDriver) -> None:
    options = two_batches(kind, **{"max-file": "1", "compress": "false"})
    assert numbers(asyncio.run(behind(kind, tmp_path, options, 100))) == list(range(100))


def test_past_its_follow_backlog_a_follower_says_exactly_what_it_lost_where_it_lost_it(
    tmp_path: Path, kind: FileDriver, caplog: pytest.LogCaptureFixture
) -> None:
    # The follower holds generation 0. Generations 1..16 are deleted while it waits: 1 and 2 fill its
    # backlog of two files and are handed to it, 3..16 are lost; 17, 18 and 19 are still there.
    # (Uncompressed, so that the bytes are easy to count: the backlog counts bytes on disk.)
    options = two_batches(kind, **{"max-file": "3", "compress": "false", "follow-backlog": str(4 * kind.batch_size)})
    with caplog.at_level(logging.WARNING):
        got = with_losses(asyncio.run(behind(kind, tmp_path, options, 200)))
    lost = FollowLoss(lines=140, files=14, nbytes=14 * 2 * kind.batch_size)
    assert got == [*range(30), lost, *range(170, 200)]
    [warning] = [record.getMessage() for record in caplog.records]  # the daemon log's
    assert warning.startswith(f"a follower of {kind.files_in(tmp_path)}/")
    assert warning.endswith(f" lost lines: {lost.describe()}")
    assert "140 log lines (14 rotated files" in lost.describe()


def test_a_follower_with_no_follow_backlog_loses_what_max_file_deletes_as_in_docker(
    tmp_path: Path, kind: FileDriver
) -> None:
    options = two_batches(kind, **{"max-file": "3", "compress": "false", "follow-backlog": "0"})
    got = with_losses(asyncio.run(behind(kind, tmp_path, options, 200)))
    assert got == [*range(10), FollowLoss(lines=160, files=16, nbytes=16 * 2 * kind.batch_size), *range(170, 200)]


def test_followers_far_behind_at_different_places_each_get_every_line(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> tuple[list[Message], list[Message]]:
        driver = await kind.open(tmp_path, two_batches(kind, **{"max-file": "3", "compress": "true"}))
        await driver.log(batch(0, 5))
        early = driver.read_logs(ReadConfig(follow=True))
        early_seen = await settle(anext(early))
        for start in range(5, 100, 5):
            await driver.log(batch(start, 5))
        late = driver.read_logs(ReadConfig(follow=True))  # from generation 9, with the files still there
        late_seen = await settle(anext(late))
        for start in range(100, 200, 5):
            await driver.log(batch(start, 5))
        await driver.close()
        return early_seen + await settle(drain(early)), late_seen + await settle(drain(late))

    early, late = asyncio.run(scenario())
    assert numbers(early) == list(range(200))
    assert numbers(late) == list(range(70, 200))  # what the three files held when it came, then everything


def test_the_backlog_bounds_what_a_follower_holds_not_what_it_was_ever_handed(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> list[Message]:
        # Twice, the follower falls two deleted files behind (its whole backlog) and catches up.
        options = two_batches(
            kind, **{"max-file": "3", "compress": "false", "follow-backlog": str(4 * kind.batch_size)}
        )
        driver = await kind.open(tmp_path, options)
        await driver.log(batch(0, 5))
        reader = driver.read_logs(ReadConfig(follow=True))
        seen = await settle(anext(reader))
        for last in (60, 110):  # generations 1, 2 and then 6, 7 are deleted unread
            for start in range(len(seen), last, 5):
                await driver.log(batch(start, 5))
            while numbers(seen)[-1] < last - 1:
                seen += await settle(anext(reader))
        await driver.close()
        return seen + await settle(drain(reader))

    assert with_losses(asyncio.run(scenario())) == list(range(110))


def test_a_follower_that_goes_away_releases_its_files(tmp_path: Path, kind: FileDriver) -> None:
    async def scenario() -> None:
        options = {"max-size": "1k", "max-file": "5", "compress": "true"}
        driver = await kind.open(tmp_path, options)
        for start in range(0, 60, 5):
            await driver.log(batch(start, 5))
        await driver.close()
        assert descriptors_on(tmp_path) == []
        driver = await kind.open(tmp_path, options)
        writer_only = descriptors_on(tmp_path)

        reader = driver.read_logs(ReadConfig(follow=True))
        await settle(anext(reader))
        assert len(descriptors_on(tmp_path)) > len(writer_only)
        await reader.aclose()  # type: ignore[attr-defined]
        assert descriptors_on(tmp_path) == writer_only

        cancelled = asyncio.create_task(drain(driver.read_logs(ReadConfig(follow=True))))
        for _ in range(20):
            await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert descriptors_on(tmp_path) == writer_only

        # A follower far behind holds the files max-file deleted for it, and lets them go when it goes.
        behind = driver.read_logs(ReadConfig(follow=True, tail=0))
        pending = asyncio.ensure_future(anext(behind))
        await asyncio.sleep(0.1)  # it registered and now waits for a write
        for start in range(60, 120, 5):
            await driver.log(batch(start, 5))
        await settle(pending)
        assert any(target.endswith(" (deleted)") for target in descriptors_on(tmp_path))
        await behind.aclose()  # type: ignore[attr-defined]
        assert not any(target.endswith(" (deleted)") for target in descriptors_on(tmp_path))
        await driver.close()
        assert descriptors_on(tmp_path) == []

    asyncio.run(scenario())


def test_a_reader_of_a_log_being_written_stops_at_what_was_there_when_it_started(
    tmp_path: Path, kind: FileDriver
) -> None:
    async def scenario() -> list[Message]:
        driver = await kind.open(tmp_path, {})
        await driver.log(batch(0, 5))
        reader = driver.read_logs(ReadConfig())
        await driver.log(batch(5, 5))
        result = await settle(drain(reader))
        await driver.close()
        return result

    assert numbers(asyncio.run(scenario())) == list(range(5))


# ---- json-file: one record per line, so file sizes can be set in records ------------------------------

RECORD_SIZE = len(BatchEncoder({}).encode(batch(0, 1)))  # every json-file record of these tests has this size


def files_of(records: int) -> str:
    """A json-file max-size that makes each file hold exactly `records` records."""
    return str(records * RECORD_SIZE)


def test_with_max_file_one_a_follower_finishes_the_replaced_file(tmp_path: Path) -> None:
    async def scenario() -> list[Message]:
        driver = await JSON_FILE.open(tmp_path, {"max-size": files_of(10)})
        await driver.log(batch(0, 5))
        reader = driver.read_logs(ReadConfig(follow=True))
        first = await settle(anext(reader))
        await driver.log(batch(5, 10))  # 5..9 fill the file; 10..14 go to a new one (the old is unlinked)
        await driver.log(batch(15, 5))
        await driver.close()
        return first + await settle(drain(reader))

    assert numbers(asyncio.run(scenario())) == list(range(20))


# ---- local: framed records, so a torn one can be cut off -------------------------------------------------


def test_a_follower_of_a_restarted_container_continues_after_the_cut_torn_tail(tmp_path: Path) -> None:
    async def first_run() -> None:
        driver = await LOCAL.open(tmp_path, {})
        await driver.log(batch(0, 5))
        await driver.log(batch(5, 5))
        await driver.close()

    asyncio.run(first_run())
    log_file = tmp_path / "local-logs" / "container.log"
    data = log_file.read_bytes()
    log_file.write_bytes(data[:-7])  # the crash tore the second record

    async def second_run() -> list[Message]:
        driver = await LOCAL.open(tmp_path, {})
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(follow=True))))
        await asyncio.sleep(0)
        await driver.log(batch(10, 5))
        await driver.close()
        return await settle(follower)

    assert numbers(asyncio.run(second_run())) == [*range(5), *range(10, 15)]
