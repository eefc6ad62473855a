"""Following a local log (`logs -f`): history then new lines, across rotations and compression, without
loss or duplicates, ending when the driver closes. The machinery is json-file's (`logreader`); these
tests hold it to the same promises with records that carry whole batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from logship.drivers import local
from logship.drivers.local.driver import LocalDriver
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDOUT, Batch, Message
from logship.pipeline.readconfig import ReadConfig

SECOND = 1_000_000_000
T0 = 1_764_398_000 * SECOND
LINE = b"%06d " + b"x" * 60
Result = TypeVar("Result")


def batch(first: int, count: int) -> Batch:
    """Lines first..first+count-1, all stamped T0 + first seconds."""
    return Batch(STDOUT, T0 + first * SECOND, [LINE % n for n in range(first, first + count)])


def numbers(messages: list[Message]) -> list[int]:
    return [int(m.line.split()[0]) for m in messages]


async def open_driver(tmp_path: Path, **opts: str) -> LocalDriver:
    return await local.new(ContainerInfo("f" * 64, "/c", config=opts, container_dir=str(tmp_path)))


async def settle(awaitable: Awaitable[Result]) -> Result:
    """A safety net so a broken follower fails the test instead of hanging it (not a speed check)."""
    return await asyncio.wait_for(awaitable, 30)


async def drain(reader: AsyncIterator[list[Message]]) -> list[Message]:
    return [message async for chunk in reader for message in chunk]


def test_a_follower_gets_history_then_new_lines_and_ends_when_the_driver_closes(tmp_path: Path) -> None:
    async def scenario() -> list[Message]:
        driver = await open_driver(tmp_path)
        await driver.log(batch(0, 5))
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(follow=True))))
        for first in range(5, 50, 5):
            await asyncio.sleep(0)
            await driver.log(batch(first, 5))
        await driver.close()
        return await settle(follower)

    assert numbers(asyncio.run(scenario())) == list(range(50))


def test_a_follower_with_a_tail_gets_the_last_messages_then_new_ones(tmp_path: Path) -> None:
    async def scenario() -> list[Message]:
        driver = await open_driver(tmp_path)
        await driver.log(batch(0, 10))  # one record
        reader = driver.read_logs(ReadConfig(tail=3, follow=True))
        history = await settle(anext(reader))
        await driver.log(batch(10, 5))
        await driver.close()
        return history + await settle(drain(reader))

    assert numbers(asyncio.run(scenario())) == list(range(7, 15))


def test_a_follower_with_tail_zero_gets_only_new_lines(tmp_path: Path) -> None:
    async def scenario() -> list[Message]:
        driver = await open_driver(tmp_path)
        await driver.log(batch(0, 5))
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(tail=0, follow=True))))
        await asyncio.sleep(0)  # let it take its starting point
        await asyncio.sleep(0)
        await driver.log(batch(5, 5))
        await driver.close()
        return await settle(follower)

    assert numbers(asyncio.run(scenario())) == list(range(5, 10))


@pytest.mark.parametrize("compress", ["false", "true"])
def test_a_follower_that_keeps_up_sees_every_line_across_rotations(tmp_path: Path, compress: str) -> None:
    async def scenario() -> list[Message]:
        driver = await open_driver(tmp_path, **{"max-size": "1k", "max-file": "3", "compress": compress})
        seen: list[Message] = []
        progress = asyncio.Condition()

        async def follow() -> None:
            async for chunk in driver.read_logs(ReadConfig(follow=True)):
                async with progress:
                    seen.extend(chunk)
                    progress.notify_all()

        follower = asyncio.create_task(follow())
        for first in range(0, 600, 6):
            await driver.log(batch(first, 6))
            written = first + 6
            async with progress:  # the follower has read this batch before the next one is written
                await settle(progress.wait_for(lambda: len(seen) >= written))  # noqa: B023 - awaited here
        await driver.close()
        await settle(follower)
        return seen

    assert numbers(asyncio.run(scenario())) == list(range(600))


@pytest.mark.parametrize("compress", ["false", "true"])
def test_a_slow_follower_misses_nothing_when_several_rotations_happen_at_once(
    tmp_path: Path, compress: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[Message]:
        driver = await open_driver(tmp_path, **{"max-size": "1k", "max-file": "30", "compress": compress})
        await driver.log(batch(0, 5))
        reader = driver.read_logs(ReadConfig(follow=True))
        first = await settle(anext(reader))  # the history; the follower now waits at the end of the file
        for start in range(5, 400, 5):  # about twenty rotations before it runs again
            await driver.log(batch(start, 5))
        await driver.close()
        return first + await settle(drain(reader))

    with caplog.at_level(logging.WARNING):
        assert numbers(asyncio.run(scenario())) == list(range(400))
    assert len(list((tmp_path / "local-logs").iterdir())) > 15
    assert caplog.records == []


def test_a_follower_of_a_restarted_container_continues_after_the_cut_torn_tail(tmp_path: Path) -> None:
    async def first_run() -> None:
        driver = await open_driver(tmp_path)
        await driver.log(batch(0, 5))
        await driver.log(batch(5, 5))
        await driver.close()

    asyncio.run(first_run())
    log_file = tmp_path / "local-logs" / "container.log"
    data = log_file.read_bytes()
    log_file.write_bytes(data[:-7])  # the crash tore the second record

    async def second_run() -> list[Message]:
        driver = await open_driver(tmp_path)
        follower = asyncio.create_task(drain(driver.read_logs(ReadConfig(follow=True))))
        await asyncio.sleep(0)
        await driver.log(batch(10, 5))
        await driver.close()
        return await settle(follower)

    assert numbers(asyncio.run(second_run())) == [*range(5), *range(10, 15)]
