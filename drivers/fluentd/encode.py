"""Batches of lines → Fluentd Forward protocol bytes.

Each line becomes the record Docker's driver sends: `container_id` (64), `container_name` (with its "/"),
`source`, the extra attributes, and `log` (the line without newline, raw bytes in a msgpack str, as Go's
client sends them); pieces of long lines add `partial_message`, `partial_id`, `partial_ordinal`,
`partial_last`. Every value is a string, as in Docker. Unlike Docker, an attribute never replaces one of
these base fields (a label named `log` would otherwise replace every line).

A batch shares one timestamp and one stream, so everything in a record but its line is the same: it is
encoded once per batch, and the batch becomes one PackedForward message
`[tag, <entries as one bin>, {"size": n(, "chunk": id)}]` instead of one network message per record.

With parse=json (`logship.pipeline.processing`), a line that was a JSON object becomes its keys, as
top-level keys of the record next to `container_id` and the rest (or all under `parse-key`), in place of
`log` (a JSON key `log` is kept, as any other). The container's own keys are never replaced: a JSON key
named like one of them (`container_id`, `source`, an attribute) is kept as `json_<key>`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, cast

import msgpack
import msgspec
from fluent.sender import EventTime

from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch, PartialMeta
from logship.pipeline.processing.jsonparse import packable

BASE_KEYS = ("container_id", "container_name", "source", "log")
_STR8 = tuple(bytes([0xA0 | n]) for n in range(32)) + tuple(b"\xd9" + bytes([n]) for n in range(32, 256))


def str_header(length: int) -> bytes:
    """msgpack str header (the spec's current str8/16/32 forms, as Go's msgp writes them)."""
    if length < 256:
        return _STR8[length]
    if length < 65536:
        return b"\xda" + struct.pack(">H", length)
    return b"\xdb" + struct.pack(">I", length)


def _str(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return str_header(len(data)) + data


_MAP_HEADERS = [bytes([0x80 | size]) for size in range(16)] + [b"\xde" + struct.pack(">H", n) for n in range(16, 256)]


def _map_header(size: int) -> bytes:
    if size < 256:
        return _MAP_HEADERS[size]
    return b"\xde" + struct.pack(">H", size) if size < 65536 else b"\xdf" + struct.pack(">I", size)


def event_time(timestamp_ns: int, sub_second: bool) -> bytes:
    """Integer seconds, or an EventTime (ext 0: seconds and nanoseconds) with sub-second precision."""
    value = EventTime.from_unix_nano(timestamp_ns) if sub_second else timestamp_ns // 1_000_000_000
    return _pack(value)


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed


class RecordEncoder:
    def __init__(self, info: ContainerInfo, attrs: Mapping[str, str], sub_second: bool, parse_key: str = "") -> None:
        self.sub_second = sub_second
        self.parse_key = parse_key
        extra = {k: v for k, v in attrs.items() if k not in BASE_KEYS}
        fixed = _str("container_id") + _str(info.full_id()) + _str("container_name") + _str(info.container_name)
        extra_bytes = b"".join(_str(k) + _str(v) for k, v in extra.items())
        # A parsed line's record: these pairs first (encoded once), then its keys.
        self._fixed = {stream: fixed + _str("source") + _str(stream) + extra_bytes for stream in ("stdout", "stderr")}
        self._fixed_count = 3 + len(extra)
        self._reserved = frozenset(("container_id", "container_name", "source", *extra))
        self._pack = msgspec.msgpack.Encoder().encode
        size = len(BASE_KEYS) + len(extra)
        # Everything in a record before the line, per stream: map header, fixed pairs, source, extras, "log".
        self._before_line = {
            stream: _map_header(size) + fixed + _str("source") + _str(stream) + extra_bytes + _str("log")
            for stream in ("stdout", "stderr")
        }
        self._partial_head = {
            stream: _map_header(size + 4) + fixed + _str("source") + _str(stream) + extra_bytes
            for stream in ("stdout", "stderr")
        }
        # Bytes a record takes beyond its line (array header, time, the fixed fields, the line's header).
        self.record_overhead = 1 + 10 + len(self._before_line["stdout"]) + 5

    def entries(self, batch: Batch) -> bytes:
        """The batch as a PackedForward entry stream: msgpack `[time, record]` arrays back to back."""
        head = b"\x92" + event_time(batch.timestamp_ns, self.sub_second)
        before = head + self._before_line[batch.stream]
        lines = batch.lines
        if batch.fields is not None:
            return self._with_fields(batch, head, before)
        if not batch.partials:
            lengths = set(map(len, lines))
            if len(lengths) == 1:  # common with machine-written logs: one join, no per-line work
                separator = before + str_header(lengths.pop())
                return separator + separator.join(lines)
            parts = []
            for line in lines:
                parts.append(before)
                parts.append(str_header(len(line)))
                parts.append(line)
            return b"".join(parts)
        parts = []
        for index, line in enumerate(lines):
            meta = batch.partials.get(index)
            if meta is None:
                parts.append(before)
            else:
                parts.append(head + self._partial_head[batch.stream] + _partial_pairs(meta) + _str("log"))
            parts.append(str_header(len(line)))
            parts.append(line)
        return b"".join(parts)

    def _with_fields(self, batch: Batch, head: bytes, before: bytes) -> bytes:
        """Records of parsed lines (see the module docstring); the others as usual."""
        assert batch.fields is not None
        try:
            return self._records(batch, batch.fields, head, before)
        except (OverflowError, TypeError, ValueError):  # a number past 64 bits: kept as its text
            return self._records(batch, [packable(f) if f is not None else None for f in batch.fields], head, before)

    def _records(self, batch: Batch, parsed: list[dict[str, Any] | None], head: bytes, before: bytes) -> bytes:
        if not batch.partials and None not in parsed:
            uniform = self._uniform(batch.stream, cast(list[dict[str, Any]], parsed), head)
            if uniform is not None:
                return uniform
        fixed = self._fixed[batch.stream]
        count = self._fixed_count
        reserved = self._reserved
        parse_key = _str(self.parse_key) if self.parse_key else b""
        pack = self._pack
        partials = batch.partials
        parts: list[bytes] = []
        extend = parts.extend
        for index, (line, fields) in enumerate(zip(batch.lines, parsed, strict=True)):
            if fields is not None:
                if parse_key:  # {fixed..., parse_key: {fields}}
                    extend((head, _map_header(count + 1), fixed, parse_key, pack(fields)))
                    continue
                if not reserved.isdisjoint(fields):
                    fields = {f"json_{k}" if k in reserved else k: v for k, v in fields.items()}
                packed = pack(fields)  # a map: its pairs follow the fixed ones under one header
                extend((head, _map_header(count + len(fields)), fixed, packed[_HEADER_SIZE[packed[0]] :]))
                continue
            meta = partials.get(index) if partials else None
            if meta is None:
                extend((before, str_header(len(line)), line))
            else:
                extend(
                    (
                        head + self._partial_head[batch.stream] + _partial_pairs(meta) + _str("log"),
                        str_header(len(line)),
                        line,
                    )
                )
        return b"".join(parts)

    def _uniform(self, stream: str, parsed: list[dict[str, Any]], head: bytes) -> bytes | None:
        """Every line parsed, each with as many keys, none named like the container's own: every record is
        the same prefix, then its keys (machine-written JSON logs), joined at once. None when not so."""
        pack = self._pack
        prefix = head + self._fixed[stream]
        if self.parse_key:
            prefix = head + _map_header(self._fixed_count + 1) + self._fixed[stream] + _str(self.parse_key)
            return prefix + prefix.join(map(pack, parsed))
        sizes = set(map(len, parsed))
        if len(sizes) != 1 or not all(map(self._reserved.isdisjoint, parsed)):
            return None
        packed = list(map(pack, parsed))
        size = sizes.pop()
        skip = 1 if size < 16 else (3 if size < 65536 else 5)
        prefix = head + _map_header(self._fixed_count + size) + self._fixed[stream]
        return prefix + prefix.join([record[skip:] for record in packed])


# The size of a msgpack map's header by its first byte: fixmap, map16, map32.
_HEADER_SIZE = [1] * 0xDE + [3, 5]


def _partial_pairs(meta: PartialMeta) -> bytes:
    return (
        _str("partial_message")
        + _str("true")
        + _str("partial_id")
        + _str(meta.id)
        + _str("partial_ordinal")
        + _str(str(meta.ordinal))
        + _str("partial_last")
        + _str("true" if meta.last else "false")
    )


def forward_message(tag: bytes, entries: Sequence[bytes], count: int, chunk: str | None) -> bytes:
    """One PackedForward message of the entry streams `entries` (batches' `entries`, back to back), made
    with one copy of them. `tag` is the msgpack-encoded tag; `chunk` asks for an ack."""
    option: dict[str, int | str] = {"size": count}
    if chunk is not None:
        option["chunk"] = chunk
    size = sum(map(len, entries))
    return b"".join((b"\x93", tag, _bin_header(size), *entries, _pack(option)))


def _bin_header(length: int) -> bytes:
    if length < 256:
        return b"\xc4" + bytes([length])
    if length < 65536:
        return b"\xc5" + struct.pack(">H", length)
    return b"\xc6" + struct.pack(">I", length)


def encode_tag(tag: str) -> bytes:
    return _pack(tag)
