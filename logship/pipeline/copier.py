"""The copier: a container's output, batches of lines out to the drivers that go in step with it.

With FIFOs (every container without a tty) the splicer (`logship.pipeline.splicer`) takes the bytes from
the pipes into the spool, so a daemon killed at any moment loses nothing it read, and the copier splits
them from there with a cursor per stream (`logship.pipeline.cursor`), merging the streams in the order
they were read. A slow in-step driver makes the container wait (blocking mode) through the splicer,
which stays within IN_STEP_LAG of the copier. Disk-buffered drivers read the same spool with cursors of
their own.

A pty is not a pipe: its output cannot be spliced, nor replayed. It is read and split directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from logship.asyncfd import wait_readable
from logship.pipeline.cursor import StreamCursor, earliest
from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch
from logship.pipeline.splitter import LineSplitter
from logship.pipeline.spool import READ_SIZE, Spool

log = logging.getLogger("logship.spool")

COPY_CHUNK = 256 << 10  # processed at a time, between turns of the event loop

Sink = Callable[[Batch], Awaitable[None]]
SpooledSink = Callable[[Batch, int, Checkpoint], Awaitable[None]]  # a batch, its first line, its checkpoint
RawSink = Callable[[str, bytes], Awaitable[None]]


class Idle(Protocol):
    """The in-step drivers' processing, as the copier sees it (`logship.pipeline.processing.instep.Flusher`):
    multiline events that the wall clock ends when no more lines come, and the end of each run."""

    async def wait(self, arrival: Awaitable[None]) -> bool:
        """Until `arrival` (input), an open event's deadline, or a driver's deadline moved; whether a deadline
        passed."""

    async def flush(self, now: int = 0) -> None:
        """The copier has nothing more to read and a deadline passed."""

    async def end_run(self, stream: str) -> None:
        """A run of the container ended on `stream` (its last line, if cut short, was delivered)."""


async def copy_stream(
    fd: int,
    splitter: LineSplitter,
    deliver: Sink,
    on_raw: RawSink | None = None,
    on_read: Callable[[int], None] | None = None,
    idle: Idle | None = None,
) -> None:
    """Read `fd` (non-blocking) until EOF, handing each chunk's batches to `deliver`.

    `deliver` may wait (blocking mode): reading stops meanwhile, the pipe fills and the container's
    writes block, which is the backpressure Docker users expect. `on_raw` sees the bytes as read, before
    line splitting, for attached clients. A pty master reports EIO once the container side is closed:
    that is its EOF. The fd is not closed here.
    """
    while await copy_one_read(fd, splitter, deliver, on_raw, on_read, idle):
        pass
    for batch in splitter.finish(time.time_ns()):
        await deliver(batch)
    if idle is not None:
        await idle.end_run(splitter.stream)


async def copy_one_read(
    fd: int,
    splitter: LineSplitter,
    deliver: Sink,
    on_raw: RawSink | None = None,
    on_read: Callable[[int], None] | None = None,
    idle: Idle | None = None,
) -> bool:
    """One read of `fd` handed on as batches (or, when the pipe is empty, a wait until it is readable);
    False once the input has ended: EOF, or EIO from a pty master whose container side is closed."""
    try:
        chunk = os.read(fd, READ_SIZE)
    except BlockingIOError:
        if idle is None:
            await wait_readable(fd)
        elif await idle.wait(wait_readable(fd)):
            await idle.flush()  # a tty is read by nobody else: no need to look for more input first
        return True
    except OSError as err:
        if err.errno == errno.EIO:
            return False
        raise
    if not chunk:
        return False
    if on_read is not None:
        on_read(len(chunk))
    if on_raw is not None:
        await on_raw(splitter.stream, chunk)
    for batch in splitter.feed(chunk, time.time_ns()):
        await deliver(batch)
    return True


class SpooledCopy:
    """A container's streams through the spool to the in-step drivers, merged in the order the splicer read
    them (`earliest`): first what a previous daemon spooled but the in-step drivers did not write, then
    whatever the splicer brings, until every stream's input has ended and been processed.

    A read is processed COPY_CHUNK at a time, with a turn for the event loop after each, so the splicer
    keeps reading the pipes (and other containers keep going) while a burst is processed.
    """

    def __init__(
        self,
        spool: Spool,
        cursors: list[StreamCursor],
        deliver: SpooledSink,
        on_raw: RawSink | None = None,
        idle: Idle | None = None,
    ) -> None:
        self.spool = spool
        self.cursors = cursors
        self.deliver = deliver
        self.on_raw = on_raw
        self.idle = idle
        self._progress = asyncio.Event()
        self._over = False  # run() has returned: nothing to make way for

    def lag(self) -> int:
        """Bytes spooled that are not processed yet (the splicer stays within IN_STEP_LAG of them)."""
        return sum(cursor.backlog() for cursor in self.cursors)

    async def wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    async def make_way(self, bound_s: float) -> None:
        """Until this copier is within a chunk of what is spooled, or `bound_s` has passed. A disk buffer of the
        same container waits here before each read: on a busy event loop the in-step drivers, and so the
        container, go first, and the backends that ship off the host take the loop's remaining time (the
        total work is the same; it is done after the burst rather than during it). Bounded, so that a
        container that floods for ever does not starve its disk buffers."""
        if self._over or self.lag() <= COPY_CHUNK:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound_s
        while not self._over and self.lag() > COPY_CHUNK:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_progress(), remaining)

    async def run(self) -> None:
        try:
            while True:
                cursor = earliest(self.cursors)
                if cursor is None:
                    if all(c.spooled.input_ended.is_set() and not c.has_more() for c in self.cursors):
                        return
                    self._progress.set()
                    if self.idle is None:
                        await self.spool.wait_arrival()
                    # Nothing more was read by the deadline: a line read later is later still (see processing.events).
                    elif await self.idle.wait(self.spool.wait_arrival()) and earliest(self.cursors) is None:
                        await self.idle.flush()
                    continue
                read = cursor.read(COPY_CHUNK)
                if read is None:
                    continue
                chunk, deliveries = read
                cursor.spooled.lines = cursor.lines
                if self.on_raw is not None and chunk:
                    await self.on_raw(cursor.stream, chunk)
                for batch, first_line, checkpoint in deliveries:
                    await self.deliver(batch, first_line, checkpoint)
                if not chunk and self.idle is not None:  # a run ended
                    await self.idle.end_run(cursor.stream)
                self._progress.set()
                await asyncio.sleep(0)
        finally:
            self._over = True
            self._progress.set()
            for cursor in self.cursors:
                cursor.close()
