"""Lines → CloudWatch Logs events → PutLogEvents batches, obeying CloudWatch's limits on the client side
(the emulators do not enforce them):

- an event holds at most 262,118 bytes of UTF-8; longer messages are split on character boundaries into
  events with the same timestamp. Each byte that is not valid UTF-8 becomes U+FFFD (three bytes), as
  CloudWatch would store it;
- a batch holds at most 10,000 events and 1,048,576 bytes counting 26 bytes of overhead per event, spans
  at most 24 hours, and is sorted by timestamp (stable, so equal times keep their order);
- with a multiline pattern (or a datetime format turned into one), lines are grouped into one event that
  starts at a line matching the pattern and carries its first line's timestamp, each line followed by
  "\\n" as Docker does; a pending event is flushed once it is older than the flush interval.

Timestamps are milliseconds. awslogs ignores partial metadata, as Docker's does: pieces are only split
where CloudWatch needs it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import overload

import orjson

from logship.drivers.util.text import decode_go
from logship.pipeline.message import Batch

PER_EVENT_BYTES = 26
MAX_EVENT_BYTES = 262_144 - PER_EVENT_BYTES  # 262,118
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
MAX_SPAN_MS = 24 * 3600 * 1000

Event = dict[str, int | str]  # {"timestamp": ms, "message": text}, the PutLogEvents shape


@dataclass
class Segment:
    """Events that share one timestamp (a batch of lines, or one multiline event).

    Most batches are plain ASCII needing no JSON escaping: they keep their lines as bytes and become JSON
    with one join when sent (`plain`). Others keep decoded texts, each encoded by orjson when sent.
    `sizes` are the messages' UTF-8 sizes; `nbytes` counts as CloudWatch does (message + 26 per event).
    """

    timestamp_ms: int
    sizes: list[int]
    plain: list[bytes] | None = None
    texts: list[str] | None = None
    nbytes: int = -1
    lines: int = 0  # the container's lines its events complete (confirmed delivered once it is all sent)

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            self.nbytes = sum(self.sizes) + PER_EVENT_BYTES * len(self.sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def part(self, start: int, stop: int | None = None) -> Segment:
        """Some of the events; the lines count goes with the part that ends the segment."""
        plain = self.plain[start:stop] if self.plain is not None else None
        texts = self.texts[start:stop] if self.texts is not None else None
        ends = stop is None or stop >= len(self.sizes)
        return Segment(self.timestamp_ms, self.sizes[start:stop], plain, texts, lines=self.lines if ends else 0)

    def json(self) -> bytes:
        """The events as JSON objects separated by commas, as PutLogEvents' body lists them."""
        if self.plain is not None:
            prefix = b'{"timestamp":%d,"message":"' % self.timestamp_ms
            return prefix + (b'"},' + prefix).join(self.plain) + b'"}'
        prefix = b'{"timestamp":%d,"message":' % self.timestamp_ms
        assert self.texts is not None
        return prefix + (b"}," + prefix).join(map(orjson.dumps, self.texts)) + b"}"

    def messages(self) -> list[str]:
        if self.plain is not None:
            return [line.decode("ascii") for line in self.plain]
        assert self.texts is not None
        return self.texts


class LogEvents(Sequence[Event]):
    """The `logEvents` of one PutLogEvents call: segments that serialize in bulk, and look like the list of
    {"timestamp", "message"} dicts boto3 expects to anyone who reads them (event hooks, tests)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self._events: list[Event] | None = None

    def json(self) -> bytes:
        return b",".join(segment.json() for segment in self.segments)

    def _materialized(self) -> list[Event]:
        if self._events is None:
            self._events = [
                {"timestamp": segment.timestamp_ms, "message": message}
                for segment in self.segments
                for message in segment.messages()
            ]
        return self._events

    def __len__(self) -> int:
        return sum(len(segment) for segment in self.segments)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        return self._materialized()[index]


# Bytes that go into a JSON string as they are: printable ASCII but `"` and `\`; plus the "\n" that joins
# lines for the check. Whatever `translate` leaves after deleting these needs escaping or decoding.
_PLAIN = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"") + b"\n"


def _is_plain(blob: bytes) -> bool:
    return not blob.translate(None, _PLAIN)


def _text_and_size(line: bytes) -> tuple[str, int]:
    if line.isascii():
        return line.decode("ascii"), len(line)
    text = decode_go(line)
    return text, len(text.encode())


def split_text(text: str, size: int) -> list[tuple[str, int]]:
    """Pieces of at most MAX_EVENT_BYTES UTF-8 bytes, never inside a character."""
    if size <= MAX_EVENT_BYTES:
        return [(text, size)]
    data = text.encode()
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + MAX_EVENT_BYTES, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte: back off to a boundary
            end -= 1
        pieces.append((data[start:end].decode(), end - start))
        start = end
    return pieces


def _segment(timestamp_ms: int, texts: list[tuple[str, int]], lines: int) -> Segment:
    pieces = [piece for text, size in texts for piece in split_text(text, size)]
    return Segment(timestamp_ms, [size for _, size in pieces], texts=[text for text, _ in pieces], lines=lines)


@dataclass
class _Pending:
    """A multiline event being gathered."""

    timestamp_ms: int
    started_ns: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    lines: int = 0


class EventBuilder:
    def __init__(self, multiline: re.Pattern[bytes] | None) -> None:
        self.multiline = multiline
        self._pending: _Pending | None = None

    def add(self, batch: Batch, out: list[Segment]) -> None:
        """Append the events `batch` completes to `out`."""
        timestamp_ms = batch.timestamp_ns // 1_000_000
        lines = batch.lines
        if self.multiline is not None:
            for line in lines:
                self._add_multiline(line, timestamp_ms, batch.timestamp_ns, out)
            return
        if not lines:
            return
        if max(map(len, lines)) <= MAX_EVENT_BYTES and _is_plain(b"\n".join(lines)):
            # The common case: plain ASCII, sent as it is; no per-line work at all.
            out.append(Segment(timestamp_ms, list(map(len, lines)), plain=lines, lines=len(lines)))
        else:
            out.append(_segment(timestamp_ms, [_text_and_size(line) for line in lines], len(lines)))

    def _add_multiline(self, line: bytes, timestamp_ms: int, now_ns: int, out: list[Segment]) -> None:
        assert self.multiline is not None
        pending = self._pending
        line_size = len(line) + (1 if len(line) < MAX_EVENT_BYTES else 0)
        if pending is not None and (self.multiline.search(line) or pending.size + line_size > MAX_EVENT_BYTES):
            self._emit(out)
            pending = None
        if pending is None:
            pending = self._pending = _Pending(timestamp_ms, now_ns)
        pending.parts.append(line)
        pending.lines += 1
        if len(line) < MAX_EVENT_BYTES:
            pending.parts.append(b"\n")
        pending.size += line_size

    def _emit(self, out: list[Segment]) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            out.append(_segment(pending.timestamp_ms, [_text_and_size(b"".join(pending.parts))], pending.lines))

    def flush_older_than(self, now_ns: int, age_s: float, out: list[Segment]) -> None:
        if self._pending is not None and now_ns - self._pending.started_ns >= age_s * 1e9:
            self._emit(out)

    def flush(self, out: list[Segment]) -> None:
        self._emit(out)


class EventQueue:
    """Segments waiting to be sent, counted in events and in CloudWatch bytes (message + 26 per event)."""

    def __init__(self) -> None:
        self._segments: deque[Segment] = deque()
        self.events = 0
        self.bytes = 0

    def __len__(self) -> int:
        return self.events

    def extend(self, segments: list[Segment]) -> None:
        for segment in segments:
            self._segments.append(segment)
            self.events += len(segment)
            self.bytes += segment.nbytes

    def take_batch(self) -> tuple[LogEvents, int]:
        """The events at the head that fit one PutLogEvents call, sorted by timestamp, and how many."""
        chosen: list[Segment] = []
        count = 0
        total = 0
        low = high = -1
        for segment in self._segments:
            stamp = segment.timestamp_ms
            if chosen and (max(high, stamp) - min(low, stamp) > MAX_SPAN_MS):
                break
            room_events = MAX_BATCH_EVENTS - count
            if len(segment) <= room_events and total + segment.nbytes <= MAX_BATCH_BYTES:
                fit = len(segment)  # the whole segment: no per-event work
            else:
                fit = 0
                for cumulative in accumulate(size + PER_EVENT_BYTES for size in segment.sizes[:room_events]):
                    if total + cumulative > MAX_BATCH_BYTES:
                        break
                    fit += 1
            if fit == 0:
                break
            low = stamp if low < 0 else min(low, stamp)
            high = max(high, stamp)
            if fit < len(segment):
                chosen.append(segment.part(0, fit))
                count += fit
                break
            chosen.append(segment)
            count += fit
            total += segment.nbytes
        chosen.sort(key=_by_time)  # stable: equal times keep their order
        return LogEvents(chosen), count

    def drop(self, count: int) -> int:
        """Remove `count` events from the head (after they were sent or given up on); the container's lines
        whose events are now all gone."""
        lines = 0
        while count:
            head = self._segments[0]
            if len(head) <= count:
                self._segments.popleft()
                taken = len(head)
                self.bytes -= head.nbytes
                lines += head.lines
            else:
                taken = count
                rest = head.part(taken)
                self.bytes -= head.nbytes - rest.nbytes
                self._segments[0] = rest
            self.events -= taken
            count -= taken
        return lines

    def clear(self) -> None:
        self._segments.clear()
        self.events = self.bytes = 0


def _by_time(segment: Segment) -> int:
    return segment.timestamp_ms
