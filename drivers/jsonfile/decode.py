"""Reading json-file records back into Messages (the `RecordCodec` for `logreader`).

A record is one JSON object on one line. The message's line is `log` without its trailing newline; a
`log` without one was a non-last piece of a long line (or output cut short by EOF), so the message
gets partial metadata with an empty id, the only trace json-file keeps of pieces.

The fast path (`decode_text`, for `logs` without --details): what `logs` prints for a run of one
stream's records is just their `log` values one after the other (with -t, each after its time). A
small C loop (`_logtext.c`) unescapes a whole chunk of records in Docker's shape straight into runs of
bytes, with no object per record and without the GIL: a byte scan, where the fastest Python JSON
decoder found (msgspec) spends about 0.3 us per record on objects. A chunk it refuses (a record in
another shape: another key order, a lone surrogate escape, invalid JSON) is halved until the parts are
small, and those are decoded record by record like `decode` does, so one odd record does not send a
whole chunk down the slow path.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import orjson

from logship.drivers.base import Run, joined_runs, runs_of
from logship.drivers.jsonfile import _logtext
from logship.drivers.util.logreader import ReadAt
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.pipeline.message import Message, PartialMeta

_NO_NEWLINE = PartialMeta("", 0, False)
_TAIL_BLOCK = 64 * 1024
_LINE_BLOCK = 8 * 1024  # read while looking for one record during a binary search

_TIME_KEY = b'"time":"'
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

    def decode_text(self, data: bytes | memoryview, timestamps: bool = False) -> tuple[list[Run], int]:
        runs = _logtext.runs(data, timestamps)
        if runs is not None:
            return runs, 0
        data = bytes(data)  # the slow path splits and searches it
        if len(data) > _SMALLEST_SPLIT:  # decode the odd records' half apart from the other
            middle = data.find(b"\n", len(data) // 2) + 1
            if 0 < middle < len(data):
                head, head_bad = self.decode_text(data[:middle], timestamps)
                tail, tail_bad = self.decode_text(data[middle:], timestamps)
                # The fallbacks can split a run where the C loop would not have: joined again.
                return joined_runs(head + tail), head_bad + tail_bad
        messages, bad = self.decode(data)
        return runs_of(messages, timestamps), bad

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
