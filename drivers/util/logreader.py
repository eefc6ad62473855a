"""Reading a rotated log back for `logs`: history with tail/since/until, then follow.

The record format is the codec's business (json-file lines, local's framed records); this module
knows the files. As Docker does (`loggerutils/logfile.go`):

- History: rotated files oldest first (`.N-1` ... `.1`, plain or `.gz`), then the current file up to the
  writer's position at the time of the call. With `tail=N` the last N messages are found by reading
  backwards from the end, newest file first, never scanning whole files. A record may hold several
  messages (local's records hold a batch): the codec then points at the record holding the Nth-last
  message and the reader drops the older messages of that record. A `.gz` whose `lastTime` is
  before `since` is skipped without being decompressed.
- since/until: records before `since` are skipped only until the first one at or after it (timestamps
  need not be monotonic); reading stops at the first record after `until`.
- Follow: after the history, wait for the writer's announcements and read what was appended. When the
  file was rotated (possibly several times while this reader was slow), finish the old file through
  the descriptor already open, then read every file rotated since: from its new name (`.k`/`.k.gz`),
  or, when max-file deleted it meanwhile, through the descriptor the writer opened for this follower
  before deleting it (`followers`), then continue with the new current file. Only a follower that fell
  behind by more than its `follow-backlog` loses files; it then yields a LOST notice where the lines
  would have been and the daemon log says what was lost. Follow ends once the writer is closed and
  everything was read.

Improvement over Docker: a record that does not decode is skipped on its own (and counted in a
warning); Docker drops the rest of the file.

The fast path (`read_log_text`, for `logs` without --details): no Message per line but
runs of one stream's bytes, decoded a chunk at a time by the codec (`TextCodec.decode_text`), and
since/until turned into byte offsets by binary search over each file's records (`first_record`)
instead of a time check on every record: `logs --since` near the end of a large log reads only the
end. A whole file before `since` costs a few probes; a gzip file is still skipped by its `lastTime`.
The output is byte for byte what `read_log` gives; the one caveat is a file whose time goes backwards
where the search does not look (see `first_record`).

Blocking work (reads, decompression, decoding) runs in worker threads, a chunk at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from typing import Any, BinaryIO, Protocol

import orjson

from logship.drivers.base import LOST, Run, as_runs, runs_of
from logship.drivers.util import gzipextra
from logship.drivers.util.followers import Follower, FollowLoss, RotatedFile
from logship.drivers.util.logfile import LogFile, Position, Snapshot
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.pipeline.message import Message
from logship.pipeline.readconfig import ReadConfig

CHUNK_SIZE = 1 << 20  # bytes read and decoded per worker-thread step
LOSS_LOG_INTERVAL_S = 10.0  # a follower losing lines again and again is logged at most this often

ReadAt = Callable[[int, int], bytes]  # (offset, size) -> at most size bytes


class RecordCodec(Protocol):
    """What the reader needs to know about a record format."""

    def complete_length(self, data: bytes) -> int:
        """Length of the longest prefix of `data` made of whole records (0 if none is complete)."""
        ...

    def decode(self, data: bytes) -> tuple[list[Message], int]:
        """The messages of the whole records in `data`, and how many records could not be decoded."""
        ...

    def tail_start(self, read_at: ReadAt, end: int, count: int) -> tuple[int, int]:
        """Where the records holding the last `count` messages before `end` start, and how many messages
        those records hold: fewer if the file holds fewer, more when the first of them holds messages
        older than the last `count` (the reader drops those)."""
        ...


class TextCodec(RecordCodec, Protocol):
    """A record format that also serves the fast `logs` path (`read_log_text`)."""

    def decode_text(self, data: bytes | memoryview, timestamps: bool) -> tuple[list[Run], int]:
        """The whole records in `data` (a view of the chunk read) as runs (what `runs_of` makes of
        `decode`'s messages, byte for byte, with `timestamps` or not), and how many records could not be
        decoded."""
        ...

    def record_at(self, read_at: ReadAt, offset: int, end: int) -> tuple[int, int] | None:
        """The first record that starts at or after `offset` and decodes, in a file of `end` bytes: its
        start and its timestamp; None if there is none. Records that do not decode are passed over, as
        the decoder skips them."""
        ...


class _Segment:
    """One open file of the log: rotated (plain or gzip) or current, read at offsets from any thread."""

    def __init__(
        self, path: str, file: BinaryIO, compressed: bool, end: int | None = None, handed: RotatedFile | None = None
    ) -> None:
        self.path = path
        self.compressed = compressed
        self._file = file
        self._end = end  # for the current file: how far the writer had got; else the file's size
        self._lock = threading.Lock()  # close() must not pull the descriptor from under a read
        self.handed = handed  # a file the writer handed this follower before deleting it

    @classmethod
    def rotated(cls, found: RotatedFile) -> _Segment:
        return cls(found.path, found.file, found.compressed, handed=found if found.held else None)

    def last_time_ns(self) -> int | None:
        """A gzip file's `lastTime` header, None when it has none (or cannot be read)."""
        with self._lock:
            try:
                extra = gzipextra.read_extra(self._file)
                value = orjson.loads(extra).get("lastTime") if extra is not None else None
                return parse_rfc3339nano(value) if isinstance(value, str) else None
            except (OSError, ValueError, AttributeError):
                return None
            finally:
                self._file.seek(0)

    def prepare(self) -> None:
        """Make the contents readable at offsets: decompress a gzip file into a temporary file."""
        with self._lock:
            if self.compressed:
                plain = tempfile.TemporaryFile()  # noqa: SIM115 - replaces self._file, closed in close()
                try:
                    gzipextra.decompress(self._file, plain)
                    plain.flush()
                except BaseException:
                    plain.close()
                    raise
                self._file.close()
                self._file = plain
                self.compressed = False
            if self._end is None:
                self._end = os.fstat(self._file.fileno()).st_size

    def end(self) -> int:
        if self._end is None:
            raise RuntimeError("segment read before prepare()")
        return self._end

    def size_now(self) -> int:
        with self._lock:
            return os.fstat(self._file.fileno()).st_size

    def read_at(self, offset: int, size: int) -> bytes:
        with self._lock:
            if self._file.closed:
                return b""
            return os.pread(self._file.fileno(), size, offset)

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _TimeWindow:
    """Docker's forwarder: since/until applied to records in order."""

    def __init__(self, since_ns: int, until_ns: int) -> None:
        self.since_ns = since_ns  # reset to 0 once a record at or after it was seen
        self.until_ns = until_ns
        self.finished = False  # a record after `until` was seen: stop reading

    def apply(self, messages: list[Message]) -> list[Message]:
        if self.since_ns:
            since = self.since_ns
            first = next((i for i, m in enumerate(messages) if m.timestamp_ns >= since), None)
            if first is None:
                return []
            messages = messages[first:]
            self.since_ns = 0
        if self.until_ns:
            until = self.until_ns
            stop = next((i for i, m in enumerate(messages) if m.timestamp_ns > until), None)
            if stop is not None:
                messages = messages[:stop]
                self.finished = True
        return messages


def read_log(
    file: LogFile, codec: RecordCodec, config: ReadConfig, logger: logging.Logger
) -> AsyncIterator[list[Message]]:
    """Messages of `file` in order, in lists, as `config` asks; see the module docstring.

    The files are opened now, so the history ends where the writer was at the time of this call (a few
    `open()` calls, cheap enough for the event loop); reading happens as the result is iterated.
    """
    if config.tail == 0 and not config.follow:
        return _nothing()
    snapshot = file.open_history(include_rotated=config.tail != 0, follow=config.follow)
    return _read(file, snapshot, codec, config, logger)


async def _nothing() -> AsyncIterator[Any]:
    return
    yield


async def _read(
    file: LogFile, snapshot: Snapshot, codec: RecordCodec, config: ReadConfig, logger: logging.Logger
) -> AsyncIterator[list[Message]]:
    window = _TimeWindow(config.since_ns, config.until_ns)
    opened = _segments_of(file, snapshot)
    try:
        if config.tail != 0:
            async for messages in _history(opened, codec, config.tail, window, logger):
                yield messages
            if window.finished:
                return
        async for messages in _then_follow(file, codec, window, opened, snapshot, config, logger):
            yield messages
    finally:
        _close(file, opened, snapshot)


def _close(file: LogFile, opened: list[_Segment], snapshot: Snapshot) -> None:
    for segment in opened:
        segment.close()
    if snapshot.follower is not None:
        file.unfollow(snapshot.follower)


def _segments_of(file: LogFile, snapshot: Snapshot) -> list[_Segment]:
    """The snapshot's files as segments, oldest first, the current file last."""
    opened = [_Segment.rotated(found) for found in snapshot.rotated]
    opened.append(_Segment(file.path, snapshot.current, False, snapshot.position.size))
    return opened


async def _then_follow(
    file: LogFile,
    codec: RecordCodec,
    window: _TimeWindow,
    opened: list[_Segment],
    snapshot: Snapshot,
    config: ReadConfig,
    logger: logging.Logger,
) -> AsyncIterator[list[Message]]:
    """After the history: the rotated files are done with; with `follow`, what the writer appends next."""
    for segment in opened[:-1]:
        segment.close()
    opened[:-1] = []
    if config.follow and snapshot.follower is not None:
        async for messages in _follow(file, codec, window, opened, snapshot.position, snapshot.follower, logger):
            yield messages


async def _history(
    segments: list[_Segment], codec: RecordCodec, tail: int, window: _TimeWindow, logger: logging.Logger
) -> AsyncIterator[list[Message]]:
    wanted = await asyncio.to_thread(_select_history, segments, codec, tail, window.since_ns, logger)
    for segment, start, drop in wanted:
        async for messages in _read_span(segment, codec, start, segment.end(), window, logger, drop):
            yield messages
        if window.finished:
            return


def _select_history(
    segments: list[_Segment], codec: RecordCodec, tail: int, since_ns: int, logger: logging.Logger
) -> list[tuple[_Segment, int, int]]:
    """The segments to read, oldest first: where to start in each and how many messages to drop there
    (only the oldest one picked for a tail can start with messages beyond the tail)."""
    usable = _worth_reading(segments, since_ns)
    if tail < 0:
        return [(segment, 0, 0) for segment in usable if _prepared(segment, logger)]
    picked: list[tuple[_Segment, int, int]] = []
    remaining = tail
    for segment in reversed(usable):
        if remaining <= 0:
            break
        if not _prepared(segment, logger):
            continue
        start, found = codec.tail_start(segment.read_at, segment.end(), remaining)
        picked.append((segment, start, max(0, found - remaining)))
        remaining -= found
    picked.reverse()
    return picked


def _prepared(segment: _Segment, logger: logging.Logger) -> bool:
    try:
        segment.prepare()
    except (OSError, ValueError) as err:
        logger.error("Error reading rotated log file %s: %s", segment.path, err)
        return False
    return True


async def _read_span(
    segment: _Segment,
    codec: RecordCodec,
    start: int,
    end: int,
    window: _TimeWindow,
    logger: logging.Logger,
    drop: int = 0,
) -> AsyncIterator[list[Message]]:
    """The messages of segment[start:end], but the first `drop`, that pass the window; stops early once
    `window.finished`."""
    offset = start
    while offset < end:
        messages, bad, offset = await asyncio.to_thread(_read_chunk, segment, codec, offset, end)
        if bad:
            logger.warning("Error decoding log file %s: skipped %d undecodable record(s)", segment.path, bad)
        if drop:
            dropped = min(drop, len(messages))
            messages, drop = messages[dropped:], drop - dropped
        messages = window.apply(messages)
        if messages:
            yield messages
        if window.finished:
            return


def _read_chunk(segment: _Segment, codec: RecordCodec, offset: int, end: int) -> tuple[list[Message], int, int]:
    """Decode the whole records from `offset` on (about CHUNK_SIZE bytes); returns the next offset."""
    data, length = _whole_records(segment, codec, offset, end)
    if not length:
        return [], 0, end
    messages, bad = codec.decode(data if length == len(data) else data[:length])
    return messages, bad, offset + length


# ---- the fast path: runs of bytes instead of a Message per line ---------------------------------------


def read_log_text(
    file: LogFile, codec: TextCodec, config: ReadConfig, logger: logging.Logger
) -> AsyncIterator[list[Run]]:
    """What `read_log` yields, as runs (`runs_of`): the same bytes, without a Message per line.

    The history of a full read (no `tail`) is decoded by `codec.decode_text` a chunk at a time, and
    since/until become byte offsets found by binary search in each file (`_time_span`) instead of a
    time check per record. A `tail` (a few records) and follow go through `read_log`'s path.
    """
    if config.tail >= 0:  # the last few records, or none before following: few messages
        return as_runs(read_log(file, codec, config, logger), config.timestamps)
    snapshot = file.open_history(follow=config.follow)
    return _read_text(file, snapshot, codec, config, logger)


async def _read_text(
    file: LogFile, snapshot: Snapshot, codec: TextCodec, config: ReadConfig, logger: logging.Logger
) -> AsyncIterator[list[Run]]:
    window = _TimeWindow(config.since_ns, config.until_ns)
    opened = _segments_of(file, snapshot)
    try:
        for segment in await asyncio.to_thread(_worth_reading, opened, window.since_ns):
            async for runs in _text_of_segment(segment, codec, window, config.timestamps, logger):
                yield runs
            if window.finished:
                return
        async for messages in _then_follow(file, codec, window, opened, snapshot, config, logger):
            yield runs_of(messages, config.timestamps)
    finally:
        _close(file, opened, snapshot)


def _worth_reading(segments: list[_Segment], since_ns: int) -> list[_Segment]:
    """The segments but the compressed ones whose `lastTime` is before `since` (not worth decompressing)."""
    usable: list[_Segment] = []
    for segment in segments:
        if segment.compressed and since_ns:
            last = segment.last_time_ns()
            if last is not None and last < since_ns:
                continue
        usable.append(segment)
    return usable


async def _text_of_segment(
    segment: _Segment, codec: TextCodec, window: _TimeWindow, timestamps: bool, logger: logging.Logger
) -> AsyncIterator[list[Run]]:
    if not await asyncio.to_thread(_prepared, segment, logger):
        return
    span = await asyncio.to_thread(_time_span, segment, codec, window)
    if span is None:  # times out of order in this file: only a look at every record is exact
        async for messages in _read_span(segment, codec, 0, segment.end(), window, logger):
            yield runs_of(messages, timestamps)
        return
    start, stop = span
    # The next chunk is read and decoded while the consumer sends this one (a worker thread and the
    # event loop's socket writes overlap).
    ahead: asyncio.Future[tuple[list[Run], int, int]] | None = None

    def read_ahead(offset: int) -> asyncio.Future[tuple[list[Run], int, int]]:
        return asyncio.ensure_future(asyncio.to_thread(_read_text_chunk, segment, codec, offset, stop, timestamps))

    try:
        offset = start
        while offset < stop:
            if ahead is None:
                ahead = read_ahead(offset)
            runs, bad, offset = await ahead
            ahead = None
            if offset < stop:
                ahead = read_ahead(offset)
            if bad:
                logger.warning("Error decoding log file %s: skipped %d undecodable record(s)", segment.path, bad)
            if runs:
                yield runs
    finally:
        if ahead is not None:  # the consumer left early: the chunk read ahead is not wanted
            ahead.cancel()
            ahead.add_done_callback(_ignore_outcome)
    if stop < segment.end():
        window.finished = True  # a record after `until` follows


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not report it as never retrieved


def _time_span(segment: _Segment, codec: TextCodec, window: _TimeWindow) -> tuple[int, int] | None:
    """The byte range of `segment` that the window lets through, found by binary search, and the window
    updated as reading that range would update it; None (window untouched) when the search met
    timestamps out of order, where Docker's record-by-record rules can pick another range."""
    end = segment.end()
    start = 0
    since, until = window.since_ns, window.until_ns
    if since:
        found = first_record(codec, segment.read_at, 0, end, lambda ns: ns >= since)
        if found is None:
            return None
        start = found
    stop = end
    if until and start < end:
        found = first_record(codec, segment.read_at, start, end, lambda ns: ns > until)
        if found is None:
            return None
        stop = found
    if since and start < end:
        window.since_ns = 0  # the first record at or after `since` was found: no more since checks
    return start, stop


def first_record(codec: TextCodec, read_at: ReadAt, start: int, end: int, passes: Callable[[int], bool]) -> int | None:
    """Where the first record in [start, end) whose timestamp `passes` starts (`end` when none does),
    by binary search over byte offsets: exact when the timestamps never go down along the file, so
    `passes` (`>= since`, `> until`) is false and then true. None when the records looked at (the
    first one always, then the probes) were out of time order: a search proves nothing there, and
    the caller reads record by record. Disorder between probes goes unseen: a file whose time goes
    backwards (streams stamped out of order under backpressure, a clock stepped back) can then start
    or stop at another record than Docker's record-by-record rule."""
    first = codec.record_at(read_at, start, end)
    if first is None:
        return end
    if passes(first[1]):  # the first record passes: it is the first that does, in any order
        return first[0]
    seen = [first]  # (start, timestamp) of every record looked at
    low, high, best = first[0] + 1, end, end  # every record starting before `low` fails; `best` passes
    while low < high:
        middle = (low + high) // 2
        found = codec.record_at(read_at, middle, end)
        if found is None or found[0] >= high:  # no record starts in [middle, high)
            high = middle
            continue
        position, timestamp_ns = found
        seen.append(found)
        if passes(timestamp_ns):
            best, high = position, middle
        else:
            low = position + 1
    seen.sort()
    if any(later[1] < earlier[1] for earlier, later in pairwise(seen)):
        return None
    return best


def _read_text_chunk(
    segment: _Segment, codec: TextCodec, offset: int, end: int, timestamps: bool
) -> tuple[list[Run], int, int]:
    data, length = _whole_records(segment, codec, offset, end)
    if not length:
        return [], 0, end
    # A view, not a slice: a second megabyte-sized object per chunk costs more in page faults than the
    # decoding itself.
    runs, bad = codec.decode_text(memoryview(data)[:length], timestamps)
    return runs, bad, offset + length


def _whole_records(segment: _Segment, codec: RecordCodec, offset: int, end: int) -> tuple[bytes, int]:
    """About CHUNK_SIZE bytes from `offset` on, and the length of the whole records at their start (all
    of them at the end of the span; more than CHUNK_SIZE if one record is longer). A length of 0: the
    file is shorter than expected (truncated behind our back), nothing more to read."""
    data = segment.read_at(offset, min(CHUNK_SIZE, end - offset))
    while data and offset + len(data) < end:
        complete = codec.complete_length(data)
        if complete:
            return data, complete
        more = segment.read_at(offset + len(data), min(CHUNK_SIZE, end - offset - len(data)))
        if not more:
            break
        data += more  # one record longer than a chunk
    return data, len(data)


async def _follow(
    file: LogFile,
    codec: RecordCodec,
    window: _TimeWindow,
    opened: list[_Segment],
    position: Position,
    follower: Follower,
    logger: logging.Logger,
) -> AsyncIterator[list[Message]]:
    """Read what the writer appends from `position` on, across rotations, until it is closed.

    `opened` holds the current file's segment; it is kept up to date so the caller can close it.
    `follower` is this reader's registration with the writer, at `position`'s generation.
    """
    losses = _LossLog(file.path, logger)
    try:
        segment = opened[-1]
        generation, offset = position.generation, position.size
        while True:
            waiter = file.changed.waiter()  # taken before looking, so no announcement is missed
            closed = file.closed  # read before the position: once closed, the position is final
            now = file.position
            if now.generation == generation:
                if now.size > offset:
                    async for messages in _read_span(segment, codec, offset, now.size, window, logger):
                        yield messages
                    if window.finished:
                        return
                    offset = now.size
                elif closed:
                    return
                else:
                    await waiter.wait()
                continue
            # Our file was rotated away: what it still holds after `offset` is final, read it to its end.
            final_size = await asyncio.to_thread(segment.size_now)
            async for messages in _read_span(segment, codec, offset, final_size, window, logger):
                yield messages
            if window.finished:
                return
            snapshot = await asyncio.to_thread(file.open_since, follower)
            segment.close()
            opened.remove(segment)
            segment = _Segment(file.path, snapshot.current, False)
            opened.append(segment)
            rotated = [_Segment.rotated(found) for found in snapshot.rotated]
            opened[:0] = rotated
            gaps = dict(snapshot.gaps)
            for index, old in enumerate(rotated):
                if index in gaps:
                    yield [losses.notice(gaps[index])]
                if await asyncio.to_thread(_prepared, old, logger):
                    async for messages in _read_span(old, codec, 0, old.end(), window, logger):
                        yield messages
                if window.finished:
                    return
                old.close()
                opened.remove(old)
                if old.handed is not None:
                    file.release(follower, old.handed)
            if len(rotated) in gaps:
                yield [losses.notice(gaps[len(rotated)])]
            generation, offset = snapshot.position.generation, 0
    finally:
        losses.flush()


class _LossLog:
    """What one follower lost, for the daemon log: the first gap at once, later ones added up and logged
    at most every LOSS_LOG_INTERVAL_S (a follower that stays too slow meets a gap at every rotation),
    the rest when it ends."""

    def __init__(self, path: str, logger: logging.Logger) -> None:
        self._path = path
        self._logger = logger
        self._pending = FollowLoss()
        self._next_log = 0.0

    def notice(self, loss: FollowLoss) -> Message:
        """The notice the follower yields where it lost `loss` (see `LOST`)."""
        self._pending += loss
        now = time.monotonic()
        if now >= self._next_log:
            self.flush()
            self._next_log = now + LOSS_LOG_INTERVAL_S
        return Message(loss.encode(), LOST, time.time_ns())

    def flush(self) -> None:
        if self._pending:
            self._logger.warning("a follower of %s lost lines: %s", self._path, self._pending.describe())
            self._pending = FollowLoss()
