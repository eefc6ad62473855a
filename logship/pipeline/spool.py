"""The spool: a container stream's bytes on disk between its FIFO and its log drivers, so that a daemon
killed at any moment (kill -9) loses nothing it had read, and a restarted daemon writes every line exactly
once (json-file, local) or at least once (network drivers).

    stdout.fifo --splice--> spool/stdout.<offset> --pread--> LineSplitter --> router --> drivers
                                                                                  \\--> ledger-<driver>

- Bytes leave the FIFO only by `splice(2)` into an append-only segment file: the kernel moves them from the
  pipe into the file's page cache in one call, so no kill can land between "read" and "saved". Offsets are
  stream offsets (bytes since the container started); segment files are named by their first offset.
- The copier processes the spool in order. Each batch it delivers carries a `Checkpoint`: a clean restart
  point (stream start or just after a newline: a fresh `LineSplitter` starts there) plus how many lines
  were produced in all, so a restarted daemon can re-split from the restart point and skip the lines
  (pieces of a line longer than 16 KiB) each driver already has.
- Every driver in blocking mode is wrapped in an `Acknowledging` driver that records each batch's
  checkpoint in the driver's ledger once the driver has written it. Network drivers save it at once (a
  restarted daemon resends from there: at least once). For drivers that append to a file (json-file,
  local, the dual-logging cache) progress is saved with an intent before a write, once per
  INTENT_EVERY_BYTES under load, and when idle: the checkpoints so far plus the file's inode and size.
  A restarted daemon cuts such a file back to that size (`repair_log_files`, which also finds the file again after a
  rotation) and writes the batches since again: exactly once, even when the kill landed mid-write.
- In non-blocking mode the drivers' buffer is lossy by design: the copier acknowledges a batch once it is
  handed to the router, so what sat in the ring buffer at the moment of a kill is lost (at most
  max-buffer-size bytes per driver), never what was still in the pipe or the spool.
- A segment is deleted once every ledger's restart point is past it, so the spool holds about one read
  and the router's queues' worth of data, not more; the whole spool goes when the container's output is
  closed.

A ledger is a tiny file with two slots written alternately with one pwrite each, each slot checksummed:
a kill during a write leaves the other slot intact. Replayed lines get the time they are read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.asyncfd import wait_readable
from logship.drivers.base import LogDriver
from logship.pipeline.copier import READ_SIZE, LineSplitter, RawSink, Sink, copy_one_read
from logship.pipeline.message import Batch

log = logging.getLogger("logship.spool")

SPOOL_DIR = "spool"
SEGMENT_BYTES = 8 << 20
INTENT_EVERY_BYTES = 1 << 20  # a file driver's progress is saved at least once per this many bytes of lines
IDLE_SAVE_S = 0.2  # a file driver's last acknowledgement is saved once it has had nothing to write this long
HANDOFF = "@copier"  # the ledger of non-blocking mode: what the copier handed to the router
_LEDGER_PREFIX = "ledger-"
_SLOT_BYTES = 2048
# Drivers that append whole records to one file through `LogFile` (json-file, local and the local-format
# dual-logging cache): the ones a torn write can be undone for.
FILE_DRIVERS = frozenset({"json-file", "local", "cache"})


@dataclass(frozen=True)
class Checkpoint:
    """How far a driver has got in one stream.

    `offset` is a clean restart point (the stream's start or just after a newline), `line` the number of
    lines produced before it, `delivered` the number of lines delivered (>= line: the pieces of a long line
    cut after `offset`).
    """

    offset: int = 0
    line: int = 0
    delivered: int = 0


@dataclass
class FileIntent:
    """Written before a batch goes to a log file: what the file was, so a torn write can be undone."""

    path: str
    inode: int
    size: int


@dataclass
class LedgerState:
    streams: dict[str, Checkpoint] = field(default_factory=dict)
    intent: FileIntent | None = None


class Ledger:
    """One driver's progress (two checksummed slots written alternately, one pwrite each).

    `state` is what this daemon knows; `saved` what a restarted one would find. They differ only between
    an acknowledgement that was not written at once (`acknowledge(..., save=False)`: the next `intend`
    saves it along, which halves the writes for file drivers) and that next save.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state, self._seq = _read_ledger(path)
        self.saved = dict(self.state.streams)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def checkpoint(self, stream: str) -> Checkpoint:
        return self.state.streams.get(stream, Checkpoint())

    def saved_checkpoint(self, stream: str) -> Checkpoint:
        return self.saved.get(stream, Checkpoint())

    def intend(self, intent: FileIntent) -> None:
        self.state.intent = intent
        self._save()

    def forget_intent(self) -> None:
        self.state.intent = None
        self._save()

    def acknowledge(self, stream: str, checkpoint: Checkpoint, save: bool = True) -> None:
        self.state.streams[stream] = checkpoint
        if save:
            self.state.intent = None
            self._save()

    def flush(self) -> None:
        """Save an acknowledgement kept back by `save=False`."""
        if self.saved != self.state.streams:
            self.state.intent = None
            self._save()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _save(self) -> None:
        if self._fd < 0:
            return
        self._seq += 1
        self.saved = dict(self.state.streams)
        # Plain text, one fact a line (json.dumps here cost more than the write itself):
        #   seq N / stream NAME OFFSET LINE DELIVERED / intent INODE SIZE PATH-IN-HEX
        parts = [b"seq %d\n" % self._seq]
        for name, point in self.state.streams.items():
            parts.append(b"stream %s %d %d %d\n" % (name.encode(), point.offset, point.line, point.delivered))
        intent = self.state.intent
        if intent is not None:
            parts.append(b"intent %d %d %s\n" % (intent.inode, intent.size, intent.path.encode().hex().encode()))
        body = b"".join(parts)
        slot = b"%08x %d\n%s" % (zlib.crc32(body), len(body), body)
        if len(slot) > _SLOT_BYTES:
            raise ValueError(f"ledger record of {len(slot)} bytes does not fit its slot")
        os.pwrite(self._fd, slot, (self._seq % 2) * _SLOT_BYTES)


def _read_ledger(path: Path) -> tuple[LedgerState, int]:
    """The newest intact slot (a torn slot fails its checksum and the other one counts)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LedgerState(), 0
    best: tuple[LedgerState, int] = (LedgerState(), 0)
    for start in (0, _SLOT_BYTES):
        header, _, rest = raw[start : start + _SLOT_BYTES].partition(b"\n")
        try:
            checksum, length = header.split(b" ")
            body = rest[: int(length)]
            if len(body) != int(length) or int(checksum, 16) != zlib.crc32(body):
                continue  # never written, or torn
            seq, state = _parse_ledger(body)
        except ValueError:
            continue
        if seq > best[1]:
            best = (state, seq)
    return best


def _parse_ledger(body: bytes) -> tuple[int, LedgerState]:
    seq = 0
    state = LedgerState()
    for line in body.decode().splitlines():
        kind, *fields = line.split(" ")
        if kind == "seq":
            seq = int(fields[0])
        elif kind == "stream":
            state.streams[fields[0]] = Checkpoint(int(fields[1]), int(fields[2]), int(fields[3]))
        elif kind == "intent":
            state.intent = FileIntent(bytes.fromhex(fields[2]).decode(), int(fields[0]), int(fields[1]))
        else:
            raise ValueError(f"unknown ledger line {line!r}")
    return seq, state


@dataclass
class _Mark:
    """What the copier tells each acknowledging driver about a batch before delivering it."""

    batch: Batch
    first_line: int  # number of the batch's first line in its stream
    checkpoint: Checkpoint  # where the driver is once the batch is written


# The optional abilities of a driver (LogReader, SizedLogger, ReportsDelivery) and its log path: an
# `Acknowledging` driver has exactly those of the driver it wraps.
_PASSED_THROUGH = ("read_logs", "buffer_size", "delivery_counters", "path")


class Acknowledging:
    """A driver whose progress is recorded in its ledger after every batch it writes.

    The wrapped driver's optional abilities are copied onto the instance (not looked up dynamically), so
    `isinstance(wrapper, LogReader)` and the like answer as they would for the driver itself.
    """

    def __init__(self, driver: LogDriver, ledger: Ledger) -> None:
        self.driver = driver
        self.ledger = ledger
        self.name = driver.name
        self._marks: dict[str, deque[_Mark]] = {}
        for ability in _PASSED_THROUGH:
            if hasattr(driver, ability):
                setattr(self, ability, getattr(driver, ability))
        path = getattr(driver, "path", None)
        self._file = path if driver.name in FILE_DRIVERS and isinstance(path, str) else None
        self._writing = False
        self._unsaved_bytes = 0  # line bytes written since the intent in the ledger
        self._idle_save: asyncio.TimerHandle | None = None

    def expect(self, mark: _Mark) -> None:
        self._marks.setdefault(mark.batch.stream, deque()).append(mark)

    async def log(self, batch: Batch) -> None:
        marks = self._marks.get(batch.stream)
        mark = marks.popleft() if marks else None
        if mark is None or mark.batch is not batch:  # cannot happen in blocking mode; never guess
            log.error("driver %s got a batch the spool did not announce; its progress is not recorded", self.name)
            await self.driver.log(batch)
            return
        done = self.ledger.checkpoint(batch.stream).delivered
        if mark.checkpoint.delivered <= done:
            return  # replayed after a restart: this driver already has every line of it
        if mark.first_line < done:
            batch = batch.take(done - mark.first_line)[1]
        if self._file is None:
            await self.driver.log(batch)  # raises: lost for this driver, counted by the router; move on too
            self.ledger.acknowledge(batch.stream, mark.checkpoint)
            return
        # An intent saves the acknowledgements so far and the file's size now. Until the next one (after
        # INTENT_EVERY_BYTES, a moment of idleness, or close), a restarted daemon cuts the file back to that
        # size and writes the batches since again: still exactly once, for a fraction of the writes.
        if self.ledger.state.intent is None or self._unsaved_bytes >= INTENT_EVERY_BYTES:
            self.ledger.intend(_file_state(self._file))
            self._unsaved_bytes = 0
        self._unsaved_bytes += batch.nbytes
        self._writing = True
        try:
            await self.driver.log(batch)
        except asyncio.CancelledError:
            raise  # not acknowledged: a restarted daemon undoes whatever part was written and writes it again
        except Exception:
            # Lost for this driver (the router counts and reports it); LogFile has already cut a partial
            # write back, so the intent no longer applies.
            self.ledger.acknowledge(batch.stream, mark.checkpoint)
            raise
        finally:
            self._writing = False
        self.ledger.acknowledge(batch.stream, mark.checkpoint, save=False)
        if self._idle_save is None:
            self._idle_save = asyncio.get_running_loop().call_later(IDLE_SAVE_S, self._save_when_idle)

    def _save_when_idle(self) -> None:
        self._idle_save = None
        self.save_progress()

    def save_progress(self) -> None:
        """Save what was acknowledged but kept back, unless a write is under way (its intent is still
        needed; its acknowledgement saves later)."""
        if not self._writing:
            self.ledger.flush()

    async def close(self) -> None:
        if self._idle_save is not None:
            self._idle_save.cancel()
            self._idle_save = None
        try:
            await self.driver.close()
        finally:
            if not self._writing:
                self.ledger.flush()
            self.ledger.close()


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _file_state(path: str) -> FileIntent:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return FileIntent(path, 0, 0)
    return FileIntent(path, info.st_ino, info.st_size)


class StreamSpool:
    """One stream's segments, written by splicing from the FIFO, read back in order by the copier."""

    def __init__(self, spool: Spool, stream: str) -> None:
        self.spool = spool
        self.stream = stream
        self.directory = spool.directory
        self.input_ended = asyncio.Event()  # the FIFO reached EOF: every writer is gone
        self._segments = self._find_segments()  # first offsets, ascending
        self.end = self._current_end()  # bytes spooled so far (stream offset)
        self._out_fd = -1
        self._out_start = -1
        self._in_fd = -1
        self._in_start = -1
        self._full_since = 0.0  # monotonic time the disk was found full, 0 while there is space
        self._full_pause = 0.05

    # -- segments --

    def _segment_path(self, start: int) -> Path:
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
        return last + self._segment_path(last).stat().st_size

    def _writable_segment(self) -> tuple[int, int]:
        """(fd, room) of the segment that takes the next bytes, starting a new one at the size limit."""
        start = self._segments[-1] if self._segments else None
        if start is None or self.end - start >= SEGMENT_BYTES:
            start = self.end
            self._segments.append(start)
        if self._out_start != start:
            self.close()
            # Not O_APPEND: splice refuses append-only files; the offset is given explicitly instead.
            self._out_fd = os.open(self._segment_path(start), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._out_start = start
        return self._out_fd, start + SEGMENT_BYTES - self.end

    def splice_from(self, fd: int) -> int:
        """Move what the pipe holds (up to one read) into the spool: the bytes moved, 0 at EOF, -1 when
        the pipe is empty. (Splicing in a worker thread while the previous read is processed was tried:
        it costs more CPU in thread hand-offs than it saves.)"""
        out, room = self._writable_segment()
        moved = _splice(fd, out, min(room, READ_SIZE), self.end - self._out_start)
        if moved > 0:
            self.end += moved
        return moved

    def read(self, offset: int, limit: int = READ_SIZE) -> bytes:
        """Spooled bytes from `offset` on (at most `limit`, never across a segment boundary)."""
        if offset >= self.end:
            return b""
        start = max((s for s in self._segments if s <= offset), default=None)
        if start is None:
            raise FileNotFoundError(errno.ENOENT, f"spool of {self.stream} no longer holds offset {offset}")
        if self._in_start != start:
            if self._in_fd >= 0:
                os.close(self._in_fd)
                self._in_fd = -1
            self._in_fd = os.open(self._segment_path(start), os.O_RDONLY | os.O_CLOEXEC)
            self._in_start = start
        return os.pread(self._in_fd, min(limit, self.end - offset, start + SEGMENT_BYTES - offset), offset - start)

    def trim(self, keep_from: int) -> None:
        """Delete the segments that end at or before `keep_from` (never the one being written). Freeing a
        segment's pages takes milliseconds: it is done off the event loop."""
        while len(self._segments) > 1 and self._segments[1] <= keep_from:
            start = self._segments.pop(0)
            asyncio.get_running_loop().run_in_executor(None, _unlink_quietly, self._segment_path(start))

    def has_old_segments(self) -> bool:
        return len(self._segments) > 1

    def close(self) -> None:
        if self._out_fd >= 0:
            os.close(self._out_fd)
            self._out_fd = self._out_start = -1
        if self._in_fd >= 0:
            os.close(self._in_fd)
            self._in_fd = self._in_start = -1

    # -- the copy loop --

    async def copy(
        self,
        fd: int | None,
        splitter: LineSplitter,
        deliver: Sink,
        on_raw: RawSink | None = None,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        """`copy_stream` through the spool: first what a previous daemon spooled but not every driver
        wrote, then the FIFO until EOF. `fd` None: the input has already ended (the container is gone).

        One read is processed before the next is spliced: a slow driver still makes the container wait
        (blocking mode), and the spool stays small.
        """
        at = _ReadPosition.resuming(self.spool.restart_point(self.stream))
        if fd is None:
            self.input_ended.set()
        try:
            while True:
                chunk = self.read(at.offset)
                if not chunk:
                    if fd is None or self.input_ended.is_set():
                        break
                    try:
                        moved = self.splice_from(fd)
                    except OSError as err:
                        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                            raise
                        self._report_full(err)
                        if self.spool.blocking:
                            await self._wait_for_space()
                        else:
                            await self._bypass(fd, splitter, deliver, on_raw, on_read)
                        continue
                    if self._full_since:
                        log.warning(
                            "space is available again for the spool of %s in %s: spooling resumed after %.1f s, "
                            "none lost",
                            self.stream,
                            self.directory,
                            time.monotonic() - self._full_since,
                        )
                        self._full_since = 0.0
                    if moved < 0:
                        await wait_readable(fd)
                    elif moved == 0:
                        self.input_ended.set()
                    elif on_read is not None:
                        on_read(moved)
                    continue
                if on_raw is not None:
                    await on_raw(self.stream, chunk)
                await self._split(chunk, at, splitter, deliver)
            for batch in splitter.finish(time.time_ns()):
                first, at.lines = at.lines, at.lines + len(batch)
                await self.spool.deliver(batch, first, Checkpoint(at.offset, at.lines, at.lines), deliver)
        finally:
            self.close()

    def _report_full(self, err: OSError) -> None:
        if self._full_since:
            return
        self._full_since = time.monotonic()
        self._full_pause = 0.05
        if self.spool.blocking:
            consequence = "the container's output waits in its pipe (the container blocks once the pipe is full)"
        else:
            consequence = "non-blocking mode: the output bypasses the spool (not crash-safe) and drops are counted"
        log.error(
            "no space left to spool the output %s in %s (%s); %s until disk space is freed on that filesystem",
            self.stream,
            self.directory,
            os.strerror(err.errno or errno.ENOSPC),
            consequence,
        )

    async def _wait_for_space(self) -> None:
        """Blocking mode with the disk full: the bytes stay in the pipe, losing nothing; retry with a growing
        pause."""
        await asyncio.sleep(self._full_pause)
        self._full_pause = min(self._full_pause * 2, 1.0)

    async def _bypass(
        self,
        fd: int,
        splitter: LineSplitter,
        deliver: Sink,
        on_raw: RawSink | None,
        on_read: Callable[[int], None] | None,
    ) -> None:
        """Non-blocking mode with the disk full: the container must never wait, so one read goes straight to
        the router, which drops and counts what its drivers cannot take. The spool stays consistent: these
        bytes are simply not in it (the spool had been read to its end before splicing was tried)."""
        if not await copy_one_read(fd, splitter, deliver, on_raw, on_read):
            self.input_ended.set()

    async def _split(self, chunk: bytes, at: _ReadPosition, splitter: LineSplitter, deliver: Sink) -> None:
        """Split one read and deliver its batches, each with the checkpoint a driver reaches with it."""
        end = at.offset + len(chunk)
        batches = splitter.feed(chunk, time.time_ns())
        before = (at.clean, at.clean_line)  # a restart point for every batch of this read
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            # After the last newline only pieces of a long line were produced, max_line bytes each.
            produced = at.lines + sum(len(batch) for batch in batches)
            at.clean = at.offset + newline + 1
            at.clean_line = produced - (end - at.clean) // splitter.max_line
        for index, batch in enumerate(batches):
            first, at.lines = at.lines, at.lines + len(batch)
            offset, line = (at.clean, at.clean_line) if index == len(batches) - 1 else before
            await self.spool.deliver(batch, first, Checkpoint(offset, line, at.lines), deliver)
        at.offset = end


@dataclass
class _ReadPosition:
    """Where the copier is in a stream's spool."""

    offset: int  # the next spooled byte to split
    lines: int  # lines produced so far (the stream's line numbers are counted from its start)
    clean: int  # the latest clean restart point: a fresh LineSplitter may start there
    clean_line: int  # lines produced before `clean`

    @classmethod
    def resuming(cls, point: Checkpoint) -> _ReadPosition:
        return cls(point.offset, point.line, point.offset, point.line)


def _splice(fd: int, out: int, count: int, offset: int) -> int:
    try:
        return os.splice(fd, out, count, offset_dst=offset, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
    except BlockingIOError:
        return -1


class Spool:
    """A container's spool directory: its streams and the ledgers of its drivers."""

    def __init__(self, container_dir: Path, blocking: bool) -> None:
        self.directory = container_dir / SPOOL_DIR
        self.directory.mkdir(exist_ok=True)
        self.blocking = blocking
        self.ledgers: dict[str, Ledger] = {}
        self._drivers: list[Acknowledging] = []
        self._handoff: Ledger | None = None if blocking else self._ledger(HANDOFF)
        self.streams: dict[str, StreamSpool] = {}

    @classmethod
    def fresh(cls, container_dir: Path, blocking: bool) -> Spool:
        """For a new run of the container: whatever an earlier run left is discarded."""
        shutil.rmtree(container_dir / SPOOL_DIR, ignore_errors=True)
        return cls(container_dir, blocking)

    def start_run(self, streams: Iterable[str]) -> list[str]:
        """Streams for a run of the container (a restart policy's next run continues the same spool)."""
        for stream in self.streams.values():
            stream.close()
        # The next run resumes from the saved restart points: bring them up to date first, or it would
        # re-read the end of the previous run.
        for driver in self._drivers:
            driver.save_progress()
        self.streams = {name: StreamSpool(self, name) for name in streams}
        return list(self.streams)

    def _ledger(self, name: str) -> Ledger:
        ledger = self.ledgers.get(name)
        if ledger is None:
            ledger = self.ledgers[name] = Ledger(self.directory / f"{_LEDGER_PREFIX}{name}")
        return ledger

    def track(self, drivers: Sequence[LogDriver]) -> list[LogDriver]:
        """The drivers to hand the router: in blocking mode each one acknowledging to its ledger."""
        if not self.blocking:
            return list(drivers)
        self._drivers = [Acknowledging(driver, self._ledger(driver.name)) for driver in drivers]
        return list(self._drivers)

    def restart_point(self, stream: str) -> Checkpoint:
        """Where reading resumes: the earliest restart point of any ledger (the start for a new spool)."""
        points = [ledger.saved_checkpoint(stream) for ledger in self.ledgers.values()]
        return min(points, key=lambda p: p.offset, default=Checkpoint())

    async def deliver(self, batch: Batch, first_line: int, checkpoint: Checkpoint, deliver: Sink) -> None:
        mark = _Mark(batch, first_line, checkpoint)
        for driver in self._drivers:
            driver.expect(mark)
        await deliver(batch)
        if self._handoff is not None:
            self._handoff.acknowledge(batch.stream, checkpoint)
        self.trim(batch.stream)

    def trim(self, stream: str) -> None:
        spooled = self.streams[stream]
        if spooled.has_old_segments():
            spooled.trim(self.restart_point(stream).offset)

    def stream(self, name: str) -> StreamSpool:
        return self.streams[name]

    def input_ended(self) -> Awaitable[Any]:
        """Resolves once every stream's FIFO has reached EOF and its bytes are in the spool."""
        return asyncio.gather(*(s.input_ended.wait() for s in self.streams.values()))

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()
        if self._handoff is not None:
            self._handoff.close()

    def remove(self) -> None:
        """The container's output is closed: nothing is left to replay."""
        self.close()
        for ledger in self.ledgers.values():
            ledger.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def has_spool(container_dir: Path) -> bool:
    return (container_dir / SPOOL_DIR).is_dir()


def repair_log_files(container_dir: Path) -> list[str]:
    """Before a restarted daemon opens the drivers of a container: undo every log-file write that was not
    acknowledged (it is written again from the spool). Returns what was done, for the daemon log."""
    done: list[str] = []
    directory = container_dir / SPOOL_DIR
    for path in sorted(directory.glob(f"{_LEDGER_PREFIX}*")):
        state, _ = _read_ledger(path)
        if state.intent is None:
            continue
        note = _undo_write(state.intent)
        if note:
            done.append(note)
        ledger = Ledger(path)
        try:
            ledger.forget_intent()
        finally:
            ledger.close()
    return done


def _undo_write(intent: FileIntent) -> str:
    """Cut the file the interrupted write went to back to its size before; with a rotation in between,
    the older file is found by its inode and the files the write started are emptied."""
    path = intent.path
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return ""
    if current.st_ino == intent.inode or intent.inode == 0:
        if current.st_size > intent.size and intent.inode != 0:
            os.truncate(path, intent.size)
            return f"{path}: cut {current.st_size - intent.size} bytes of an unfinished write"
        if intent.inode == 0 and current.st_size:
            os.truncate(path, 0)
            return f"{path}: emptied a file created by an unfinished write"
        return ""
    # The write rotated the file: its records are after `size` in the old file and in every newer file.
    newer = [path]
    for index in range(1, 100):
        rotated = f"{path}.{index}"
        try:
            info = os.stat(rotated)
        except FileNotFoundError:
            if not os.path.exists(rotated + ".gz"):
                break
            newer.append(rotated + ".gz")
            continue
        if info.st_ino == intent.inode:
            os.truncate(rotated, intent.size)
            for other in newer[1:]:
                os.unlink(other)
            os.truncate(path, 0)
            return f"{path}: undid an unfinished write across a rotation"
        newer.append(rotated)
    # The old file is gone (max-file=1) or compressed: keep its part; the current file holds only the rest.
    os.truncate(path, 0)
    return f"{path}: undid the part of an unfinished write after a rotation (the part before it is kept)"
