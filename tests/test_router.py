"""The router fans batches out to drivers: blocking never drops, non-blocking drops only what does not
fit and counts every dropped line, a failing or slow driver never holds back another."""

from __future__ import annotations

import asyncio
import random

from logship.pipeline.message import STDOUT, Batch
from logship.pipeline.router import Router
from logship.pipeline.stats import LogStats


class RecordingDriver:
    def __init__(self, name: str = "rec", delay: float = 0.0, fail: bool = False) -> None:
        self.name = name
        self.delay = delay
        self.fail = fail
        self.lines: list[bytes] = []
        self.closed = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def log(self, batch: Batch) -> None:
        await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise OSError("backend unreachable")
        self.lines.extend(batch.lines)

    async def close(self) -> None:
        self.closed = True


def batch(*lines: bytes) -> Batch:
    return Batch("stdout", 1, list(lines))


def test_blocking_mode_delivers_every_line_in_order_and_closes_drivers() -> None:
    async def scenario() -> tuple[RecordingDriver, LogStats]:
        driver = RecordingDriver(delay=0.0005)
        stats = LogStats()
        router = Router("c" * 64, [driver], stats, "blocking", 0)
        for i in range(300):
            await router.deliver(batch(b"%d" % i, b"x" * 1000))
        await router.close()
        return driver, stats

    driver, stats = asyncio.run(scenario())
    assert driver.lines == [line for i in range(300) for line in (b"%d" % i, b"x" * 1000)]
    assert driver.closed
    assert stats.lines_read == 600 and stats.drivers[0].lines_written == 600 and stats.lines_dropped == 0


def test_blocking_mode_makes_the_producer_wait_when_a_driver_is_stuck() -> None:
    async def scenario() -> bool:
        driver = RecordingDriver()
        driver.gate.clear()
        router = Router("c" * 64, [driver], LogStats(), "blocking", 0)
        big = batch(b"y" * (1 << 20))
        delivered = 0

        async def produce() -> None:
            nonlocal delivered
            for _ in range(10):
                await router.deliver(big)
                delivered += 1

        producer = asyncio.create_task(produce())
        await asyncio.sleep(0.05)
        blocked = not producer.done() and delivered < 10
        driver.gate.set()
        await producer
        await router.close()
        return blocked and len(driver.lines) == 10

    assert asyncio.run(scenario())


def test_non_blocking_mode_drops_only_when_full_and_counts_exactly() -> None:
    async def scenario() -> tuple[RecordingDriver, LogStats]:
        driver = RecordingDriver()
        driver.gate.clear()  # a dead backend
        stats = LogStats()
        router = Router("c" * 64, [driver], stats, "non-blocking", 1000)
        for i in range(50):
            await router.deliver(batch(b"%03d" % i + b"." * 96))  # 100 bytes a line
        driver.gate.set()
        await router.close()
        return driver, stats

    driver, stats = asyncio.run(scenario())
    assert len(driver.lines) == 10  # 1000 bytes of buffer hold ten 100-byte lines
    assert stats.drivers[0].lines_dropped == 40
    assert len(driver.lines) + stats.lines_dropped == stats.lines_read == 50
    assert driver.lines == [b"%03d" % i + b"." * 96 for i in range(10)]


def test_non_blocking_mode_lets_a_driver_that_never_waits_keep_up_with_a_burst() -> None:
    # json-file writes small batches without ever waiting: the copier delivering a burst must still give
    # its worker a turn, or the buffer would overflow while the driver has nothing to do.
    async def scenario() -> tuple[RecordingDriver, LogStats]:
        driver = RecordingDriver()  # its gate is open: log() returns without waiting
        stats = LogStats()
        router = Router("c" * 64, [driver], stats, "non-blocking", 1000)
        for i in range(500):
            await router.deliver(batch(b"%03d" % i + b"." * 96))
        await router.close()
        return driver, stats

    driver, stats = asyncio.run(scenario())
    assert stats.lines_dropped == 0
    assert driver.lines == [b"%03d" % i + b"." * 96 for i in range(500)]


def test_non_blocking_mode_takes_an_oversized_line_when_the_buffer_is_empty() -> None:
    async def scenario() -> RecordingDriver:
        driver = RecordingDriver()
        router = Router("c" * 64, [driver], LogStats(), "non-blocking", 10)
        await router.deliver(batch(b"z" * 100))
        await router.close()
        return driver

    assert asyncio.run(scenario()).lines == [b"z" * 100]


def test_a_failing_driver_counts_failures_and_does_not_stop_another_driver() -> None:
    async def scenario() -> tuple[RecordingDriver, LogStats]:
        good, bad = RecordingDriver("good"), RecordingDriver("bad", fail=True)
        stats = LogStats()
        router = Router("c" * 64, [bad, good], stats, "blocking", 0)
        for i in range(20):
            await router.deliver(batch(b"%d" % i))
        await router.close()
        return good, stats

    good, stats = asyncio.run(scenario())
    assert good.lines == [b"%d" % i for i in range(20)]
    by_name = {d.driver: d for d in stats.drivers}
    assert by_name["bad"].lines_failed == 20 and "backend unreachable" in by_name["bad"].last_error
    assert by_name["good"].lines_written == 20


def test_close_gives_up_on_a_hung_driver_within_the_bound_and_counts_what_was_lost() -> None:
    async def scenario() -> LogStats:
        hung = RecordingDriver("hung")
        hung.gate.clear()
        stats = LogStats()
        router = Router("c" * 64, [hung], stats, "blocking", 0)
        await router.deliver(batch(b"a", b"b", b"c"))
        await router.close(timeout=0.1)
        return stats

    stats = asyncio.run(scenario())
    assert stats.drivers[0].lines_failed == 3
    assert "flush bound" in stats.drivers[0].last_error


def test_non_blocking_mode_keeps_the_whole_lines_of_a_read_that_fit_and_drops_the_rest() -> None:
    # A read's batch is one text (no object per line): the lines that fit are found without splitting
    # it, and they are exactly the ones a line-by-line count keeps.
    rng = random.Random(9)
    for _ in range(300):
        lines = [b"x" * rng.choice([0, 1, 5, 99, 100, 101]) for _ in range(rng.randint(1, 40))]
        text_batch = Batch.of_text(STDOUT, 1, b"\n".join(lines), len(lines))
        list_batch = Batch(STDOUT, 1, list(lines))
        room = rng.randint(0, text_batch.nbytes)
        kept = [_kept_lines(text_batch, room), _kept_lines(list_batch, room)]
        assert kept[0] == kept[1], (lines, room)
        assert sum(map(len, kept[0])) <= room < sum(map(len, lines[: len(kept[0]) + 1])) or kept[0] == lines


def _kept_lines(offered: Batch, room: int) -> list[bytes]:
    async def scenario() -> tuple[RecordingDriver, LogStats]:
        driver = RecordingDriver()
        driver.gate.clear()
        stats = LogStats()
        router = Router("c" * 64, [driver], stats, "non-blocking", room + 1)
        await router.deliver(batch(b"z"))  # one byte queued: the offered batch gets `room` bytes
        await router.deliver(offered)
        driver.gate.set()
        await router.close()
        return driver, stats

    driver, stats = asyncio.run(scenario())
    kept = driver.lines[1:]
    assert stats.lines_dropped == len(offered) - len(kept)
    return kept
