"""The splicer: a container's output from its FIFOs into its spool, as soon as it is there.

One task per container run takes what every pipe holds, stdout first, each read stamped with the time
just before it (see `logship.pipeline.spool`), then lets the readers (the copier, the disk buffers) work.
It never waits for them to process a read before taking the next: a line written to stderr in the middle
of a burst on stdout is read, and stamped, within what the pipes held at that moment, as Docker's 2 KiB
reads of each stream place it, instead of after the whole burst. The readers merge the streams by those
times (`logship.pipeline.cursor.earliest`), so every driver sees the order the container wrote in, at
the grain of the daemon's reads, with times that never say a line came after lines written later.

What holds it back, so that the container's writes block (blocking mode) as they did when the copier
read the pipe itself:
- the in-step copier more than IN_STEP_LAG behind (slow json-file, local, journald, or a busy daemon);
- a disk buffer whose budget is used up (`Gate.before_splice`);
- a full disk in blocking mode. In non-blocking mode a full disk first makes the disk buffers give up
  their oldest lines (`Gate.disk_full`); with nothing left to give up, the output is read and dropped, a
  line at a time, and every line dropped is counted for every driver;
- a rate limit (`rate-limit`, see `logship.pipeline.ratelimit`), which reads the pipe instead of splicing
  it so it can count lines.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from logship.pipeline.ratelimit import RateLimit
from logship.pipeline.spool import READ_SIZE, StreamSpool

log = logging.getLogger("logship.spool")

IN_STEP_LAG = 4 << 20  # how far the splicer may run ahead of the in-step copier
STEP = 4 << 10  # a stream's first read of a burst while another is open (Docker reads 2 KiB at a time)
FULL_REPORT_INTERVAL_S = 60.0
FREED_PAUSE_S = 0.05
ORDER = ("stdout", "stderr")  # read in this order in a round: a program usually prints, then complains


class Gate(Protocol):
    """What the splicer asks before taking more from a container's pipes into the spool."""

    async def before_splice(self) -> int:
        """Wait while a disk budget is used up (blocking mode), or make room (non-blocking mode); how many
        bytes the next read may take."""

    def bypassed(self, lines: int) -> None:
        """Lines that never reached the spool (a full disk in non-blocking mode): disk buffers never see them."""

    def disk_full(self) -> bool:
        """Non-blocking mode on a full disk: free spool space as a used-up budget would; whether any was."""


class Lag(Protocol):
    """The in-step copier, as the splicer sees it."""

    def lag(self) -> int:
        """Bytes spooled that it has not processed yet."""

    async def wait_progress(self) -> None:
        """Until it has processed more."""


@dataclass
class _Dropping:
    """A stream whose output is being dropped before the spool (non-blocking mode on a full disk)."""

    in_line: bool = False  # what was dropped so far ends inside a line (its newline not seen yet)
    in_cut_line: bool = False  # ... the line whose head is in the spool (its end is dropped: not counted)
    spool_needs_newline: bool = False  # that head is ended with a newline when spooling resumes

    def drop(self, data: bytes) -> int:
        """Lines given up whole in `data` (a line counts once its newline is dropped)."""
        count = data.count(b"\n")
        if count and self.in_cut_line:
            count -= 1
            self.in_cut_line = False
        self.in_line = not data.endswith(b"\n") if b"\n" in data else self.in_line or bool(data)
        return count


class Splicer:
    def __init__(
        self,
        streams: dict[str, StreamSpool],
        fds: dict[str, int | None],
        blocking: bool,
        copier: Lag,
        gate: Gate | None = None,
        on_read: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        rate: RateLimit | None = None,
    ) -> None:
        self.streams = streams
        self.fds = {name: fds[name] for name in ORDER if name in fds}
        self.blocking = blocking
        self.copier = copier
        self.gate = gate
        self.on_read = on_read
        self.on_dropped = on_dropped  # lines dropped before the spool (full disk, rate limit), every driver's
        self.rate = rate
        self._dropping: dict[str, _Dropping] = {}  # streams whose output was dropped and not resumed yet
        self._held: dict[str, tuple[bytes, int]] = {}  # blocking mode: read, not yet spooled (a full disk)
        self._step: dict[str, int] = {}  # the next read's size, by stream (see _rounds)
        self._full_since = 0.0  # monotonic time the disk was found full, 0 while there is space
        self._full_reported = False
        self._full_said_at = -FULL_REPORT_INTERVAL_S
        self._full_unsaid = 0
        self._full_pause = 0.05

    async def run(self) -> None:
        for name, fd in self.fds.items():
            if fd is None:
                self._ended(name)
        while any(fd is not None for fd in self.fds.values()):
            while self.copier.lag() > IN_STEP_LAG:
                await self.copier.wait_progress()
            room = READ_SIZE if self.gate is None else await self.gate.before_splice()
            moved, waiting = await self._rounds(room)
            if moved:
                next(iter(self.streams.values())).spool.arrived()
                await asyncio.sleep(0)  # the readers, and every other container, have a turn
            elif waiting:
                await _any_readable(waiting)

    async def _rounds(self, room: int) -> tuple[int, list[int]]:
        """Rounds over the open streams, stdout first, up to `room` bytes in all: the bytes moved, and the
        pipes found empty.

        While more than one stream is open, a stream's reads start small at the beginning of a burst
        (STEP, after its pipe was found empty or another stream had something) and double while the burst
        goes on alone, up to READ_SIZE: a line written on one stream before a burst on the other lands
        within STEP of the burst's start, however long the daemon was kept from the pipes, and a long burst
        is still read in large pieces (a small read costs a syscall like a large one). In the middle of a
        long burst, a line on the other stream lands within the current read."""
        moved = 0
        while True:
            open_fds = [(name, fd) for name, fd in self.fds.items() if fd is not None]
            alone = len(open_fds) == 1
            waiting = []
            before = moved
            for name, fd in open_fds:
                step = room if alone else self._step.get(name, STEP)
                if self.rate is not None and self.blocking:
                    step = STEP  # small reads: each is stamped when it is read, as the limit lets it
                count = min(step, room - moved) or 1
                taken = self._splice(name, fd, count)
                if taken is None:  # the slow way: a rate limit, lines being dropped, a full disk
                    taken = await self._take(name, fd, count)
                if taken > 0:
                    moved += taken
                    self._step[name] = min(step * 2, READ_SIZE) if taken >= step else STEP
                    for other, _ in open_fds:  # the others' next reads start small again
                        if other != name:
                            self._step[other] = STEP
                else:
                    self._step[name] = STEP
                    if taken < 0:
                        waiting.append(fd)
            if moved == before or moved >= room or not open_fds:
                return moved, waiting

    def _splice(self, name: str, fd: int, count: int) -> int | None:
        """The common case, without a coroutine: bytes spliced, -1 when the pipe is empty; None when the
        stream needs `_take` (a rate limit, lines being dropped or held, EOF, a full disk, the disk was full)."""
        if self.rate is not None or self._full_since or name in self._dropping or name in self._held:
            return None
        try:
            moved = self.streams[name].splice_from(fd, count)
        except OSError:
            return None
        if moved > 0:
            if self.on_read is not None:
                self.on_read(moved)
            return moved
        return -1 if moved < 0 else None

    async def _take(self, name: str, fd: int, room: int) -> int:
        """One read of one stream: bytes taken, 0 at EOF (the stream is done), -1 when its pipe is empty."""
        spooled = self.streams[name]
        try:
            if self.rate is not None or name in self._dropping or name in self._held:
                moved = await self._read_into(name, fd, room)
            else:
                moved = spooled.splice_from(fd, room)
                if moved > 0 and self.on_read is not None:
                    self.on_read(moved)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._report_full(spooled, err)
            if self.blocking:
                await self._wait_for_space()
                return 1  # nothing moved, but not empty: look again
            if self.gate is not None and self.gate.disk_full():
                await asyncio.sleep(FREED_PAUSE_S)  # the freed segments are deleted off the event loop
                return 1
            moved = self._drop_one_read(name, fd)
        else:
            if self._full_since and moved >= 0:
                self._resumed(spooled)
        if moved == 0:
            self._ended(name)
        return moved

    def _ended(self, name: str) -> None:
        spooled = self.streams[name]
        dropping = self._dropping.pop(name, None)
        if dropping is not None and dropping.in_line and not dropping.in_cut_line:
            self._count_dropped(1)  # the last line, cut short by the end, was being dropped
        if self.rate is not None:
            self._count_dropped(self.rate.ended(name))
        spooled.input_ended.set()
        spooled.end_run()
        self.fds[name] = None
        spooled.spool.arrived()  # readers waiting for bytes learn that the run ended

    async def _read_into(self, name: str, fd: int, room: int) -> int:
        """Read (not splice) one chunk and append what is kept: under a rate limit, right after lines were
        dropped (the rest of the line being dropped goes too), or a chunk a full disk left in hand."""
        held = self._held.pop(name, None)
        if held is not None:
            data, stamp = held
            read = 1
        else:
            try:
                data = os.read(fd, room)
            except BlockingIOError:
                return -1
            if not data:
                return 0
            stamp = time.time_ns()
            read = len(data)
            if self.on_read is not None:
                self.on_read(read)
            dropping = self._dropping.get(name)
            if dropping is not None:  # space again: the line being dropped goes whole, then spooling resumes
                newline = data.find(b"\n") if dropping.in_line else -1
                if dropping.in_line and newline < 0:
                    return read
                if dropping.in_line:
                    self._count_dropped(0 if dropping.in_cut_line else 1)
                    data = data[newline + 1 :]
                if dropping.spool_needs_newline:
                    data = b"\n" + data
                del self._dropping[name]
            if self.rate is not None:
                data = await self.rate.admit(name, data, self.blocking, self._count_dropped)
        if data:
            self._append(name, data, stamp)
        return read

    def _append(self, name: str, data: bytes, stamp: int) -> None:
        """Into the spool; what a full disk leaves is kept for later (blocking mode) or dropped."""
        spooled = self.streams[name]
        try:
            written = spooled.append(data, stamp)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            written = 0
        if written == len(data):
            return
        rest = data[written:]
        if self.blocking:
            self._held[name] = (rest, stamp)
        else:
            cut = not data[:written].endswith(b"\n") if written else not spooled.ends_line()
            dropping = self._dropping[name] = _Dropping(in_line=cut, in_cut_line=cut, spool_needs_newline=cut)
            self._count_dropped(dropping.drop(rest))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _drop_one_read(self, name: str, fd: int) -> int:
        """Non-blocking mode, the disk full and nothing to free: read and drop, whole lines counted. A line
        whose head is in the spool keeps its head (ended with a newline once spooling resumes)."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return -1
        if not data:
            return 0
        if self.on_read is not None:
            self.on_read(len(data))
        dropping = self._dropping.get(name)
        if dropping is None:
            cut = not self.streams[name].ends_line()
            dropping = self._dropping[name] = _Dropping(in_line=cut, in_cut_line=cut, spool_needs_newline=cut)
        self._count_dropped(dropping.drop(data))
        return len(data)

    def _count_dropped(self, lines: int) -> None:
        if lines and self.on_dropped is not None:
            self.on_dropped(lines)
        if lines and self.gate is not None:
            self.gate.bypassed(lines)

    # -- a full disk --

    def _report_full(self, spooled: StreamSpool, err: OSError) -> None:
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
        if self.blocking:
            consequence = "the container's output waits in its pipe (the container blocks once the pipe is full)"
        else:
            consequence = (
                "non-blocking mode: disk-buffered drivers give up their oldest lines to make room, and with none "
                "left the output is dropped, every line counted"
            )
        again = f" (full {self._full_unsaid} more times since the last report)" if self._full_unsaid else ""
        self._full_unsaid = 0
        log.error(
            "no space left to spool the output %s in %s (%s); %s until disk space is freed on that filesystem%s",
            spooled.stream,
            spooled.directory,
            os.strerror(err.errno or errno.ENOSPC),
            consequence,
            again,
        )

    def _resumed(self, spooled: StreamSpool) -> None:
        if self._full_reported:
            log.warning(
                "space is available again for the spool of %s in %s: spooling resumed after %.1f s%s",
                spooled.stream,
                spooled.directory,
                time.monotonic() - self._full_since,
                ", none lost" if self.blocking else "",
            )
        self._full_since = 0.0
        self._full_reported = False

    async def _wait_for_space(self) -> None:
        """Blocking mode with the disk full: the bytes stay in the pipe, losing nothing; retry with a growing
        pause."""
        await asyncio.sleep(self._full_pause)
        self._full_pause = min(self._full_pause * 2, 1.0)


async def _any_readable(fds: list[int]) -> None:
    """Until one of `fds` polls readable (data or EOF). The readers are removed before this returns: a
    removal left to a cancelled future's callback would run after the next wait had registered its own
    reader on the same fd, and remove that one (a lost wakeup: the stream's EOF never seen)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    for fd in fds:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        for fd in fds:
            loop.remove_reader(fd)
