"""Reading local files back: the `RecordCodec` that `logreader` drives (history, tail, follow).

`--tail N` counts messages. It walks frames backwards from the end of a file with their trailing
lengths (reading in 64 KiB blocks, so small records cost one read for many), checks each frame it
passes (the reader is about to read them anyway) and adds up the line counts of the records until it
has N; the reader drops the surplus at the front of the oldest record. Should the walk meet damage,
it falls back to a forward walk over that file, which resynchronises past the damage (see
`framing`), so damaged records are neither shown nor counted.
"""

from __future__ import annotations

from logship.drivers.base import Run, runs_of
from logship.drivers.local import framing, record
from logship.drivers.util.logreader import ReadAt
from logship.pipeline.message import Message

_BLOCK = 64 * 1024


class LocalRecords:
    def complete_length(self, data: bytes) -> int:
        return framing.scan(data, at_end=False, verify=False).complete

    def decode(self, data: bytes) -> tuple[list[Message], int]:
        found = framing.scan(data, at_end=True)
        messages, undecodable = record.decode_records(data, found.payloads)
        return messages, found.damaged + undecodable

    def decode_text(self, data: bytes | memoryview, timestamps: bool = False) -> tuple[list[Run], int]:
        data = bytes(data)  # the record parser slices and searches it
        if timestamps:  # a prefix per line: by way of the messages
            messages, bad = self.decode(data)
            return runs_of(messages, timestamps), bad
        found = framing.scan(data, at_end=True)
        runs, undecodable = record.decode_text_records(data, found.payloads)
        return runs, found.damaged + undecodable

    def record_at(self, read_at: ReadAt, offset: int, end: int) -> tuple[int, int] | None:
        position = offset
        while position < end:
            block = read_at(position, min(_BLOCK, end - position))
            if not block:
                return None
            magic = block.find(framing.MAGIC)
            if magic < 0:  # the last bytes may begin a magic: look again from there
                position += max(1, len(block) - len(framing.MAGIC) + 1)
                continue
            start = position + magic
            found = _intact_frame_at(read_at, start, end)
            if found is not None:
                frame, (payload_start, payload_end) = found
                timestamp_ns = record.timestamp_of(frame, payload_start, payload_end)
                if timestamp_ns is not None:
                    return start, timestamp_ns
            position = start + 1
        return None

    def tail_start(self, read_at: ReadAt, end: int, count: int) -> tuple[int, int]:
        if end <= 0 or count <= 0:
            return end, 0
        read = _BackwardBlocks(read_at)
        position, found = end, 0
        while position > 0 and found < count:
            start = framing.frame_before(read, position)
            lines = None if start is None else _lines_of_intact_frame(read(start, position - start))
            if start is None or lines is None:
                return _tail_by_walking_forward(read_at, position, count, found)
            found += lines
            position = start
        return position, found


LOCAL_RECORDS = LocalRecords()


def _lines_of_intact_frame(frame: bytes) -> int | None:
    found = framing.scan(frame, at_end=True)
    if len(found.payloads) != 1 or found.damaged:
        return None
    start, end = found.payloads[0]
    return record.line_count(frame[start : start + record.HEAD.size], end - start)


def _intact_frame_at(read_at: ReadAt, start: int, end: int) -> tuple[bytes, tuple[int, int]] | None:
    """The frame starting at `start` and the span of its payload, if it is intact (CRC checked)."""
    head = read_at(start, framing.HEAD.size)
    if len(head) != framing.HEAD.size:
        return None
    magic, length = framing.HEAD.unpack(head)
    if magic != framing.MAGIC or length > framing.MAX_PAYLOAD or start + length + framing.OVERHEAD > end:
        return None
    frame = read_at(start, length + framing.OVERHEAD)
    found = framing.scan(frame, at_end=True)
    if len(found.payloads) != 1 or found.damaged:
        return None
    return frame, found.payloads[0]


def _tail_by_walking_forward(read_at: ReadAt, end: int, count: int, found: int) -> tuple[int, int]:
    """tail_start for a file damaged before `end`, where `found` messages were already counted."""
    frames = list(framing.intact_frames(read_at, end))
    for payload_start, payload_end in reversed(frames):
        lines = record.line_count(read_at(payload_start, record.HEAD.size), payload_end - payload_start)
        if lines is None:
            continue  # the decoder skips it too
        found += lines
        if found >= count:
            return payload_start - framing.HEAD.size, found
    return 0, found


class _BackwardBlocks:
    """`read_at` for a backward walk: one block read serves many small frames (larger ones are read
    on their own)."""

    def __init__(self, read_at: ReadAt) -> None:
        self._read_at = read_at
        self._start = 0
        self._data = b""

    def __call__(self, offset: int, size: int) -> bytes:
        stop = offset + size
        if self._start <= offset and stop <= self._start + len(self._data):
            return self._data[offset - self._start : stop - self._start]
        if size >= _BLOCK:
            return self._read_at(offset, size)
        self._start = max(0, stop - _BLOCK)
        self._data = self._read_at(self._start, stop - self._start)
        return self._data[offset - self._start : stop - self._start]
