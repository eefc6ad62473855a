"""A disk buffer: a driver that ships off the host (fluentd, awslogs, ...) reads the container's spool with
a cursor of its own, so a slow or dead backend holds neither the container nor its other drivers until
the driver's disk budget is used up.

    spool --cursor per stream--> split (the times recorded at splice) --> driver.log --> backend
                                                                 ledger <-- confirmed --/

- Order: both streams are read in the order their bytes were read from the container (the spool's read
  times), as the copier hands them to the in-step drivers.
- Progress: the driver's ledger moves only when lines are confirmed (`ConfirmsDelivery`: fluentd's ack or
  socket send, CloudWatch's answer), or when `log()` returns for a driver that cannot say. A daemon killed
  at any moment resends at most what was not confirmed: at least once, in order.
- Budget (`buffer-max-size`, per container and driver; `log-buffer-total` for the daemon, see
  `logship.pipeline.budget`): what is spooled but not yet taken by the driver. When it is used up, blocking
  mode holds the container's pipe (the copier waits before its next splice), non-blocking mode gives up the
  oldest buffered lines, at line boundaries, counted exactly: the newest lines are the ones a person
  reading the logs after an outage needs, and Fluent Bit's `storage.total_limit_size` makes the same choice
  (Vector lets you choose, `when_full: drop_newest` by default).
- A container that ends keeps its undelivered lines: the buffer goes on delivering after the end
  (`finish`), also after a daemon restart (see `logship.daemon.pending`).
- Processing (`logship.pipeline.processing`, when the container has it): the buffer processes what it
  reads itself, from the spool's bytes and read times, so it makes the same records as any other reader,
  also an hour later or after a restart; its ledger then records where the records it delivered end (an
  open multiline event is not delivered: a restart resumes at its first line). When it has read
  everything, an open event goes once the wall clock passes its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from logship.drivers.base import ConfirmsDelivery, Flushes, LogDriver, ReportsDelivery, Undelivered
from logship.pipeline.cursor import StreamCursor, earliest
from logship.pipeline.ledger import Checkpoint, Ledger
from logship.pipeline.message import Batch
from logship.pipeline.processing.config import ProcessingConfig
from logship.pipeline.processing.stream import Processed, StreamProcessor, delivered_after
from logship.pipeline.spool import MARK_FLUSH, READ_SIZE, Spool
from logship.pipeline.stats import DiskStats, DriverStats, ProcessingStats

log = logging.getLogger("logship.diskbuffer")

DEFAULT_BUFFER_MAX_SIZE = 512 << 20
MIN_READ = 16 << 10
MAKE_WAY_S = 0.05  # the longest a read waits for the container's in-step copier to catch up (make_way)
GIVE_UP_STEP = 1 << 20  # non-blocking: give up at least this much at once (or a 16th of the budget)
RATE_WINDOW_S = 2.0  # the catch-up rate is measured over at least this long
CLOSE_BOUND_S = 10.0  # closing a driver that has confirmed everything: its own flush, bounded
STOP_BOUND_S = 2.0  # daemon shutdown: what is not confirmed by then stays in the spool for the next daemon


async def _wait_until(arrival: Awaitable[None], deadline: int) -> None:
    """Until `arrival`, or the wall clock reaches `deadline` (ns; 0: no deadline)."""
    if not deadline:
        await arrival
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(arrival, max(0.0, (deadline - time.time_ns()) / 1e9))


@dataclass(frozen=True)
class BufferConfig:
    limit: int = DEFAULT_BUFFER_MAX_SIZE  # bytes spooled but not taken by the driver
    blocking: bool = True
    max_line: int = 16 * 1024
    processing: ProcessingConfig | None = None  # the driver's processing (None: lines as they are)


@dataclass
class _InFlight:
    """A batch handed to the driver and not confirmed delivered yet."""

    lines: int
    stream: str
    checkpoint: Checkpoint  # where the driver is once the whole batch is delivered
    first_line: int  # the number of its first line
    restart: Checkpoint  # a clean restart point before its first line: part of it delivered resumes there
    source_lines: int = 0  # the stream's lines it completes
    ends: list[int] | None = None  # processing made it: the source line after each record


class DiskBuffer:
    """One disk-buffered driver of one container."""

    def __init__(
        self,
        container: str,
        spool: Spool,
        driver: LogDriver,
        stats: DriverStats,
        config: BufferConfig,
        processing_stats: ProcessingStats | None = None,
    ) -> None:
        self.container = container
        self.spool = spool
        self.driver = driver
        self.name = driver.name
        self.stats = stats
        self.config = config
        self.ledger: Ledger = spool.ledger(driver.name)
        self.cursors: dict[str, StreamCursor] = {}
        self.processors: dict[str, StreamProcessor] = {}
        # The container's counters when this is its own driver's buffer; other readers count for nobody.
        self.processing_stats = processing_stats if processing_stats is not None else ProcessingStats()
        self._resumed: dict[str, int] = {}
        self._in_hand: dict[str, int] = {}  # the size of the read being handed to the driver, by stream
        # A read in hand counts against the budget: a small budget reads less at a time.
        self._read_size = max(MIN_READ, min(READ_SIZE, config.limit // 4))
        self._inflight: deque[_InFlight] = deque()
        self._unmatched = 0  # confirmed lines not yet matched to an in-flight batch
        self._released = 0  # lines in flight when a full disk made the buffer let go of them (release_disk)
        self._confirms = isinstance(driver, ConfirmsDelivery)
        if isinstance(driver, ConfirmsDelivery):
            driver.set_delivery_listener(self._confirmed)
        self._progress = asyncio.Event()  # set whenever the backlog shrank or the buffer ended
        self._closing = False
        self._stopped = False
        self.done = asyncio.Event()  # everything delivered (or given up) and the driver closed
        self.confirmed_lines = 0
        self._rate_mark = (time.monotonic(), 0)
        self._started = time.time_ns()
        stats.disk = DiskStats(limit=config.limit)
        spool.keepers.append(self)
        self._task: asyncio.Task[None] | None = None
        self._make_way: Callable[[float], Awaitable[None]] | None = None

    # -- the spool's view --

    def keep_from(self, stream: str) -> int:
        """A restarted daemon resumes from the saved checkpoint: the spool keeps everything after it."""
        return self.ledger.saved_checkpoint(stream).offset

    def backlog(self) -> int:
        """Bytes spooled that the driver has not taken yet (a read being handed to it counts whole): what
        the budget counts."""
        total = sum(self._in_hand.values())
        for name, spooled in self.spool.streams.items():
            total += spooled.end - self._cursor(name).offset
        return total

    # -- running --

    def start(self, after: asyncio.Event | None = None) -> None:
        """Start reading; `after`: an earlier delivery of the same container's lines to finish first."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(after), name=f"buffer-{self.name}-{self.container[:12]}"
        )

    def behind(self, make_way: Callable[[float], Awaitable[None]]) -> None:
        """Let the container's in-step copier go first: `make_way(bound)` is awaited before each read (see
        SpooledCopy.make_way)."""
        self._make_way = make_way

    def _cursor(self, stream: str) -> StreamCursor:
        cursor = self.cursors.get(stream)
        if cursor is None:
            point = self.ledger.checkpoint(stream)
            self._resumed[stream] = point.delivered  # lines the driver had before a restart: not sent again
            cursor = self.cursors[stream] = StreamCursor(self.spool.streams[stream], point, self.config.max_line)
            self._process_from(stream, point)
        return cursor

    def _process_from(self, stream: str, point: Checkpoint) -> None:
        if self.config.processing is not None:
            self.processors[stream] = StreamProcessor(
                self.config.processing, stream, self.config.max_line, self.processing_stats, point
            )

    def _deadline(self) -> int:
        """When an open multiline event is due if no more lines come (wall clock, ns); 0: none. Never sooner
        than a timeout after the buffer started: a restarted daemon first takes what waited in the pipe."""
        deadline = min((d for d in (p.deadline() for p in self.processors.values()) if d), default=0)
        if deadline and self.config.processing is not None:
            deadline = max(deadline, self._started + self.config.processing.timeout_ns)
        return deadline

    def _next(self) -> StreamCursor | None:
        """The stream whose next bytes were read from the container first."""
        return earliest(self._cursor(name) for name in self.spool.streams)

    def _input_over(self) -> bool:
        return self._closing and all(s.input_ended.is_set() for s in self.spool.streams.values())

    async def _run(self, after: asyncio.Event | None) -> None:
        try:
            if after is not None:
                await after.wait()
            while True:
                cursor = self._next()
                if cursor is None:
                    if self._input_over():
                        break
                    deadline = self._deadline()
                    await _wait_until(self.spool.wait_arrival(), deadline)
                    if 0 < deadline <= time.time_ns() and self._next() is None:  # see processing.events
                        await self._flush_processing(end_of_run=False)
                    continue
                if self._make_way is not None:
                    await self._make_way(MAKE_WAY_S)
                start = cursor.offset
                restart = Checkpoint(cursor.clean, cursor.clean_line)
                read = cursor.read(self._read_size)
                if read is None:
                    continue
                self._in_hand[cursor.stream] = cursor.offset - start
                for batch, first_line, checkpoint in read[1]:
                    await self._hand(batch, first_line, checkpoint, restart)
                processor = self.processors.get(cursor.stream)
                if not read[0] and processor is not None:  # a run ended: nothing is held past it
                    for processed in processor.end_run():
                        await self._hand_processed(processed)
                del self._in_hand[cursor.stream]
                self.spool.trim(cursor.stream)
            await self._flush_processing(end_of_run=True)
            if isinstance(self.driver, Flushes):
                self.driver.flush_soon()  # nothing more will come: no batch to fill
            while self._inflight:  # everything read: until the backend has confirmed it
                self._progress.clear()
                await self._progress.wait()
            await self._close_driver()
        finally:
            for cursor in self.cursors.values():
                cursor.close()
            if not self._stopped:
                self.done.set()
                self._progress.set()

    async def _flush_processing(self, end_of_run: bool) -> None:
        """The open events that are due (all of them at the end): handed on. A flush is marked in the spool, so
        every other reader ends the event there too."""
        now = time.time_ns()
        for name, processor in list(self.processors.items()):
            if end_of_run:
                results = processor.end_run()
            elif 0 < processor.deadline() <= now:
                self.spool.streams[name].add_mark(MARK_FLUSH)
                results = processor.flush()
            else:
                continue
            for processed in results:
                await self._hand_processed(processed)

    async def _hand(self, batch: Batch, first_line: int, checkpoint: Checkpoint, restart: Checkpoint) -> None:
        done = self._resumed.get(batch.stream, 0)
        if checkpoint.delivered <= done:
            return  # resumed after a restart: the backend has every line of it
        if first_line < done:
            batch = batch.take(done - first_line)[1]
            first_line = done
        processor = self.processors.get(batch.stream)
        if processor is not None:
            for processed in processor.feed(batch, first_line, checkpoint):
                await self._hand_processed(processed)
            return
        self._inflight.append(_InFlight(len(batch), batch.stream, checkpoint, first_line, restart, len(batch)))
        try:
            await self.driver.log(batch)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # lost for this driver: counted, and the buffer goes on with the next batch
            self.stats.record_failed(len(batch), f"{type(err).__name__}: {err}")
            self._confirmed(len(batch))
            return
        self.stats.record_written(len(batch), batch.nbytes)
        if not self._confirms:
            self._confirmed(len(batch))

    async def _hand_processed(self, processed: Processed) -> None:
        batch = processed.batch
        # Not the batch itself: its records (and their fields) are not kept alive until the backend confirms.
        entry = _InFlight(
            len(batch),
            batch.stream,
            processed.checkpoint,
            processed.first_line,
            processed.restart,
            processed.lines,
            processed.ends,
        )
        self._inflight.append(entry)
        if not len(batch):  # filtered lines, or lines held: only progress
            self._confirmed(0)
            return
        try:
            await self.driver.log(batch)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.stats.record_failed(processed.lines, f"{type(err).__name__}: {err}")
            self._confirmed(len(batch))
            return
        self.stats.record_written(processed.lines, batch.nbytes)
        if not self._confirms:
            self._confirmed(len(batch))

    def _confirmed(self, lines: int) -> None:
        """The driver delivered (or gave up on) `lines` more lines, in the order it was given them."""
        self.confirmed_lines += lines
        if self._released:
            released = min(lines, self._released)
            self._released -= released
            lines -= released
        self._unmatched += lines
        reached: dict[str, Checkpoint] = {}
        while self._inflight and self._inflight[0].lines <= self._unmatched:
            entry = self._inflight.popleft()
            self._unmatched -= entry.lines
            reached[entry.stream] = entry.checkpoint
        if not self._inflight:
            self._unmatched = 0
        elif self._unmatched:  # part of a batch delivered: a restart skips that part
            head = self._inflight[0]
            delivered = delivered_after(head.ends, head.first_line, self._unmatched)
            reached[head.stream] = Checkpoint(head.restart.offset, head.restart.line, delivered)
        moved = False
        for stream, checkpoint in reached.items():
            # Never back: a batch read before a full disk let go of the spool under it restarts earlier.
            if _ahead(checkpoint, self.ledger.checkpoint(stream)):
                self.ledger.acknowledge(stream, checkpoint, save=False)
                moved = True
        if moved:
            self._save()
        self._progress.set()

    def _save(self) -> None:
        """Save the progress (a ledger's blocks are taken when it is made: this fails only on an I/O error,
        which must not stop delivery: the next save tries again)."""
        try:
            self.ledger.flush()
        except OSError as err:
            log.error(
                "cannot save the progress of log driver %s for container %s: %s", self.name, self.container[:12], err
            )

    # -- budget --

    def over_budget(self, extra: int = 0) -> int:
        """Bytes past the budget (and past `extra`, the daemon-wide share), 0 when within it."""
        if self._stopped or self.done.is_set():
            return 0
        return max(self.backlog() - self.config.limit, extra, 0)

    async def wait_progress(self, timeout: float) -> None:
        """Until the driver took more, the buffer ended, or `timeout` passed."""
        if self.done.is_set() or self._stopped:
            return
        self._progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout)

    def give_up_oldest(self, nbytes: int) -> None:
        """Non-blocking mode over budget: give up at least `nbytes` of the oldest lines not yet taken, ending
        at a line boundary; every line given up is counted as dropped."""
        want = max(nbytes, min(GIVE_UP_STEP, self.config.limit // 16))
        while want > 0:
            cursor = self._next()
            if cursor is None:
                return
            target = cursor.line_boundary(cursor.offset + want)
            if target <= cursor.offset:
                return  # one line longer than everything buffered: nothing to cut at
            held = self._held_lines(cursor.stream)  # an open event's lines go with them: counted too
            lines, given = cursor.skip_to(target)
            want -= given
            self.stats.lines_dropped += lines + held
            if held or cursor.stream in self.processors:
                self._process_from(cursor.stream, cursor.checkpoint)
            self._inflight.append(_InFlight(0, cursor.stream, cursor.checkpoint, cursor.lines, cursor.checkpoint))
            self._confirmed(0)
            self.spool.trim(cursor.stream)

    def _held_lines(self, stream: str) -> int:
        """Lines processing holds for `stream` (an open event, a long line): read, not handed on."""
        processor = self.processors.get(stream)
        held = processor.held() if processor is not None else None
        return self.cursors[stream].lines - held[1] if held is not None else 0

    def release_disk(self, nbytes: int) -> bool:
        """Non-blocking mode on a full disk: as a used-up budget, give up the oldest lines not yet taken, and
        let go of the spool under the lines the driver holds in memory (still sent, but a crash now loses
        them, as it loses a non-blocking memory buffer), so their segments can go. Whether anything was
        freed."""
        before = self.backlog()
        self.give_up_oldest(nbytes)
        released = sum(entry.lines for entry in self._inflight) - self._unmatched
        if released:
            self._released += released
            self._inflight.clear()
            self._unmatched = 0
        moved = False
        for name, cursor in self.cursors.items():
            if cursor.checkpoint != self.ledger.checkpoint(name):
                self.ledger.acknowledge(name, cursor.checkpoint, save=False)
                moved = True
        self._save()
        for name in self.cursors:
            self.spool.trim(name)
        return moved or self.backlog() < before

    # -- visibility --

    def refresh_stats(self) -> DiskStats:
        """The buffer's figures: what is on disk and not confirmed delivered (bytes, lines, the oldest line's
        read time), and the rate of confirmations lately."""
        if isinstance(self.driver, ReportsDelivery) and not self._stopped:  # as for a driver in step
            self.stats.take_counters(self.driver.delivery_counters())  # (given up: the buffer's word is last)
        disk = self.stats.disk if self.stats.disk is not None else DiskStats(limit=self.config.limit)
        self.stats.disk = disk
        now = time.monotonic()
        since, counted = self._rate_mark
        if now - since >= RATE_WINDOW_S:
            disk.catchup_lps = (self.confirmed_lines - counted) / (now - since)
            self._rate_mark = (now, self.confirmed_lines)
        oldest = 0
        lines = 0
        waiting = 0
        for name, spooled in self.spool.streams.items():
            point = self.ledger.checkpoint(name)
            if point.offset >= spooled.end:
                continue
            waiting += spooled.end - point.offset
            try:
                stamp, _ = spooled.region(point.offset)
            except FileNotFoundError:  # the spool was let go of under a full disk
                stamp = 0
            if stamp and (not oldest or stamp < oldest):
                oldest = stamp
            lines += max(0, spooled.lines - point.delivered)
        disk.bytes = waiting
        disk.oldest_ns = oldest
        disk.lines = lines
        return disk

    # -- ending --

    def finish(self) -> None:
        """No more input will come once the streams have ended: deliver the rest, then close the driver."""
        self._closing = True
        self.spool.arrived()
        if self.stats.disk is not None:
            self.stats.disk.pending = True

    async def _close_driver(self) -> None:
        try:
            await asyncio.wait_for(self.driver.close(), CLOSE_BOUND_S)
        except Undelivered as err:
            self.stats.record_failed(err.lines, f"not delivered at close: {err.reason}")
        except TimeoutError:
            self.stats.record_failed(0, f"not delivered at close: the driver did not finish within {CLOSE_BOUND_S:g}s")
        except Exception as err:
            self.stats.record_failed(0, f"close: {type(err).__name__}: {err}")
            log.error("closing log driver %s for container %s: %s", self.name, self.container[:12], err)
        if isinstance(self.driver, ReportsDelivery):  # its last figures: nobody asks a closed buffer again
            self.stats.take_counters(self.driver.delivery_counters())
        if self.stats.disk is not None:
            self.stats.disk.pending = False
            self.stats.disk.bytes = 0

    async def stop(self) -> None:
        """Daemon shutdown: stop reading; whatever the backend has not confirmed stays in the spool, and the
        next daemon sends it (nothing is counted as failed)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.driver.close(), STOP_BOUND_S)
        self._save()

    async def abandon(self, reason: str) -> int:
        """Give up what is left (buffer-max-age passed, or dropped on purpose): the lines given up, counted
        as failed."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = sum(entry.source_lines for entry in self._inflight) - self._unmatched
        for name in list(self.spool.streams):
            cursor = self._cursor(name)
            left += cursor.count_lines(cursor.spooled.end) + self._held_lines(name)
            cursor.close()
        self.stats.record_failed(left, reason)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.driver.close(), STOP_BOUND_S)
        self.done.set()
        return left


def _ahead(new: Checkpoint, old: Checkpoint) -> bool:
    """Whether `new` is further than `old` (a later restart point, or more of its lines delivered)."""
    return new.offset > old.offset or (new.offset == old.offset and new.delivered > old.delivered)
