"""The spool: a container stream's bytes on disk between its FIFO and its log drivers, with the time each
byte was read, so that a daemon killed at any moment (kill -9) loses nothing it had read, a restarted
daemon writes every line exactly once (json-file, local) or at least once (network drivers), and a
driver whose backend is away reads it later at its own pace, with the times it was written.

    stdout.fifo --splice--> spool/stdout.<offset> --pread--> copier --> in-step drivers (json-file, ...)
                                                   \\--pread--> disk buffer --> fluentd, awslogs, ...

- Bytes leave the FIFO only by `splice(2)` into an append-only segment file: the kernel moves them from the
  pipe into the file's page cache in one call, so no kill can land between "read" and "saved". Offsets are
  stream offsets (bytes since the container started); segment files are named by their first offset.
- Beside each segment, its read times (`<segment>.times`): after each splice, the stream offset its bytes
  end at and the time just before it (16 bytes; a read less than a millisecond after the previous one
  extends that one's record). Every reader stamps a line with the time of the read that brought its
  newline, so every driver sees the same times, also when it reads an hour later or after a restart.
  Bytes a kill left without a record get the time they are read again.
- The end of each run of the container (EOF on the FIFO) is recorded too (`<stream>.ends`), so a reader
  that reads across runs ends a run's last line without a newline there, as the copier did.
- Multiline processing records two more kinds of place (`<stream>.marks`), so that every reader, an hour
  later or after a restart, ends events where the first one did: where a reader flushed an open event
  because no more lines came (FLUSH), and where a restarted daemon began reading (RESUME, at the end of the
  bytes whose read time was recorded: lines that waited in the pipe, or whose time a kill left unrecorded,
  are read late, and that gap says nothing about the container's timing).
- Ledgers (`logship.pipeline.ledger`) beside the segments record each driver's progress. The copier
  resumes from the in-step ledgers (`resume_from`); a segment is deleted once every ledger and every disk
  buffer is past it, so the spool holds about one read and the queues' worth of data, plus what a
  disk-buffered driver has not delivered yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import struct
import time
from array import array
from bisect import bisect_right
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, Protocol

from logship.pipeline.ledger import Checkpoint, Ledger

log = logging.getLogger("logship.spool")

SPOOL_DIR = "spool"
SEGMENT_BYTES = 8 << 20
READ_SIZE = 1 << 20  # one pipe's worth: the FIFOs are enlarged to 1 MiB
HANDOFF = "@copier"  # the ledger of what the copier handed on (non-blocking mode, or no in-step driver)
LEDGER_PREFIX = "ledger-"
TIMES_SUFFIX = ".times"
ENDS_SUFFIX = ".ends"
ENDS_ROOM = 4096  # bytes set aside for run ends when the first is recorded (512 runs)
MARKS_SUFFIX = ".marks"
MARK_FLUSH = 1  # an event was flushed here by the wall clock: the next line starts a new one
MARK_RESUME = 2  # a restarted daemon began reading here: no timeout is judged across it
_MARK = struct.Struct("<qq")  # offset + 1, kind
MARK = struct.Struct("<qq")  # stream offset the read's bytes end at, time (ns) just before the read
MARK_GRANULARITY_NS = 1_000_000  # reads closer together than this share one record (and one time)
_CACHED_TIMES = 8  # segments whose read times a spool keeps in memory besides the one being written


class Times:
    """The read times of one segment: ascending (end offset, time) records, appended by the writer."""

    def __init__(self, path: Path, writable: bool) -> None:
        self.path = path
        self.ends = array("q")
        self.stamps = array("q")
        self._fd = -1
        self._failed = False
        self._dirty = False  # the last record was extended in memory only
        with contextlib.suppress(FileNotFoundError):
            raw = path.read_bytes()
            for end, stamp in MARK.iter_unpack(raw[: len(raw) - len(raw) % MARK.size]):
                if stamp <= 0 or (self.ends and end < self.ends[-1]):
                    break  # never written whole: what follows is not to be trusted
                self.ends.append(end)
                self.stamps.append(stamp)
        if writable:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def add(self, end: int, stamp: int, may_extend: bool) -> None:
        """Bytes up to `end` were read at `stamp`. A read less than MARK_GRANULARITY_NS after the previous one
        of this stream, with no other stream read in between (`may_extend`), extends its record: the record's
        new end is saved with the next record or at `flush` (a kill before that: those bytes get the next
        record's time, or the time they are read again)."""
        if may_extend and self.stamps and stamp - self.stamps[-1] < MARK_GRANULARITY_NS:
            self.ends[-1] = end
            self._dirty = True
            return
        self.flush()
        self.ends.append(end)
        self.stamps.append(stamp)
        self._write(len(self.ends) - 1)

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self._write(len(self.ends) - 1)

    def _write(self, index: int) -> None:
        if self._fd < 0:
            return
        try:  # at a fixed place, not appended: a write cut short by a full disk is overwritten by the next
            os.pwrite(self._fd, MARK.pack(self.ends[index], self.stamps[index]), index * MARK.size)
        except OSError as err:
            if not self._failed:
                self._failed = True
                log.error(
                    "cannot record read times in %s (%s): a daemon restarted before these bytes are delivered "
                    "stamps them with the time it reads them",
                    self.path,
                    os.strerror(err.errno or errno.EIO),
                )

    def region(self, offset: int) -> tuple[int, int]:
        """(time, end) of the read that brought the byte at `offset`; (0, -1) when none was recorded."""
        index = bisect_right(self.ends, offset)
        if index == len(self.ends):
            return 0, -1
        return self.stamps[index], self.ends[index]

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


class StreamSpool:
    """One stream's segments and read times: written by splicing from the FIFO, read by position."""

    def __init__(self, spool: Spool, stream: str) -> None:
        self.spool = spool
        self.stream = stream
        self.input_ended = asyncio.Event()  # the FIFO reached EOF: every writer is gone
        self._segments = self._find_segments()  # first offsets, ascending
        self.end = self._current_end()  # bytes spooled so far (stream offset)
        self.ends = self._read_ends()  # offsets at which a run of the container ended
        self.marks = self._read_marks()  # (offset, kind) recorded for multiline processing, ascending
        self.lines = 0  # lines the copier has made of it (disk buffers count theirs against it)
        self._out_fd = -1
        self._out_start = -1
        self._times: dict[int, Times] = {}  # by segment start: the one written, and recently read ones

    @property
    def directory(self) -> Path:
        return self.spool.directory  # looked up each time: a spool handed to pending delivery moves

    # -- segments --

    def segment_path(self, start: int) -> Path:
        return self.directory / f"{self.stream}.{start:020d}"

    def _find_segments(self) -> list[int]:
        starts = []
        for path in self.directory.glob(f"{self.stream}.*"):
            suffix = path.name.rpartition(".")[2]
            if suffix.isdigit() and len(suffix) == 20:
                starts.append(int(suffix))
        return sorted(starts)

    def _current_end(self) -> int:
        if not self._segments:
            return 0
        last = self._segments[-1]
        return last + self.segment_path(last).stat().st_size

    def _read_ends(self) -> list[int]:
        """The run ends recorded so far (stored plus one, so that the zeros of unused room end the list)."""
        try:
            raw = (self.directory / f"{self.stream}{ENDS_SUFFIX}").read_bytes()
        except FileNotFoundError:
            return []
        ends = []
        for (value,) in struct.iter_unpack("<q", raw[: len(raw) - len(raw) % 8]):
            if value <= 0:
                break
            ends.append(value - 1)
        return ends

    def _read_marks(self) -> list[tuple[int, int]]:
        try:
            raw = (self.directory / f"{self.stream}{MARKS_SUFFIX}").read_bytes()
        except FileNotFoundError:
            return []
        marks = []
        for offset, kind in _MARK.iter_unpack(raw[: len(raw) - len(raw) % _MARK.size]):
            if offset <= 0:
                break
            marks.append((offset - 1, kind))
        return marks

    def add_mark(self, kind: int, at: int = -1) -> None:
        """Record a processing mark where the spool ends now, or at `at` (see the module docstring); once per
        place, never before an earlier mark."""
        at = self.end if at < 0 else at
        if self.marks and self.marks[-1][0] >= at:
            at = self.marks[-1][0]
            if self.marks[-1][1] & kind:
                return
            kind |= self.marks.pop()[1]
        self.marks.append((at, kind))
        path = self.directory / f"{self.stream}{MARKS_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.pwrite(fd, _MARK.pack(at + 1, kind), (len(self.marks) - 1) * _MARK.size)
            finally:
                os.close(fd)
        except OSError as err:
            log.error("cannot record a multiline mark in %s: %s", self.directory, err)

    def _writable_segment(self) -> tuple[int, int]:
        """(fd, room) of the segment that takes the next bytes, starting a new one at the size limit."""
        start = self._segments[-1] if self._segments else None
        if start is None or self.end - start >= SEGMENT_BYTES:
            start = self.end
            self._segments.append(start)
        if self._out_start != start:
            self._close_output()
            # Not O_APPEND: splice refuses append-only files; the offset is given explicitly instead.
            path = self.segment_path(start)
            try:
                self._out_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                if start == self.end and not path.exists():
                    self._segments.pop()
                raise
            self._out_start = start
            times = self._times.pop(start, None)
            if times is not None:
                times.close()
            self._times[start] = Times(Path(f"{path}{TIMES_SUFFIX}"), writable=True)
        return self._out_fd, start + SEGMENT_BYTES - self.end

    def splice_from(self, fd: int, limit: int = READ_SIZE) -> int:
        """Move what the pipe holds (up to one read, or `limit`) into the spool: the bytes moved, 0 at EOF, -1
        when the pipe is empty. (Splicing in a worker thread while the previous read is processed was tried:
        it costs more CPU in thread hand-offs than it saves.)"""
        out, room = self._writable_segment()
        stamp = time.time_ns()
        moved = _splice(fd, out, min(room, READ_SIZE, limit), self.end - self._out_start)
        if moved > 0:
            self._landed(moved, stamp)
        return moved

    def append(self, data: bytes, stamp: int) -> int:
        """Write bytes read by the daemon (rather than spliced) into the spool, as read at `stamp`: how many
        were written (a full disk can cut a write short; OSError when not a byte could be written)."""
        written = 0
        while written < len(data):
            try:
                out, room = self._writable_segment()
                count = os.pwrite(out, data[written : written + room], self.end - self._out_start)
            except OSError:
                if not written:
                    raise
                break
            if count <= 0:
                break
            written += count
            self._landed(count, stamp)
        return written

    def _landed(self, count: int, stamp: int) -> None:
        self.end += count
        self._times[self._out_start].add(self.end, stamp, may_extend=self.spool.last_marked is self)
        self.spool.last_marked = self

    def recorded_end(self) -> int:
        """Where the bytes whose read time was recorded end: a kill can leave the last ones without (they get
        the time they are read again)."""
        if not self._segments:
            return 0
        start = self._segments[-1]
        times = self._times.get(start) or Times(Path(f"{self.segment_path(start)}{TIMES_SUFFIX}"), writable=False)
        return times.ends[-1] if times.ends else start

    def ends_line(self) -> bool:
        """Whether what is spooled ends with a newline (or nothing is spooled)."""
        if not self.end:
            return True
        start = self.segment_of(self.end - 1)
        fd = os.open(self.segment_path(start), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, 1, self.end - 1 - start) == b"\n"
        finally:
            os.close(fd)

    def begin_run(self) -> None:
        """A restart policy's next run writes on where the previous one ended."""
        self._close_output()
        self.input_ended = asyncio.Event()

    def end_run(self) -> None:
        """The FIFO reached EOF: record where this run ended (once, however many times it is called)."""
        if self.ends and self.ends[-1] == self.end:
            return
        self.ends.append(self.end)
        try:
            fd = os.open(self.directory / f"{self.stream}{ENDS_SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if len(self.ends) == 1:  # room for the ends of many runs, taken while there is space
                    with contextlib.suppress(OSError):
                        os.posix_fallocate(fd, 0, ENDS_ROOM)
                os.pwrite(fd, struct.pack("<q", self.end + 1), (len(self.ends) - 1) * 8)
            finally:
                os.close(fd)
        except OSError as err:
            log.error("cannot record the end of a run in %s: %s", self.directory, err)

    def region(self, offset: int) -> tuple[int, int]:
        """(time, end) of the read that brought the byte at `offset`: (0, -1) when no time was recorded
        (a kill came between the splice and its record, or an older daemon spooled it)."""
        start = self.segment_of(offset)
        times = self._times.get(start)
        if times is None:
            while len(self._times) > _CACHED_TIMES:
                oldest = min(s for s in self._times if s != self._out_start)
                self._times.pop(oldest).close()
            times = self._times[start] = Times(Path(f"{self.segment_path(start)}{TIMES_SUFFIX}"), writable=False)
        return times.region(offset)

    def segment_of(self, offset: int) -> int:
        index = bisect_right(self._segments, offset) - 1
        if index < 0:
            raise FileNotFoundError(errno.ENOENT, f"spool of {self.stream} no longer holds offset {offset}")
        return self._segments[index]

    def trim(self, keep_from: int) -> int:
        """Delete the segments that end at or before `keep_from` (never the one being written); the bytes
        freed. Freeing a segment's pages takes milliseconds: it is done off the event loop."""
        freed = 0
        while len(self._segments) > 1 and self._segments[1] <= keep_from:
            start = self._segments.pop(0)
            freed += self._segments[0] - start
            times = self._times.pop(start, None)
            if times is not None:
                times.close()
            path = self.segment_path(start)
            asyncio.get_running_loop().run_in_executor(None, _unlink_quietly, path, Path(f"{path}{TIMES_SUFFIX}"))
        if freed and self.marks and self.marks[0][0] < self.first_offset:
            self._forget_marks_before(self.first_offset)
        return freed

    def _forget_marks_before(self, offset: int) -> None:
        """Marks of bytes no longer spooled are of no use to any reader: the file is written anew without them."""
        self.marks = [mark for mark in self.marks if mark[0] >= offset]
        path = self.directory / f"{self.stream}{MARKS_SUFFIX}"
        fresh = path.with_name(path.name + ".new")
        try:
            fresh.write_bytes(b"".join(_MARK.pack(at + 1, kind) for at, kind in self.marks))
            os.replace(fresh, path)
        except OSError as err:
            log.error("cannot rewrite the multiline marks in %s: %s", self.directory, err)

    @property
    def first_offset(self) -> int:
        """The oldest offset still spooled."""
        return self._segments[0] if self._segments else self.end

    def has_old_segments(self) -> bool:
        return len(self._segments) > 1

    def _close_output(self) -> None:
        if self._out_fd >= 0:
            os.close(self._out_fd)
            self._out_fd = self._out_start = -1

    def close(self) -> None:
        self._close_output()
        for times in self._times.values():
            times.close()
        self._times.clear()


def _splice(fd: int, out: int, count: int, offset: int) -> int:
    try:
        return os.splice(fd, out, count, offset_dst=offset, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
    except BlockingIOError:
        return -1


def _unlink_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class Keeper(Protocol):
    """A reader of the spool other than the copier (a disk buffer): the offset from which it still needs
    each stream's bytes."""

    def keep_from(self, stream: str) -> int: ...


class Spool:
    """A container's spool directory: its streams, the ledgers of its drivers, and who still reads it."""

    def __init__(self, container_dir: Path, blocking: bool) -> None:
        self.directory = container_dir / SPOOL_DIR
        self.directory.mkdir(exist_ok=True)
        self.blocking = blocking
        self.ledgers: dict[str, Ledger] = {}
        self.streams: dict[str, StreamSpool] = {}
        self.keepers: list[Keeper] = []
        self.last_marked: StreamSpool | None = None  # the stream whose bytes came last (see Times.add)
        self._resume_ledgers: list[Ledger] = []
        self._arrived = asyncio.Event()

    @classmethod
    def fresh(cls, container_dir: Path, blocking: bool) -> Spool:
        """For a new run of the container: whatever an earlier run left is discarded."""
        shutil.rmtree(container_dir / SPOOL_DIR, ignore_errors=True)
        return cls(container_dir, blocking)

    def start_run(self, streams: Iterable[str]) -> list[str]:
        """Streams for a run of the container (a restart policy's next run continues the same spool)."""
        names = list(streams)
        for name in names:
            if name in self.streams:
                self.streams[name].begin_run()  # the same object: disk buffers hold it
            else:
                self.streams[name] = StreamSpool(self, name)
        return names

    def ledger(self, name: str) -> Ledger:
        ledger = self.ledgers.get(name)
        if ledger is None:
            ledger = self.ledgers[name] = Ledger(self.directory / f"{LEDGER_PREFIX}{name}")
        return ledger

    def resume_from(self, ledgers: list[Ledger]) -> None:
        """The ledgers of the in-step drivers: the copier resumes from the earliest of them."""
        self._resume_ledgers = ledgers

    def restart_point(self, stream: str) -> Checkpoint:
        """Where the copier resumes: the earliest restart point of the in-step ledgers (the start of a new
        spool; the end of the spool when there is no in-step ledger)."""
        points = [ledger.saved_checkpoint(stream) for ledger in self._resume_ledgers]
        return min(points, key=lambda p: p.offset, default=Checkpoint())

    def arrived(self) -> None:
        """New bytes are in: wake the readers waiting for them."""
        self._arrived.set()

    async def wait_arrival(self) -> None:
        """Until bytes arrive, or the input ends (see `input_ended`), after the caller found none."""
        self._arrived.clear()
        await self._arrived.wait()

    def trim(self, stream: str) -> None:
        spooled = self.streams[stream]
        if not spooled.has_old_segments():
            return
        keep = self.restart_point(stream).offset if self._resume_ledgers else spooled.end
        for keeper in self.keepers:
            keep = min(keep, keeper.keep_from(stream))
        spooled.trim(keep)

    def stream(self, name: str) -> StreamSpool:
        return self.streams[name]

    def input_ended(self) -> Awaitable[Any]:
        """Resolves once every stream's FIFO has reached EOF and its bytes are in the spool."""
        return asyncio.gather(*(s.input_ended.wait() for s in self.streams.values()))

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()
        for ledger in self.ledgers.values():
            ledger.close()

    def remove(self) -> None:
        """Nothing is left to deliver: the spool goes."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def has_spool(container_dir: Path) -> bool:
    return (container_dir / SPOOL_DIR).is_dir()
