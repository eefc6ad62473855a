"""The copier: a container's stdout/stderr in, batches of lines out to the drivers that go in step with it.

With FIFOs (every container without a tty) the bytes go from the pipe into the spool first, by splice, and
the copier splits them from there with its own cursor (`logship.pipeline.cursor`), so a daemon killed at
any moment loses nothing it read. One read is processed before the next is spliced: a slow in-step
driver makes the container wait (blocking mode), and the spool stays small. Disk-buffered drivers read
the same spool with cursors of their own; they hold the container only through the `Gate` asked before
each splice, once their disk budget is used up.

A pty is not a pipe: its output cannot be spliced, nor replayed. It is read and split directly.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from logship.asyncfd import wait_readable
from logship.pipeline.cursor import StreamCursor
from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch
from logship.pipeline.splitter import LineSplitter
from logship.pipeline.spool import READ_SIZE, StreamSpool

log = logging.getLogger("logship.spool")

FREED_PAUSE_S = 0.05
FULL_REPORT_INTERVAL_S = 60.0

Sink = Callable[[Batch], Awaitable[None]]
SpooledSink = Callable[[Batch, int, Checkpoint], Awaitable[None]]  # a batch, its first line, its checkpoint
RawSink = Callable[[str, bytes], Awaitable[None]]


class Gate(Protocol):
    """What the copier asks before taking more from a container's pipe into the spool."""

    async def before_splice(self) -> int:
        """Wait while a disk budget is used up (blocking mode), or make room (non-blocking mode); how many
        bytes the next splice may take."""

    def bypassed(self, lines: int) -> None:
        """Lines that went past the spool (a full disk in non-blocking mode): disk buffers never see them."""

    def disk_full(self) -> bool:
        """Non-blocking mode on a full disk: free spool space as a used-up budget would; whether any was."""


async def copy_stream(
    fd: int,
    splitter: LineSplitter,
    deliver: Sink,
    on_raw: RawSink | None = None,
    on_read: Callable[[int], None] | None = None,
) -> None:
    """Read `fd` (non-blocking) until EOF, handing each chunk's batches to `deliver`.

    `deliver` may wait (blocking mode): reading stops meanwhile, the pipe fills and the container's
    writes block, which is the backpressure Docker users expect. `on_raw` sees the bytes as read, before
    line splitting, for attached clients. A pty master reports EIO once the container side is closed:
    that is its EOF. The fd is not closed here.
    """
    while await copy_one_read(fd, splitter, deliver, on_raw, on_read):
        pass
    for batch in splitter.finish(time.time_ns()):
        await deliver(batch)


async def copy_one_read(
    fd: int,
    splitter: LineSplitter,
    deliver: Sink,
    on_raw: RawSink | None = None,
    on_read: Callable[[int], None] | None = None,
) -> bool:
    """One read of `fd` handed on as batches (or, when the pipe is empty, a wait until it is readable);
    False once the input has ended: EOF, or EIO from a pty master whose container side is closed."""
    try:
        chunk = os.read(fd, READ_SIZE)
    except BlockingIOError:
        await wait_readable(fd)
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
    """One stream through the spool: what a previous daemon spooled but the in-step drivers did not write
    first, then the FIFO until EOF. `fd` None: the input has already ended (the container is gone), only
    what the spool holds is processed."""

    def __init__(
        self,
        spooled: StreamSpool,
        cursor: StreamCursor,
        deliver: SpooledSink,
        on_raw: RawSink | None = None,
        on_read: Callable[[int], None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.spooled = spooled
        self.cursor = cursor
        self.deliver = deliver
        self.on_raw = on_raw
        self.on_read = on_read
        self.gate = gate
        self._full_since = 0.0  # monotonic time the disk was found full, 0 while there is space
        self._full_reported = False  # this time it was full was said in the daemon log
        self._full_said_at = -FULL_REPORT_INTERVAL_S
        self._full_unsaid = 0  # times it was full since the last report
        self._full_pause = 0.05

    async def run(self, fd: int | None) -> None:
        spooled = self.spooled
        if fd is None:
            spooled.input_ended.set()
            spooled.end_run()
        try:
            while True:
                read = self.cursor.read()
                if read is not None:
                    chunk, deliveries = read
                    if self.on_raw is not None and chunk:
                        await self.on_raw(spooled.stream, chunk)
                    spooled.lines = self.cursor.lines
                    for batch, first_line, checkpoint in deliveries:
                        await self.deliver(batch, first_line, checkpoint)
                    continue
                if fd is None or spooled.input_ended.is_set():
                    return
                await self._splice(fd)
        finally:
            self.cursor.close()

    async def _splice(self, fd: int) -> None:
        spooled = self.spooled
        limit = READ_SIZE if self.gate is None else await self.gate.before_splice()
        try:
            moved = spooled.splice_from(fd, limit)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._report_full(err)
            if spooled.spool.blocking:
                await self._wait_for_space()
            elif self.gate is not None and self.gate.disk_full():
                await asyncio.sleep(FREED_PAUSE_S)  # the freed segments are deleted off the event loop
            else:
                await self._bypass(fd)
            return
        if self._full_since:
            if self._full_reported:
                log.warning(
                    "space is available again for the spool of %s in %s: spooling resumed after %.1f s%s",
                    spooled.stream,
                    spooled.directory,
                    time.monotonic() - self._full_since,
                    ", none lost" if spooled.spool.blocking else "",
                )
            self._full_since = 0.0
            self._full_reported = False
        if moved < 0:
            await wait_readable(fd)
        elif moved == 0:
            spooled.input_ended.set()
            spooled.end_run()
            spooled.spool.arrived()  # readers waiting for bytes learn that the run ended
        elif self.on_read is not None:
            self.on_read(moved)

    def _report_full(self, err: OSError) -> None:
        """Once per full disk, and at most once a minute: a disk buffer that frees space only to see it taken
        again by the next reads fills it many times a minute."""
        if self._full_since:
            return
        now = time.monotonic()
        self._full_since = now
        self._full_pause = 0.05
        if now - self._full_said_at < FULL_REPORT_INTERVAL_S:
            self._full_unsaid += 1
            return
        self._full_said_at = now
        self._full_reported = True
        if self.spooled.spool.blocking:
            consequence = "the container's output waits in its pipe (the container blocks once the pipe is full)"
        else:
            consequence = (
                "non-blocking mode: disk-buffered drivers give up their oldest lines to make room, and with none "
                "left the output bypasses the spool (not crash-safe; disk-buffered drivers miss it); drops are "
                "counted"
            )
        again = f" (full {self._full_unsaid} more times since the last report)" if self._full_unsaid else ""
        self._full_unsaid = 0
        log.error(
            "no space left to spool the output %s in %s (%s); %s until disk space is freed on that filesystem%s",
            self.spooled.stream,
            self.spooled.directory,
            os.strerror(err.errno or errno.ENOSPC),
            consequence,
            again,
        )

    async def _wait_for_space(self) -> None:
        """Blocking mode with the disk full: the bytes stay in the pipe, losing nothing; retry with a growing
        pause."""
        await asyncio.sleep(self._full_pause)
        self._full_pause = min(self._full_pause * 2, 1.0)

    async def _bypass(self, fd: int) -> None:
        """Non-blocking mode with the disk full: the container must never wait, so one read goes straight to
        the in-step drivers, which drop and count what they cannot take; the disk-buffered ones count it all
        as dropped. The spool stays consistent: these bytes are simply not in it (it had been read to its end
        before splicing was tried)."""
        splitter = self.cursor.splitter
        count = 0

        async def deliver(batch: Batch) -> None:
            nonlocal count
            count += len(batch)
            # Not in the spool: no checkpoint moves (the in-step ledgers stay where the spool's bytes end).
            await self.deliver(batch, -1, self.cursor.checkpoint)

        if not await copy_one_read(fd, splitter, deliver, self.on_raw, self.on_read):
            self.spooled.input_ended.set()
            self.spooled.end_run()
        if self.gate is not None and count:
            self.gate.bypassed(count)
