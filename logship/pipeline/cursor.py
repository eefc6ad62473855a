"""A reader's place in one stream's spool: the copier has one per stream, and so does every disk-buffered
driver, each reading at its own pace.

A cursor reads the spooled bytes in order, one read of the container at a time (a read is never split
across two times, nor a run's end), and splits them into batches stamped with the time their newline
was read (`StreamSpool.region`), so every reader makes the same lines with the same times. With each
batch it gives the `Checkpoint` a driver reaches once it has the batch: a clean restart point (the
stream's start, just after a newline, or a run's end) plus line counts, so a reader started again from
a ledger re-splits from there and skips the pieces of a long line it already has.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import NamedTuple

from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch
from logship.pipeline.splitter import LineSplitter
from logship.pipeline.spool import READ_SIZE, SEGMENT_BYTES, StreamSpool

_SCAN = 64 << 10  # looking for a line boundary: this much at a time


# At equal read times (a splicer round reads stdout first), stdout comes first.
_RANK = {"stdout": 0, "stderr": 1}


def earliest(cursors: Iterable[StreamCursor]) -> StreamCursor | None:
    """The cursor whose next bytes were read from the container first (a run's end first of all), None
    when none has anything: how every reader merges a container's streams, so all see one order."""
    best: StreamCursor | None = None
    best_key = (0, 0)
    for cursor in cursors:
        if not cursor.has_more():
            continue
        key = (cursor.next_time(), _RANK.get(cursor.stream, 2))
        if best is None or key < best_key:
            best, best_key = cursor, key
    return best


class Delivery(NamedTuple):
    batch: Batch
    first_line: int  # number of the batch's first line in its stream (lines are counted from its start)
    checkpoint: Checkpoint  # where a driver is once it has the batch


class StreamCursor:
    def __init__(self, spooled: StreamSpool, point: Checkpoint, max_line: int) -> None:
        self.spooled = spooled
        self.stream = spooled.stream
        self.splitter = LineSplitter(spooled.stream, max_line)
        self.offset = point.offset  # the next spooled byte to split
        self.lines = point.line  # lines produced so far
        self.clean = point.offset  # the latest clean restart point: a fresh LineSplitter may start there
        self.clean_line = point.line  # lines produced before `clean`
        self.stamp = 0  # the time of the last read split
        self._next_end = bisect_right(spooled.ends, point.offset)  # run ends at or before the start are past
        self._mark = 0  # processing marks (spool.MARK_*) at the start of the read: given to its first batch
        self._fd = -1
        self._fd_start = -1

    @property
    def checkpoint(self) -> Checkpoint:
        """Where a reader that has every batch so far restarts."""
        return Checkpoint(self.clean, self.clean_line, self.lines)

    def backlog(self) -> int:
        """Bytes spooled past the cursor."""
        return self.spooled.end - self.offset

    def _run_end(self) -> int:
        """The offset of the next run end not yet applied, -1 if none is recorded."""
        ends = self.spooled.ends
        while self._next_end < len(ends) and ends[self._next_end] < self.offset:
            self._next_end += 1  # recorded twice, or an empty run
        return ends[self._next_end] if self._next_end < len(ends) else -1

    def has_more(self) -> bool:
        return self.offset < self.spooled.end or self._run_end() == self.offset

    def next_time(self) -> int:
        """The read time of what comes next (0 for a run's end, which costs nothing to deliver): readers of
        both streams go in this order."""
        if self._run_end() == self.offset:
            return 0
        stamp, _ = self.spooled.region(self.offset)
        return stamp or time.time_ns()

    def read(self, limit: int = READ_SIZE) -> tuple[bytes, list[Delivery]] | None:
        """The next read's bytes and batches (a run's end gives no bytes and the last line's pieces), None
        when nothing more is spooled."""
        run_end = self._run_end()
        if run_end == self.offset:
            self._next_end += 1
            return b"", self._finish()
        if self.offset >= self.spooled.end:
            return None
        stamp, region_end = self.spooled.region(self.offset)
        if not stamp:  # no time was recorded for these bytes: the time they are read again
            stamp, region_end = time.time_ns(), self.spooled.end
        stop = min(region_end, self.offset + limit)
        if run_end > self.offset:
            stop = min(stop, run_end)
        if self.spooled.marks:  # multiline processing: a read never spans a mark, and its batches carry it
            stop = self._at_mark(stop)
        chunk = self._pread(stop - self.offset)
        return chunk, self._split(chunk, stamp)

    def _at_mark(self, stop: int) -> int:
        marks = self.spooled.marks
        index = bisect_left(marks, (self.offset, 0))
        if index < len(marks) and marks[index][0] == self.offset:
            self._mark |= marks[index][1]
            index += 1
        return min(stop, marks[index][0]) if index < len(marks) else stop

    def skip_to(self, offset: int) -> tuple[int, int]:
        """Give up the bytes before `offset`, which must be a clean restart point (just after a newline):
        (lines, bytes) given up. The unfinished line the splitter held ends at the first newline given up,
        so it counts once."""
        given = len(self.splitter.discard())
        lines = 0
        while self.offset < offset:
            chunk = self._pread(offset - self.offset)
            lines += chunk.count(b"\n")
            given += len(chunk)
            self.offset += len(chunk)
        self._run_end()
        self.clean = self.offset
        self.lines += lines
        self.clean_line = self.lines
        return lines, given

    def line_boundary(self, at_least: int) -> int:
        """The first offset just after a newline at or past `at_least` (within what is spooled); else the
        last one before it; else the cursor's own offset (no newline at all ahead)."""
        end = self.spooled.end
        position = max(self.offset, min(at_least, end) - 1)
        while position < end:
            window = self._pread(_SCAN, position)
            newline = window.find(b"\n")
            if newline >= 0:
                return position + newline + 1
            position += len(window)
        position = min(at_least, end)
        while position > self.offset:
            start = max(self.offset, position - _SCAN, self.spooled.segment_of(position - 1))
            window = self._pread(position - start, start)
            newline = window.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            position = start
        return self.offset

    def count_lines(self, end: int) -> int:
        """Lines from the cursor to `end`, the one the splitter holds and one cut short at `end` included,
        without moving."""
        newlines = 0
        open_line = self.splitter.holds_line()
        position = self.offset
        while position < end:
            window = self._pread(min(end - position, READ_SIZE), position)
            count = window.count(b"\n")
            newlines += count
            open_line = not window.endswith(b"\n") if count else open_line or bool(window)
            position += len(window)
        return newlines + (1 if open_line else 0)

    def _pread(self, count: int, offset: int = -1) -> bytes:
        at = self.offset if offset < 0 else offset
        start = self.spooled.segment_of(at)
        if self._fd_start != start:
            self.close()
            self._fd = os.open(self.spooled.segment_path(start), os.O_RDONLY | os.O_CLOEXEC)
            self._fd_start = start
        return os.pread(self._fd, min(count, start + SEGMENT_BYTES - at), at - start)

    def _split(self, chunk: bytes, stamp: int) -> list[Delivery]:
        end = self.offset + len(chunk)
        batches = self.splitter.feed(chunk, stamp)
        self.stamp = stamp
        before = (self.clean, self.clean_line)  # a restart point for every batch of this read
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            # After the last newline only pieces of a long line were produced, max_line bytes each.
            produced = self.lines + sum(len(batch) for batch in batches)
            self.clean = self.offset + newline + 1
            self.clean_line = produced - (end - self.clean) // self.splitter.max_line
        if self._mark and batches:
            batches[0].marks = self._mark
            self._mark = 0
        out = []
        for index, batch in enumerate(batches):
            first, self.lines = self.lines, self.lines + len(batch)
            offset, line = (self.clean, self.clean_line) if index == len(batches) - 1 else before
            out.append(Delivery(batch, first, Checkpoint(offset, line, self.lines)))
        self.offset = end
        return out

    def _finish(self) -> list[Delivery]:
        """A run ended here: what is left without a newline goes out as a non-last piece, as Docker does."""
        out = []
        batches = self.splitter.finish(self.stamp or time.time_ns())
        if self._mark and batches:
            batches[0].marks = self._mark
        self._mark = 0
        for batch in batches:
            first, self.lines = self.lines, self.lines + len(batch)
            out.append(Delivery(batch, first, Checkpoint(self.offset, self.lines, self.lines)))
        self.clean, self.clean_line = self.offset, self.lines
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = self._fd_start = -1
