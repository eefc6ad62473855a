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
  the descriptor already open, then read every file rotated since from its new name (`.k`/`.k.gz`),
  then continue with the new current file. Only files that max-file deleted before they could be
  opened are lost, and that is logged. Follow ends once the writer is closed and everything was read.

Improvement over Docker: a record that does not decode is skipped on its own (and counted in a
warning); Docker drops the rest of the file.

Blocking work (reads, decompression, decoding) runs in worker threads, a chunk at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO, Protocol

import orjson

from logship.drivers.util import gzipextra
from logship.drivers.util.logfile import LogFile, Position, RotatedFile, Snapshot
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.pipeline.message import Message
from logship.pipeline.readconfig import ReadConfig

CHUNK_SIZE = 1 << 20  # bytes read and decoded per worker-thread step

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


class _Segment:
    """One open file of the log: rotated (plain or gzip) or current, read at offsets from any thread."""

    def __init__(self, path: str, file: BinaryIO, compressed: bool, end: int | None = None) -> None:
        self.path = path
        self.compressed = compressed
        self._file = file
        self._end = end  # for the current file: how far the writer had got; else the file's size
        self._lock = threading.Lock()  # close() must not pull the descriptor from under a read

    @classmethod
    def rotated(cls, found: RotatedFile) -> _Segment:
        return cls(found.path, found.file, found.compressed)

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
    snapshot = file.open_history(include_rotated=config.tail != 0)
    return _read(file, snapshot, codec, config, logger)


async def _nothing() -> AsyncIterator[list[Message]]:
    return
    yield


async def _read(
    file: LogFile, snapshot: Snapshot, codec: RecordCodec, config: ReadConfig, logger: logging.Logger
) -> AsyncIterator[list[Message]]:
    window = _TimeWindow(config.since_ns, config.until_ns)
    current = _Segment(file.path, snapshot.current, False, snapshot.position.size)
    opened = [_Segment.rotated(found) for found in snapshot.rotated]
    opened.append(current)
    try:
        if config.tail != 0:
            async for messages in _history(opened, codec, config.tail, window, logger):
                yield messages
            if window.finished:
                return
        for segment in opened[:-1]:
            segment.close()
        opened[:-1] = []
        if config.follow:
            async for messages in _follow(file, codec, window, opened, snapshot.position, logger):
                yield messages
    finally:
        for segment in opened:
            segment.close()


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
    usable: list[_Segment] = []
    for segment in segments:
        if segment.compressed and since_ns:
            last = segment.last_time_ns()
            if last is not None and last < since_ns:
                continue  # ends before `since`: not worth decompressing
        usable.append(segment)
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
    data = segment.read_at(offset, min(CHUNK_SIZE, end - offset))
    if not data:  # the file is shorter than expected (truncated behind our back): nothing more to read
        return [], 0, end
    while offset + len(data) < end:
        complete = codec.complete_length(data)
        if complete:
            data = data[:complete]
            break
        more = segment.read_at(offset + len(data), min(CHUNK_SIZE, end - offset - len(data)))
        if not more:
            break
        data += more  # one record longer than a chunk
    messages, bad = codec.decode(data)
    return messages, bad, offset + len(data)


async def _follow(
    file: LogFile,
    codec: RecordCodec,
    window: _TimeWindow,
    opened: list[_Segment],
    position: Position,
    logger: logging.Logger,
) -> AsyncIterator[list[Message]]:
    """Read what the writer appends from `position` on, across rotations, until it is closed.

    `opened` holds the current file's segment; it is kept up to date so the caller can close it.
    """
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
        snapshot = await asyncio.to_thread(file.open_since, generation)
        segment.close()
        opened.remove(segment)
        segment = _Segment(file.path, snapshot.current, False)
        opened.append(segment)
        rotated = [_Segment.rotated(found) for found in snapshot.rotated]
        opened[:0] = rotated
        if snapshot.missed:
            logger.warning(
                "file rotations were missed while following logs; some log messages have been skipped over "
                "(%d rotated file(s) of %s were deleted by max-file before they could be read)",
                snapshot.missed,
                file.path,
            )
        for old in rotated:
            if await asyncio.to_thread(_prepared, old, logger):
                async for messages in _read_span(old, codec, 0, old.end(), window, logger):
                    yield messages
            if window.finished:
                return
            old.close()
            opened.remove(old)
        generation, offset = snapshot.position.generation, 0
