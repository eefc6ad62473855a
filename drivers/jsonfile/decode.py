"""Reading json-file records back into Messages (the `RecordCodec` for `logreader`).

A record is one JSON object on one line. The message's line is `log` without its trailing newline; a
`log` without one was a non-last piece of a long line (or output cut short by EOF), so the message
gets partial metadata with an empty id, the only trace json-file keeps of pieces.

The fast path (`decode_text`, for `logs` without --timestamps/--details): what `logs` prints for a run
of one stream's records is just their `log` values one after the other. Docker and logship write the
keys in one order, `{"log":"...","stream":"...",["attrs":{...},]"time":"..."}`, so in a run of such
records everything between one `log` value and the next is `","stream":"stdout",...,"time":"..."}\n
{"log":"`. One regular-expression substitution (a C loop over the chunk) cuts those out, which leaves
the `log` values back to back as the body of one JSON string, and one `orjson.loads` of that string
unescapes all of them at once. A record not in that shape keeps its newline (and its quotes) in the
body, which the string decoder refuses; that part of the chunk, and any part refused for another reason
(lone surrogates, invalid JSON), is decoded record by record like `decode` does. Parts are halved
until they are small, so one odd record does not send a whole chunk down the slow path.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import orjson

from logship.drivers.base import Run, runs_of
from logship.drivers.util.logreader import ReadAt
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.pipeline.message import STDERR, STDOUT, Message, PartialMeta

_NO_NEWLINE = PartialMeta("", 0, False)
_TAIL_BLOCK = 64 * 1024
_LINE_BLOCK = 8 * 1024  # read while looking for one record during a binary search

_LOG_START = b'{"log":"'
_TIME_KEY = b'"time":"'
# What separates one record's `log` value from the next one's, for each stream; attrs are left out of
# `logs` output without --details. The time's `[^"\n]` keeps a match inside one record boundary.
_BETWEEN = {
    stream: re.compile(
        rb'","stream":"' + stream.encode() + rb'",(?:"attrs":\{[^\n]*?\},)?"time":"[^"\n]*"\}\n\{"log":"'
    )
    for stream in (STDOUT, STDERR)
}
_STREAM_MARK = {stream: b'","stream":"' + stream.encode() + b'",' for stream in (STDOUT, STDERR)}
# A `log` value that ends in a backslash before its closing quote: either an escaped backslash (fine)
# or a broken record whose quote is escaped; cutting there could glue it to the next record's text.
_BACKSLASH_BEFORE_END = b'\\","stream":"'
_SMALLEST_SPLIT = 16 * 1024  # below this, a part the fast path refuses is decoded record by record
_SURROGATE_ERRORS = "logship.surrogate-ufffd"


def _surrogate_replacement(error: UnicodeError) -> tuple[str | bytes, int]:
    # A lone surrogate escape ("\ud800") written by some other tool: Go reads it as U+FFFD.
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "\ufffd".encode() * (error.end - error.start), error.end


codecs.register_error(_SURROGATE_ERRORS, _surrogate_replacement)


class JSONLines:
    """Records separated by newlines (JSON lines never hold a raw newline)."""

    def complete_length(self, data: bytes) -> int:
        return data.rfind(b"\n") + 1

    def decode(self, data: bytes) -> tuple[list[Message], int]:
        messages: list[Message] = []
        append = messages.append
        bad = 0
        last_time, last_ns = "", 0  # the records of one batch share one time: parse it once
        for raw in data.split(b"\n"):
            if not raw:
                continue
            try:
                record = _load(raw)
                time_text = record["time"]
                if time_text != last_time:
                    last_ns, last_time = parse_rfc3339nano(time_text), time_text
                append(_message(record, last_ns))
            except (ValueError, TypeError, KeyError, AttributeError):
                bad += 1
        return messages, bad

    def decode_text(self, data: bytes) -> tuple[list[Run], int]:
        runs: list[Run] = []
        bad = 0
        for stream, start, end in _stream_runs(data):
            found, undecodable = self._decode_run(stream, data[start:end])
            runs += found
            bad += undecodable
        return _merged(runs), bad

    def _decode_run(self, stream: str, data: bytes) -> tuple[list[Run], int]:
        """Records that should all be of `stream`: the fast path, else halves of them, else one by one."""
        text = _fast_text(stream, data)
        if text is not None:
            return ([(stream, text)] if text else []), 0
        if len(data) > _SMALLEST_SPLIT:
            middle = data.find(b"\n", len(data) // 2) + 1
            if 0 < middle < len(data):
                head, head_bad = self._decode_run(stream, data[:middle])
                tail, tail_bad = self._decode_run(stream, data[middle:])
                return head + tail, head_bad + tail_bad
        messages, bad = self.decode(data)
        return runs_of(messages), bad

    def record_at(self, read_at: ReadAt, offset: int, end: int) -> tuple[int, int] | None:
        position = offset
        if position > 0:  # a record starts just after a newline
            newline = _find_newline(read_at, position - 1, end)
            if newline < 0:
                return None
            position = newline + 1
        while position < end:
            newline = _find_newline(read_at, position, end)
            stop = end if newline < 0 else newline
            timestamp_ns = _time_of(read_at(position, stop - position))
            if timestamp_ns is not None:
                return position, timestamp_ns
            position = stop + 1
        return None

    def tail_start(self, read_at: ReadAt, end: int, count: int) -> tuple[int, int]:
        if end <= 0 or count <= 0:
            return end, 0
        # The byte before `end` closes the last record; each newline before it opens another record.
        needed = count
        position = end - 1
        while position > 0:
            block_start = max(0, position - _TAIL_BLOCK)
            block = read_at(block_start, position - block_start)
            found = block.count(b"\n")
            if found >= needed:
                index = len(block)
                for _ in range(needed):
                    index = block.rfind(b"\n", 0, index)
                return block_start + index + 1, count
            needed -= found
            position = block_start
        return 0, count - needed + 1


JSON_LINES = JSONLines()


def _load(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # accepts what orjson refuses, such as lone surrogate escapes


def _message(record: dict[str, Any], timestamp_ns: int) -> Message:
    text = record.get("log", "")
    try:
        line = text.encode("utf-8")
    except UnicodeEncodeError:
        line = text.encode("utf-8", _SURROGATE_ERRORS)
    partial = None
    if line.endswith(b"\n"):
        line = line[:-1]
    else:
        partial = _NO_NEWLINE
    attrs = record.get("attrs")
    if attrs is not None and not isinstance(attrs, dict):
        raise TypeError("attrs is not an object")
    return Message(line, record.get("stream", ""), timestamp_ns, partial, attrs or None)


def _stream_runs(data: bytes) -> list[tuple[str, int, int]]:
    """`data` cut at line boundaries into (stream, start, end) parts whose records are all of one stream,
    going by where the other stream's mark is. Lines of neither stream land in some part, and fail the
    fast path there."""
    if _STREAM_MARK[STDERR] not in data:
        return [(STDOUT, 0, len(data))]
    if _STREAM_MARK[STDOUT] not in data:
        return [(STDERR, 0, len(data))]
    parts: list[tuple[str, int, int]] = []
    position = 0
    stream = STDOUT if data.find(_STREAM_MARK[STDOUT]) < data.find(_STREAM_MARK[STDERR]) else STDERR
    flipped = False  # the stream was switched for the line at `position` without taking it yet
    while position < len(data):
        other = STDERR if stream == STDOUT else STDOUT
        mark = data.find(_STREAM_MARK[other], position)
        cut = len(data) if mark < 0 else data.rfind(b"\n", position, mark) + 1
        if cut <= position:  # the line at `position` is the other stream's
            if not flipped:
                stream, flipped = other, True
                continue
            cut = data.find(b"\n", position) + 1 or len(data)  # it holds both marks: a part of its own
        parts.append((stream, position, cut))
        position, stream, flipped = cut, other, False
    return parts


def _fast_text(stream: str, data: bytes) -> bytes | None:
    """What `logs` prints for `data`, whole records all of `stream` in Docker's key order; None when some
    record is not in that shape or does not decode (see the module docstring)."""
    if not data.startswith(_LOG_START) or not data.endswith(b"\n") or _BACKSLASH_BEFORE_END in data:
        return None
    # The extra start closes the last record. A record that did not match leaves its newline in the body,
    # which the string decoder refuses (a control character): no need to count the matches.
    body = _BETWEEN[stream].sub(b"", data + _LOG_START)
    try:
        text: str = orjson.loads(b'"' + body[len(_LOG_START) :] + b'"')
    except orjson.JSONDecodeError:
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # pragma: no cover - orjson refuses lone surrogates before this
        return None


def _merged(runs: list[Run]) -> list[Run]:
    """Neighbouring runs of one stream joined (the parts of a chunk are cut at stream changes, but the
    fallbacks can split a run)."""
    merged: list[Run] = []
    for stream, text in runs:
        if merged and merged[-1][0] == stream:
            merged[-1] = (stream, merged[-1][1] + text)
        else:
            merged.append((stream, text))
    return merged


def _find_newline(read_at: ReadAt, position: int, end: int) -> int:
    """Offset of the first newline at or after `position` and before `end`, -1 if none."""
    while position < end:
        block = read_at(position, min(_LINE_BLOCK, end - position))
        if not block:
            return -1
        found = block.find(b"\n")
        if found >= 0:
            return position + found
        position += len(block)
    return -1


def _time_of(line: bytes) -> int | None:
    """The timestamp of one record (without its newline); None if the record does not decode."""
    key = line.rfind(_TIME_KEY)
    if key >= 0 and line.endswith(b'"}') and line.startswith(b"{"):
        try:  # Docker's key order: the time is the last value
            return parse_rfc3339nano(line[key + len(_TIME_KEY) : -2].decode("ascii"))
        except ValueError:
            pass
    try:
        record = _load(line)
        return parse_rfc3339nano(record["time"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
