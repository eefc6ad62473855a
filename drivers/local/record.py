"""What a local record holds: a batch, or a slice of one, with every field of its messages.

A frame's payload (integers little-endian):

    head             version u8 (1), flags u8, stream length u16, timestamp ns i64,
                     line count u32, partial count u32, attrs length u32
    stream           the stream's name, UTF-8 ("stdout", "stderr")
    line lengths     line count x u32
    partial entries  partial count x (line index u32, ordinal i32, last u8, id length u16, id UTF-8)
    attrs            attrs length bytes: pairs of (u32 length, UTF-8 key, u32 length, UTF-8 value)
    lines            the lines' bytes, back to back, without newlines; escaped (flag 1: every 0xff
                     byte followed by 0x00) when they hold the frame magic, so that no line can look
                     like a frame to a reader resynchronising after damage

All lines of a batch share its stream and timestamp, so those are stored once; partial metadata is
sparse, as in `Batch`; the container's attributes are encoded once per driver. Strings that came from
the OS with undecodable bytes (surrogate escapes) keep them.

Speed: writing a record is a few `struct.pack`s, an `array` of lengths, a CRC and two joins; reading
one is an `array` of lengths, one `read()` per line and one `Message` per line, all driven by `map`
(no Python bytecode per line but the `Message` constructor's).
A record holds at most RECORD_LINE_BYTES of lines (or one longer line), so readers never need a
buffer much larger than that.
"""

from __future__ import annotations

import io
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate, repeat

from logship.drivers.base import Run, joined_runs, runs_of
from logship.drivers.local import framing
from logship.pipeline.message import Batch, Message, PartialMeta

VERSION = 1
HEAD = struct.Struct("<BBHqIII")
LINES_ESCAPED = 1  # flag
PARTIAL = struct.Struct("<IiBH")
_LENGTH = struct.Struct("<I")
RECORD_LINE_BYTES = 1024 * 1024  # what the copier reads at once: a batch is usually one record

_SWAP = sys.byteorder == "big"  # array("I") is native-endian; the format is little-endian
if array("I").itemsize != 4:  # pragma: no cover - every platform Python supports has 4-byte unsigned int
    raise ImportError("the local format needs array('I') to hold 4-byte items")

_STRING_ERRORS = "surrogateescape"
_ESCAPE = framing.MAGIC[:1]
_ESCAPED = _ESCAPE + b"\x00"


class RecordError(ValueError):
    """A record whose frame was intact but whose contents do not add up."""


def encode_attrs(attrs: Mapping[str, str]) -> bytes:
    parts: list[bytes] = []
    for key, value in attrs.items():
        for text in (key, value):
            raw = text.encode("utf-8", _STRING_ERRORS)
            parts += (_LENGTH.pack(len(raw)), raw)
    return b"".join(parts)


def decode_attrs(raw: bytes) -> dict[str, str]:
    texts: list[str] = []
    position = 0
    while position < len(raw):
        (length,) = _LENGTH.unpack_from(raw, position)
        position += _LENGTH.size
        if position + length > len(raw):
            raise RecordError("attrs run past their length")
        texts.append(raw[position : position + length].decode("utf-8", _STRING_ERRORS))
        position += length
    if len(texts) % 2:
        raise RecordError("attrs hold a key without a value")
    return dict(zip(texts[::2], texts[1::2], strict=True))


class RecordEncoder:
    """Encodes batches as framed records for one container: its attributes are encoded once, here."""

    def __init__(self, attrs: Mapping[str, str]) -> None:
        self._attrs = encode_attrs(attrs)

    def encode(self, batch: Batch) -> bytes:
        """The batch as whole frames, ready to append (b"" for a batch without lines)."""
        lines = batch.lines
        if not lines:
            return b""
        stream = batch.stream.encode("utf-8", _STRING_ERRORS)
        if batch.nbytes <= RECORD_LINE_BYTES:
            return b"".join(self._record(batch, stream, 0, len(lines)))
        parts: list[bytes] = []
        for first, last in _slices(lines):
            parts += self._record(batch, stream, first, last)
        return b"".join(parts)

    def _record(self, batch: Batch, stream: bytes, first: int, last: int) -> list[bytes]:
        lines = batch.lines if first == 0 and last == len(batch.lines) else batch.lines[first:last]
        lengths = array("I", list(map(len, lines)))  # via a list: faster than from the iterator
        if _SWAP:
            lengths.byteswap()
        partials, partial_count = _partial_entries(batch.partials, first, last)
        text = b"".join(lines)
        flags = 0
        # UTF-8 never holds 0xff: text output pays only the first test, a memchr.
        if _ESCAPE in text and framing.MAGIC in text:
            text = text.replace(_ESCAPE, _ESCAPED)
            flags = LINES_ESCAPED
        head = HEAD.pack(VERSION, flags, len(stream), batch.timestamp_ns, len(lines), partial_count, len(self._attrs))
        return framing.frame([head, stream, lengths.tobytes(), partials, self._attrs, text])


def count_messages(blob: bytes, start: int, end: int) -> int:
    """The messages held by the whole frames in blob[start:end] (as written: intact), from each record's
    head: `LogFile` counts what each file holds while someone follows it."""
    total = 0
    position = start
    while position < end:
        length = framing.HEAD.unpack_from(blob, position)[1]
        total += HEAD.unpack_from(blob, position + framing.HEAD.size)[4]
        position += length + framing.OVERHEAD
    return total


def _slices(lines: list[bytes]) -> list[tuple[int, int]]:
    """Cut a long batch into runs of lines of at most RECORD_LINE_BYTES (a longer line runs alone)."""
    ends = list(accumulate(map(len, lines)))  # ends[i]: bytes in lines[0..i]
    slices: list[tuple[int, int]] = []
    first = 0
    while first < len(lines):
        before = ends[first - 1] if first else 0
        last = max(first + 1, bisect_right(ends, before + RECORD_LINE_BYTES, lo=first))
        slices.append((first, last))
        first = last
    return slices


def _partial_entries(partials: Mapping[int, PartialMeta], first: int, last: int) -> tuple[bytes, int]:
    if not partials:
        return b"", 0
    parts: list[bytes] = []
    for index in sorted(partials):
        if first <= index < last:
            meta = partials[index]
            raw_id = meta.id.encode("utf-8", _STRING_ERRORS)
            parts += (PARTIAL.pack(index - first, meta.ordinal, meta.last, len(raw_id)), raw_id)
    return b"".join(parts), len(parts) // 2


def line_count(head: bytes, payload_length: int) -> int | None:
    """The number of lines of a record, from the first HEAD.size bytes of its payload; None when the
    head does not fit the payload (damage the CRC was not asked about)."""
    if len(head) < HEAD.size or payload_length < HEAD.size:
        return None
    version, _, stream_length, _, count, partial_count, attrs_length = HEAD.unpack_from(head)
    needed = HEAD.size + stream_length + 4 * count + PARTIAL.size * partial_count + attrs_length
    if version != VERSION or needed > payload_length:
        return None
    return int(count)


def decode_records(data: bytes, payloads: list[tuple[int, int]]) -> tuple[list[Message], int]:
    """The messages of the records whose payloads lie at `payloads` in `data`, and how many records
    could not be decoded (skipped). Messages of one record share one attrs dict: treat it as read-only."""
    messages: list[Message] = []
    bad = 0
    known_attrs: dict[bytes, dict[str, str]] = {}  # the attrs of a container repeat in every record
    for start, end in payloads:
        try:
            messages += _decode(data, start, end, known_attrs)
        except (RecordError, struct.error, UnicodeDecodeError):
            bad += 1
    return messages, bad


@dataclass
class _Record:
    """A record's fields, its lines still back to back in `text[text_start:]`."""

    stream: str
    timestamp_ns: int
    lengths: array[int]
    partials: list[tuple[int, PartialMeta]]
    attrs: dict[str, str] | None
    text: bytes
    text_start: int

    def lines(self) -> list[bytes]:
        # BytesIO over bytes shares their buffer; mapping its read() over the lengths is the cheapest
        # way to cut thousands of lines out of a record.
        cutter = io.BytesIO(self.text)
        cutter.seek(self.text_start)
        return list(map(cutter.read, self.lengths))


def _parse(data: bytes, start: int, end: int, known_attrs: dict[bytes, dict[str, str]]) -> _Record:
    version, flags, stream_length, timestamp_ns, count, partial_count, attrs_length = HEAD.unpack_from(data, start)
    if version != VERSION:
        raise RecordError(f"record version {version} is not known")
    position = start + HEAD.size
    stream = data[position : position + stream_length].decode("utf-8", _STRING_ERRORS)
    position += stream_length
    lengths = array("I")
    lengths.frombytes(memoryview(data)[position : position + 4 * count])
    if len(lengths) != count:
        raise RecordError("line lengths run past the record")
    if _SWAP:
        lengths.byteswap()
    position += 4 * count
    partials: list[tuple[int, PartialMeta]] = []
    for _ in range(partial_count):
        index, ordinal, last, id_length = PARTIAL.unpack_from(data, position)
        position += PARTIAL.size
        partial_id = data[position : position + id_length].decode("utf-8", _STRING_ERRORS)
        position += id_length
        if index >= count:
            raise RecordError("partial metadata for a line the record does not hold")
        partials.append((index, PartialMeta(partial_id, ordinal, bool(last))))
    attrs: dict[str, str] | None = None
    if attrs_length:
        raw_attrs = data[position : position + attrs_length]
        attrs = known_attrs.get(raw_attrs)
        if attrs is None:
            attrs = known_attrs[raw_attrs] = decode_attrs(raw_attrs)
        position += attrs_length
    text, text_start, text_end = data, position, end
    if flags & LINES_ESCAPED:
        text = data[position:end].replace(_ESCAPED, _ESCAPE)
        text_start, text_end = 0, len(text)
    if text_start + sum(lengths) != text_end:
        raise RecordError("line lengths do not add up to the record's size")
    return _Record(stream, timestamp_ns, lengths, partials, attrs, text, text_start)


def _decode(data: bytes, start: int, end: int, known_attrs: dict[bytes, dict[str, str]]) -> list[Message]:
    record = _parse(data, start, end, known_attrs)
    lines, stream, timestamp_ns, attrs = record.lines(), record.stream, record.timestamp_ns, record.attrs
    if attrs:
        messages = list(map(Message, lines, repeat(stream), repeat(timestamp_ns), repeat(None), repeat(attrs)))
    else:
        messages = list(map(Message, lines, repeat(stream), repeat(timestamp_ns)))
    for index, meta in record.partials:
        messages[index].partial = meta
    return messages


def decode_text_records(data: bytes, payloads: list[tuple[int, int]]) -> tuple[list[Run], int]:
    """What `logs` prints for the records at `payloads` (`runs_of` their messages, without making them),
    and how many records could not be decoded (skipped)."""
    pieces: list[Run] = []
    bad = 0
    known_attrs: dict[bytes, dict[str, str]] = {}
    for start, end in payloads:
        try:
            record = _parse(data, start, end, known_attrs)
        except (RecordError, struct.error, UnicodeDecodeError):
            bad += 1
            continue
        if record.partials:  # pieces of long lines: only some lines end with a newline
            pieces += runs_of(_decode(data, start, end, known_attrs))
        elif record.lengths:
            pieces.append((record.stream, b"\n".join(record.lines()) + b"\n"))
    return joined_runs(pieces), bad


def timestamp_of(data: bytes, start: int, end: int) -> int | None:
    """The timestamp of the record whose payload is data[start:end]; None when it does not decode."""
    try:
        return _parse(data, start, end, {}).timestamp_ns
    except (RecordError, struct.error, UnicodeDecodeError):
        return None
