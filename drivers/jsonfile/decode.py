"""Reading json-file records back into Messages (the `RecordCodec` for `logreader`).

A record is one JSON object on one line. The message's line is `log` without its trailing newline; a
`log` without one was a non-last piece of a long line (or output cut short by EOF), so the message
gets partial metadata with an empty id, the only trace json-file keeps of pieces.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import orjson

from logship.drivers.util.logreader import ReadAt
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.pipeline.message import Message, PartialMeta

_NO_NEWLINE = PartialMeta("", 0, False)
_TAIL_BLOCK = 64 * 1024
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
