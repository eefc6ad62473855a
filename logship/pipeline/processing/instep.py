"""Processing for the drivers that go in step with the copier (json-file, local, journald, the dual-logging
cache; every driver of a tty container).

The router hands every in-step driver the same batches; each driver processes them itself
(`DriverProcessing`: the cache wants lines, journald events), inside its channel, so a driver's ledger
moves with what it wrote (see `acknowledging`). Two things are not lines and travel the same way, in
order after the lines before them (`FlushBatch`):

- the end of a run of the container: nothing is held past it;
- a wall-clock flush: the copier had nothing more to read and an open event's deadline passed
  (`Flusher`, the copier's `Idle`).

In non-blocking mode and for tty containers a driver has no ledger: `Processing` wraps it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from logship.drivers.base import LogDriver, copy_abilities
from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch
from logship.pipeline.processing.config import ProcessingConfig
from logship.pipeline.processing.stream import Processed, StreamProcessor
from logship.pipeline.stats import ProcessingStats


class FlushBatch(Batch):
    """No lines: a run of the container ended (`end_of_run`), or no more lines came by `now` (ns)."""

    __slots__ = ("end_of_run", "now")

    def __init__(self, stream: str, now: int, end_of_run: bool) -> None:
        super().__init__(stream, now, [], nbytes=0)
        self.now = now
        self.end_of_run = end_of_run


class DriverProcessing:
    """One in-step driver's processing of a container's streams."""

    def __init__(
        self,
        config: ProcessingConfig,
        max_line: int,
        stats: ProcessingStats,
        start: Callable[[str], Checkpoint],
    ) -> None:
        self.config = config
        self.max_line = max_line
        self.stats = stats
        self.start = start  # where the driver is in a stream when its first batch comes
        self.wakes: list[Callable[[], None]] = []  # told when a deadline appears or moves (the copier waits)
        self.streams: dict[str, StreamProcessor] = {}
        self._deadline = 0

    def _stream(self, name: str) -> StreamProcessor:
        processor = self.streams.get(name)
        if processor is None:
            processor = self.streams[name] = StreamProcessor(
                self.config, name, self.max_line, self.stats, self.start(name)
            )
        return processor

    def feed(self, batch: Batch, first_line: int, checkpoint: Checkpoint) -> list[Processed]:
        if isinstance(batch, FlushBatch):
            processor = self.streams.get(batch.stream)
            if processor is None:
                out = []
            elif batch.end_of_run:
                out = processor.end_run()
            else:
                due = processor.deadline()
                out = processor.flush() if due and due <= batch.now else []
        else:
            out = self._stream(batch.stream).feed(batch, first_line, checkpoint)
        self._check_deadline()
        return out

    def deadline(self) -> int:
        return self._deadline

    def _check_deadline(self) -> None:
        deadline = min((d for d in (p.deadline() for p in self.streams.values()) if d), default=0)
        if deadline != self._deadline:
            self._deadline = deadline
            if deadline:
                for wake in self.wakes:
                    wake()


class Processing:
    """A driver without a ledger (non-blocking mode, tty containers) behind its own processing."""

    def __init__(self, driver: LogDriver, processing: DriverProcessing | None) -> None:
        self.driver = driver
        self.name = driver.name
        self.processing = processing
        self._lines: dict[str, int] = {}  # lines seen per stream: the numbers processing counts in
        copy_abilities(self, driver)

    async def log(self, batch: Batch) -> None:
        processing = self.processing
        if processing is None:
            if not isinstance(batch, FlushBatch):
                await self.driver.log(batch)
            return
        first = self._lines.get(batch.stream, 0)
        self._lines[batch.stream] = first + len(batch)
        for processed in processing.feed(batch, first, Checkpoint(0, 0, first + len(batch))):
            if len(processed.batch):
                await self.driver.log(processed.batch)

    async def close(self) -> None:
        await self.driver.close()


class Flusher:
    """The copier's `Idle` for in-step drivers with processing: wall-clock flushes and run ends, sent as
    `FlushBatch`es through `sink` (the router)."""

    def __init__(
        self,
        processings: list[DriverProcessing],
        sink: Callable[[Batch], Awaitable[None]],
        mark: Callable[[str], None] | None = None,
    ) -> None:
        self.processings = processings
        self.sink = sink
        self.mark = mark  # records a flush in the spool (none for a tty: nobody else reads it)
        self._sent = 0  # the time of the last flush sent
        # Never sooner than a timeout after the start: a restarted daemon first takes what waited in the pipe.
        self._not_before = time.time_ns() + processings[0].config.timeout_ns
        self._changed = asyncio.Event()
        for processing in processings:
            processing.wakes.append(self._changed.set)

    def deadline(self) -> int:
        """The earliest deadline not flushed yet (0: none): a flush was sent for the others, and the drivers
        tell (`wake`) when processing it, or later lines, moved their deadline."""
        deadline = min((d for d in (p.deadline() for p in self.processings) if d), default=0)
        if deadline:
            deadline = max(deadline, self._not_before)
        return deadline if deadline > self._sent else 0

    async def wait(self, arrival: Awaitable[None]) -> bool:
        """Until `arrival`, the earliest deadline, or a driver's deadline moved; whether a deadline passed."""
        self._changed.clear()
        deadline = self.deadline()
        waits = [asyncio.ensure_future(arrival), asyncio.ensure_future(self._changed.wait())]
        timeout = max(0.0, (deadline - time.time_ns()) / 1e9) if deadline else None
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return bool(deadline) and deadline <= time.time_ns()

    async def flush(self, now: int = 0) -> None:
        now = now or time.time_ns()
        self._sent = now
        due = {
            name
            for processing in self.processings
            for name, processor in processing.streams.items()
            if 0 < processor.deadline() <= now
        }
        for stream in sorted(due):
            if self.mark is not None:
                self.mark(stream)
            await self.sink(FlushBatch(stream, now, end_of_run=False))

    async def end_run(self, stream: str) -> None:
        await self.sink(FlushBatch(stream, time.time_ns(), end_of_run=True))
