"""The router: one container's batches fanned out to its drivers.

Each driver gets its own channel, a queue bounded in bytes of line data with a worker task that awaits
`driver.log(batch)`, so a slow driver only ever holds back its own queue:

- blocking mode (the default): when a channel is full, `deliver` waits; the copier stops reading, the pipe
  fills and the container's writes block. Nothing is dropped.
- non-blocking mode: the channel holds at most `max-buffer-size` bytes (Docker's ring buffer). When it is
  full the lines that do not fit are dropped, counted per driver, and reported in the daemon log (rate
  limited), never silently. As in Docker, a line larger than the whole buffer is still taken when the
  buffer is empty.

Drivers that write without waiting (json-file and local append small batches on the spot) would never hand the
event loop back to the copier, nor the copier to them: `deliver` gives the workers a turn after each
batch in non-blocking mode, and after each large one in blocking mode.

A driver that raises loses that batch (its lines are counted as failed and the daemon log says why); the
router keeps going with the next batch, and other drivers and containers never notice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

from logship.drivers.base import LogDriver, ReportsDelivery, Undelivered
from logship.drivers.options import NON_BLOCKING
from logship.pipeline.message import Batch
from logship.pipeline.stats import DriverStats, LogStats

log = logging.getLogger("logship.router")

# How much a blocking channel may hold before the container is made to wait: a few reads' worth, so the
# copier can read the next chunk while the driver writes the previous one.
BLOCKING_QUEUE_BYTES = 4 << 20
# Blocking mode: after a batch of at least this many bytes the copier gives the workers a turn.
HAND_OVER_BYTES = 64 << 10
WARN_INTERVAL_S = 10.0
DEFAULT_FLUSH_TIMEOUT_S = 10.0
CLOSE_GRACE_S = 5.0


class _Channel:
    def __init__(self, container: str, driver: LogDriver, stats: DriverStats, blocking: bool, limit: int) -> None:
        self.container = container
        self.driver = driver
        self.stats = stats
        self.blocking = blocking
        self.limit = limit
        self.queue: deque[Batch] = deque()
        self.queued_bytes = 0
        self._space = asyncio.Event()
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._warned_at = 0.0
        self._reported = (0, 0)  # (dropped, failed) already reported in the daemon log
        self._given_up = ""  # why a blocked put no longer waits, "" while it does
        self.worker = asyncio.get_running_loop().create_task(self._run(), name=f"log-{driver.name}-{container[:12]}")

    async def idle(self) -> None:
        """Until the queue is empty and the driver has returned from its last batch."""
        await self._idle.wait()

    def _fits(self, nbytes: int) -> bool:
        return not self.queue or self.queued_bytes + nbytes <= self.limit

    async def put(self, batch: Batch) -> None:
        while not self._fits(batch.nbytes):
            if self._given_up:
                self.stats.record_failed(len(batch), self._given_up)
                return
            self._space.clear()
            await self._space.wait()
        self._enqueue(batch)

    @property
    def given_up(self) -> bool:
        return bool(self._given_up)

    def give_up_waiting(self, reason: str) -> None:
        """Blocking mode, the container has ended and the driver is still stuck past the flush bound: the
        copier must not wait any longer. What does not fit from now on is counted as failed, not queued."""
        self._given_up = reason
        self._space.set()

    def resume_waiting(self) -> None:
        """Puts wait for space again: a restart policy's next run keeps the router and its drivers."""
        self._given_up = ""

    def offer(self, batch: Batch) -> None:
        """Non-blocking: take what fits, count the rest as dropped (a batch without lines always fits: a
        processing flush, see logship.pipeline.processing.instep)."""
        if self._fits(batch.nbytes) or not len(batch):
            self._enqueue(batch)
            return
        head = _fitting_head(batch, self.limit - self.queued_bytes)  # the queue is not empty: _fits
        if head is not None:
            self._enqueue(head)
        self.stats.lines_dropped += len(batch) - (len(head) if head is not None else 0)
        self._maybe_warn()

    def _enqueue(self, batch: Batch) -> None:
        self.queue.append(batch)
        self.queued_bytes += batch.nbytes
        self.stats.buffered_bytes = self.queued_bytes
        self._idle.clear()
        self._work.set()

    async def _run(self) -> None:
        while True:
            if not self.queue:
                self._idle.set()
                if self._closing:
                    return
                self._work.clear()
                await self._work.wait()
                continue
            batch = self.queue[0]
            try:
                await self.driver.log(batch)
                self.stats.record_written(len(batch), batch.nbytes)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a driver failure must never stop the pipeline
                self.stats.record_failed(len(batch), f"{type(err).__name__}: {err}")
                self._maybe_warn()
            self.queue.popleft()
            self.queued_bytes -= batch.nbytes
            self.stats.buffered_bytes = self.queued_bytes
            self._space.set()

    def _maybe_warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at < WARN_INTERVAL_S:
            return
        self._warned_at = now
        self._report()

    def _report(self) -> None:
        dropped, failed = self.stats.lines_dropped, self.stats.lines_failed
        if (dropped, failed) == self._reported:
            return
        self._reported = (dropped, failed)
        if dropped:
            log.warning(
                "log driver %s for container %s dropped %d lines so far: its non-blocking buffer "
                "(max-buffer-size=%d bytes) was full; raise max-buffer-size or use mode=blocking to lose none",
                self.driver.name,
                self.container[:12],
                dropped,
                self.limit,
            )
        if failed:
            log.error(
                "log driver %s for container %s failed to write %d lines so far; last error: %s",
                self.driver.name,
                self.container[:12],
                failed,
                self.stats.last_error,
            )

    def refresh_stats(self) -> None:
        if isinstance(self.driver, ReportsDelivery):
            self.stats.take_counters(self.driver.delivery_counters())

    async def close(self, timeout: float) -> None:
        self._closing = True
        self._work.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            lost = sum(len(b) for b in self.queue)
            self.worker.cancel()
            self.stats.record_failed(lost, f"not written within the {timeout:g}s flush bound at close")
            self.queue.clear()
            self.queued_bytes = self.stats.buffered_bytes = 0
        self.worker.cancel()
        try:
            # A buffering driver flushes within its own bound; the grace only guards against one that hangs.
            await asyncio.wait_for(self.driver.close(), timeout + CLOSE_GRACE_S)
        except Undelivered as err:
            self.stats.record_failed(err.lines, f"not delivered at close: {err.reason}")
        except TimeoutError:
            reason = f"not delivered at close: the driver did not finish within {timeout + CLOSE_GRACE_S:g}s"
            self.stats.record_failed(0, reason)
            log.error("closing log driver %s for container %s: %s", self.driver.name, self.container[:12], reason)
        except Exception as err:
            self.stats.record_failed(0, f"close: {type(err).__name__}: {err}")
            log.error("closing log driver %s for container %s: %s", self.driver.name, self.container[:12], err)
        self.refresh_stats()
        self._report()


class Router:
    def __init__(
        self,
        container_id: str,
        drivers: Sequence[LogDriver],
        stats: LogStats,
        mode: str,
        max_buffer_size: int,
    ) -> None:
        self.stats = stats
        self.blocking = mode != NON_BLOCKING
        limit = BLOCKING_QUEUE_BYTES if self.blocking else max_buffer_size
        self._channels: list[_Channel] = []
        for driver in drivers:
            driver_stats = stats.for_driver(driver.name, mode, limit)
            self._channels.append(_Channel(container_id, driver, driver_stats, self.blocking, limit))

    @property
    def drivers(self) -> list[LogDriver]:
        return [c.driver for c in self._channels]

    def refresh_stats(self) -> None:
        """Fold what buffering drivers report about their own delivery into the stats."""
        for channel in self._channels:
            channel.refresh_stats()

    async def deliver(self, batch: Batch) -> None:
        self.stats.lines_read += len(batch)
        if batch.partials:
            self.stats.partial_messages += len(batch.partials)
        if self.blocking:
            for channel in self._channels:
                await channel.put(batch)
            if batch.nbytes >= HAND_OVER_BYTES:
                # Let the workers write it now, while its bytes are still in the CPU cache, rather than
                # after the copier has read up to BLOCKING_QUEUE_BYTES more. (Small batches come from
                # small reads, after which the copier waits for the pipe and the workers run anyway.)
                await asyncio.sleep(0)
            return
        for channel in self._channels:
            channel.offer(batch)
        # Offering never waits, and a driver that writes without waiting (json-file, local) never hands control
        # back either: without this turn of the event loop the copier would read a whole burst while the
        # workers starve and the ring buffers overflow. One turn lets each worker empty its queue, after
        # which the copier reads on: the container still never waits for the drivers.
        await asyncio.sleep(0)

    async def wait_idle(self, timeout: float) -> bool:
        """Until every batch delivered so far was handed to its driver, with the drivers left open (a run
        ended and a restart policy starts the next one); False if that took longer than `timeout`."""
        try:
            await asyncio.wait_for(asyncio.gather(*(c.idle() for c in self._channels)), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def given_up(self) -> bool:
        return any(channel.given_up for channel in self._channels)

    def give_up_waiting(self, reason: str) -> None:
        """Let a copier blocked on a stuck driver go; see `_Channel.give_up_waiting`."""
        for channel in self._channels:
            channel.give_up_waiting(reason)

    def resume_waiting(self) -> None:
        """The next run of a restarting container waits for its drivers again."""
        for channel in self._channels:
            channel.resume_waiting()

    async def close(self, timeout: float = DEFAULT_FLUSH_TIMEOUT_S) -> None:
        """Flush every channel (bounded) and close the drivers, all concurrently."""
        await asyncio.gather(*(c.close(timeout) for c in self._channels))


def _fitting_head(batch: Batch, room: int) -> Batch | None:
    """The first lines of `batch` whose bytes (newlines not counted, as in `nbytes`) fit in `room`, as a
    batch; None if not even the first does."""
    text = batch.text
    if text is None:
        taken = 0
        for line in batch.lines:
            if len(line) > room:
                break
            room -= len(line)
            taken += 1
        return batch.take(taken)[0] if taken else None
    # A batch made from text: a full buffer drops most of a 1 MiB read, so find the cut with a few
    # searches instead of splitting the text into lines. The lines before a newline at p hold p bytes
    # minus the newlines among them: each newline up to the current cut lets the next cut sit one byte
    # further, so widen the search by them until the cut stops moving (the greatest cut that fits).
    cut = -1
    while True:
        found = text.rfind(b"\n", 0, room + text.count(b"\n", 0, cut + 1) + 1)
        if found <= cut:
            break
        cut = found
    if cut < 0:
        return None
    return Batch.of_text(batch.stream, batch.timestamp_ns, text[:cut], text.count(b"\n", 0, cut) + 1)
