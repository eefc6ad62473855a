"""A container's output while its logs are open (across the runs of a restart policy): the spool, the
splicer that takes the pipes into it, the copier that reads it in step with the file drivers (json-file,
local, journald, the dual-logging cache) behind the router, and the disk buffers of the drivers that ship
off the host.

    FIFOs --splice--> spool --copier--> router --> in-step drivers
                             \\--disk buffer--> fluentd / awslogs / ... (own pace, own budget)

A pty is not a pipe: a tty container has no spool, and every driver goes in step with its copier.

Processing (multiline, parse=json, redaction, filters; `logship.pipeline.processing`) is per driver: each
disk buffer and each in-step driver processes what it reads itself, as its format asks (json-file, local
and the cache keep a record per line unless multiline-files=events). The container's own driver's reader
counts (`LogStats.processing`). With no processing options nothing of it is built.
The container manager builds an `Output` when a container starts (or is found running, or left output
behind, after a daemon restart) and closes it when the container's logs are closed; disk buffers that
have not delivered everything by then go on as a pending delivery (`logship.daemon.pending`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from logship.drivers import options, registry
from logship.drivers.base import LogDriver, line_limit
from logship.pipeline.acknowledging import InStep
from logship.pipeline.budget import BufferGate, DaemonBudget
from logship.pipeline.copier import RawSink, SpooledCopy, copy_stream
from logship.pipeline.cursor import StreamCursor
from logship.pipeline.diskbuffer import BufferConfig, DiskBuffer
from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import STDERR, STDOUT
from logship.pipeline.processing import config as processing_options
from logship.pipeline.processing.config import ProcessingConfig
from logship.pipeline.processing.instep import DriverProcessing, Flusher, Processing
from logship.pipeline.router import Router
from logship.pipeline.splicer import Splicer
from logship.pipeline.splitter import LineSplitter
from logship.pipeline.spool import MARK_FLUSH, MARK_RESUME, Spool
from logship.pipeline.stats import LogStats, ProcessingStats

log = logging.getLogger("logship.containers")

FINISH_GRACE_S = 0.2  # how long closing waits for disk buffers that are caught up to end on their own


def _start(stream: str) -> Checkpoint:
    """Where a driver without a ledger starts counting a stream's lines."""
    return Checkpoint()


class Output:
    def __init__(
        self,
        container_id: str,
        container_dir: Path,
        log_type: str,
        opts: dict[str, str],
        stats: LogStats,
        drivers: list[LogDriver],
        budget: DaemonBudget,
        spooled: bool,
        restored: bool = False,
        after: asyncio.Event | None = None,
        buffered: list[bool] | None = None,
    ) -> None:
        """`drivers`: the container's driver first, then the dual-logging cache if any. `spooled`: FIFOs
        (no tty). `restored`: the spool a previous daemon left is resumed. `after`: an earlier delivery of
        this container's lines the disk buffers let finish first (order). `buffered`: which drivers read
        the spool at their own pace (by default the container's driver if it ships off the host; a
        benchmark fans one output out to several)."""
        self.container_id = container_id
        mode = options.mode_of(opts)
        blocking = mode != options.NON_BLOCKING
        self.blocking = blocking
        self.stats = stats
        self.budget = budget
        self.spool: Spool | None = None
        self.in_step: InStep | None = None
        self.buffers: list[DiskBuffer] = []
        self.gate: BufferGate | None = None
        self.flusher: Flusher | None = None
        processing = processing_options.config_of(opts) if log_type != "none" else None
        if processing is not None and stats.processing is None:
            stats.processing = ProcessingStats()
        # What each driver gets (json-file, local, the cache: lines), and where it counts: the container's own
        # driver counts for the container, the others for nobody (they process the same lines alike).
        views = [
            None
            if processing is None
            else processing.for_records(
                processing_options.line_records_of(driver.name, registry.get(log_type) if index == 0 else None)
            )
            for index, driver in enumerate(drivers)
        ]
        counters = [
            stats.processing if index == 0 and stats.processing is not None else ProcessingStats()
            for index in range(len(drivers))
        ]
        in_step = list(range(len(drivers)))
        if spooled:
            self.spool = Spool(container_dir, blocking) if restored else Spool.fresh(container_dir, blocking)
            limit = options.buffer_max_size_of(opts)
            if buffered is None:
                buffered = [index == 0 and registry.uses_disk_buffer(log_type) for index in range(len(drivers))]
            if limit:
                in_step = [index for index, own in enumerate(buffered) if not own]
                for index in (index for index, own in enumerate(buffered) if own):
                    driver = drivers[index]
                    driver_stats = stats.for_driver(driver.name, mode, limit)
                    config = BufferConfig(limit, blocking, line_limit([driver]), views[index])
                    self.buffers.append(
                        DiskBuffer(container_id, self.spool, driver, driver_stats, config, counters[index])
                    )
                if self.buffers:
                    self.gate = BufferGate(container_id, self.buffers, budget, blocking)
        in_step_drivers = [drivers[index] for index in in_step]
        each: list[DriverProcessing | None] | None = None
        if processing is not None:
            max_line = line_limit(in_step_drivers)
            each = [self._processing(views[i], max_line, counters[i], drivers[i].name) for i in in_step]
        if self.spool is not None:
            self.in_step = InStep(self.spool, in_step_drivers, blocking, each)
            in_step_drivers = self.in_step.drivers
        elif each is not None:
            in_step_drivers = [Processing(driver, own) for driver, own in zip(in_step_drivers, each, strict=True)]
        self.rate = options.rate_limit_of(opts)
        max_buffer = options.max_buffer_size_of(opts) if not blocking else 0
        self.router = Router(container_id, in_step_drivers, stats, mode, max_buffer)
        active = [own for own in each or [] if own is not None]
        if active:
            sink = self.in_step.tokens(self.router.deliver) if self.in_step is not None else self.router.deliver
            self.flusher = Flusher(active, sink, self._mark_flush if self.spool is not None else None)
        # A restarted daemon marks where it begins reading: what waited in the pipe is read late.
        self._mark_resume = restored and processing is not None and processing.joins
        for buffer in self.buffers:
            budget.register(buffer)
            buffer.start(after)

    @staticmethod
    async def _end_runs(flusher: Flusher) -> None:
        for stream in (STDOUT, STDERR):
            await flusher.end_run(stream)

    def _mark_flush(self, stream: str) -> None:
        assert self.spool is not None
        self.spool.stream(stream).add_mark(MARK_FLUSH)

    def _processing(
        self, view: ProcessingConfig | None, max_line: int, counters: ProcessingStats, name: str
    ) -> DriverProcessing | None:
        """An in-step driver's processing: it starts where its ledger is (none in non-blocking mode or for a
        tty: it counts from the start)."""
        if view is None:
            return None
        start = self.spool.ledger(name).checkpoint if self.spool is not None and self.blocking else _start
        return DriverProcessing(view, max_line, counters, start)

    @property
    def drivers(self) -> list[LogDriver]:
        """Every driver: the in-step ones (readers among them), then the disk-buffered ones."""
        return [*self.router.drivers, *(buffer.driver for buffer in self.buffers)]

    def refresh_stats(self) -> None:
        self.router.refresh_stats()
        for buffer in self.buffers:
            buffer.refresh_stats()

    def copy(
        self,
        streams: list[tuple[int | None, str]],
        publish: RawSink | None,
        count_bytes: Callable[[int], None] | None,
        name: str,
    ) -> list[asyncio.Task[None]]:
        """The tasks that take a run's output ((fd, stream) pairs; fd None: only what the spool holds) to the
        drivers: with a spool, the splicer and the copier (both end once every stream has ended and all is
        processed); for a tty, a copier per stream."""
        max_line = line_limit(self.router.drivers)
        loop = asyncio.get_running_loop()
        spool, in_step = self.spool, self.in_step
        if spool is None or in_step is None:
            return [
                loop.create_task(
                    copy_stream(
                        fd, LineSplitter(stream, max_line), self.router.deliver, publish, count_bytes, self.flusher
                    ),
                    name=f"copy-{stream}-{name}",
                )
                for fd, stream in streams
                if fd is not None
            ]
        in_step.save_progress()  # a restart policy's next run resumes from the saved points
        spool.start_run(stream for _, stream in streams)
        if self._mark_resume:
            self._mark_resume = False
            for _, stream in streams:
                spooled = spool.stream(stream)
                if spooled.end:  # from where the previous daemon's read times end: the rest is read late too
                    spooled.add_mark(MARK_RESUME, spooled.recorded_end())
        cursors = [StreamCursor(spool.stream(s), spool.restart_point(s), max_line) for _, s in streams]
        copier = SpooledCopy(spool, cursors, in_step.to(self.router.deliver), publish, self.flusher)
        for buffer in self.buffers:
            buffer.behind(copier.make_way)
        splicer = Splicer(
            {stream: spool.stream(stream) for _, stream in streams},
            {stream: fd for fd, stream in streams},
            self.blocking,
            copier,
            self.gate,
            count_bytes,
            self._dropped_before_spool,
            self.rate,
        )
        return [
            loop.create_task(splicer.run(), name=f"splice-{name}"),
            loop.create_task(copier.run(), name=f"copy-{name}"),
        ]

    def _dropped_before_spool(self, lines: int) -> None:
        """Lines no driver gets (a rate limit in non-blocking mode, a full disk): read, and dropped for every
        driver."""
        self.stats.lines_read += lines
        for driver in self.stats.drivers:
            driver.lines_dropped += lines

    async def replay(self) -> None:
        """What a previous daemon spooled but did not write out, the container being gone."""
        await asyncio.gather(*self.copy([(None, STDOUT), (None, STDERR)], None, None, self.container_id[:12]))

    async def close(self, timeout: float) -> list[DiskBuffer]:
        """The container's logs are closed: flush the in-step drivers (bounded) and tell the disk buffers no
        more will come. The disk buffers that are still delivering are returned (a pending delivery); the
        spool is removed when there are none."""
        if self.flusher is not None:  # nothing is held past the end (a run end the spool did not record)
            with contextlib.suppress(TimeoutError):  # a driver stuck past the flush bound holds nothing up
                await asyncio.wait_for(self._end_runs(self.flusher), timeout)
        await self.router.close(timeout)
        for buffer in self.buffers:
            buffer.finish()
        if self.buffers:  # a buffer whose backend keeps up ends at once: no pending delivery for it
            await asyncio.wait([asyncio.ensure_future(b.done.wait()) for b in self.buffers], timeout=FINISH_GRACE_S)
        left = [buffer for buffer in self.buffers if not buffer.done.is_set()]
        for buffer in self.buffers:
            if buffer.done.is_set():
                self.budget.unregister(buffer)
        if not left and self.spool is not None:
            self.spool.remove()
        return left

    async def stop(self) -> None:
        """Daemon shutdown with the container left running (live restore): what was read is flushed to the
        in-step drivers, the disk buffers stop where the backend is, and the spool stays for the next daemon."""
        await self.router.close()
        for buffer in self.buffers:
            await buffer.stop()
            self.budget.unregister(buffer)
        if self.spool is not None:
            self.spool.close()
