"""parse=json: a line (or multiline event) that is a JSON object becomes fields.

The bounds, so that no line can make the daemon work without limit or a driver choke:
- only a JSON object parses (`{...}`, whitespace around it allowed); arrays, strings, numbers and text that
  is not JSON (or not UTF-8) pass unchanged, counted as not parsed;
- a record is at most `multiline-max-bytes` (256 KiB by default): a longer line passes in its pieces,
  unparsed (see `events`);
- objects and arrays nested deeper than MAX_DEPTH levels are kept, from that level down, as their JSON
  text (a string), so every driver gets at most MAX_DEPTH levels (deeper than the decoder goes: not parsed);
- a number too large for 64 bits stays a number in JSON, and becomes its text where a driver cannot hold
  it (fluentd's msgpack).

Drivers that flatten fields (gelf, journald) bound their number too (`flatten`).
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_DEPTH = 16
MAX_FLAT_FIELDS = 256  # gelf and journald: fields made from one record at most
Fields = dict[str, Any]

# msgspec rather than orjson here: decoding is about 15% faster, and its msgpack encoder (fluentd) twice
# msgpack's pace, which is most of what parse=json costs per line.
_loads = msgspec.json.Decoder().decode
_to_json = msgspec.json.encode
# Not JSON, not UTF-8, nested deeper than the decoder goes.
_NOT_JSON = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_INT64 = (-(2**63), 2**64 - 1)  # what msgpack holds; a larger JSON number is kept as its text


def parse(record: bytes) -> Fields | None:
    """The record's fields, None when it is not a JSON object."""
    head = record[:1]
    if head != b"{" and (head not in (b" ", b"\t", b"\r") or record.lstrip()[:1] != b"{"):
        return None
    try:
        value = _loads(record)
    except _NOT_JSON:
        return None
    if not isinstance(value, dict):
        return None
    if record.count(b"{") + record.count(b"[") > MAX_DEPTH:  # could be deeper than allowed: look
        value = _bounded(value, 1)
    fields: Fields = value
    return fields


_SPACES = (b" ", b"\t", b"\r")


_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"{[\n")


def parse_lines(text: bytes, lines: list[bytes], cap: int) -> list[Fields | None]:
    """`parse` of each of `text`'s lines (`lines` is text.split(b"\\n")), None for one longer than `cap`, with as
    little Python per line as can be: one comprehension, and the depth looked at only on lines with many
    brackets (found with one C pass over the text)."""
    try:
        if len(text) <= cap and text[:1] == b"{" and text.count(b"\n{") == len(lines) - 1:
            values = list(map(_loads, lines))  # every line opens an object (JSON logs): no Python per line
        elif len(text) <= cap:  # no line can be longer
            values = [
                _loads(line) if line[:1] == b"{" else parse(line) if line[:1] in _SPACES else None for line in lines
            ]
        else:
            values = [
                (_loads(line) if line[:1] == b"{" else parse(line) if line[:1] in _SPACES else None)
                if len(line) <= cap
                else None
                for line in lines
            ]
    except _NOT_JSON:  # a line that is not JSON after all: each on its own
        return [parse(line) if len(line) <= cap else None for line in lines]
    brackets = text.translate(None, _NOT_BRACKETS)
    if len(brackets) - len(lines) + 1 > MAX_DEPTH and max(map(len, brackets.split(b"\n"))) > MAX_DEPTH:
        for index, value in enumerate(values):
            line = lines[index]
            if value is not None and line.count(b"{") + line.count(b"[") > MAX_DEPTH:
                values[index] = _bounded(value, 1)
    return values


def _bounded(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            return _to_json(value).decode()
        return {key: _bounded(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        if depth > MAX_DEPTH:
            return _to_json(value).decode()
        return [_bounded(item, depth + 1) for item in value]
    return value


def packable(value: Any) -> Any:
    """`value` with every integer msgpack cannot hold (past 64 bits) as its text: for an encoder that refused
    the fields as they are (the rare case; JSON numbers have no size limit)."""
    if isinstance(value, dict):
        return {key: packable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [packable(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        return str(value)
    return value


def scalar_text(value: Any) -> str:
    """A value as the text of a flat field: strings as they are, everything else as its JSON text."""
    if isinstance(value, str):
        return value
    return _to_json(value).decode()


def flatten(fields: Fields, separator: str = "_", prefix: str = "") -> list[tuple[str, Any]]:
    """Nested objects as flat (key path, value) pairs, keys joined by `separator` (`{"a": {"b": 1}}` gives
    `a_b`); arrays and scalars are values. At most MAX_FLAT_FIELDS pairs: the record, which the driver
    sends whole as its message, still has the rest."""
    out: list[tuple[str, Any]] = []
    stack: list[tuple[str, Fields]] = [(prefix, fields)]
    while stack and len(out) < MAX_FLAT_FIELDS:
        path, current = stack.pop()
        nested: list[tuple[str, Fields]] = []
        for key, value in current.items():
            name = f"{path}{separator}{key}" if path else key
            if isinstance(value, dict) and value:
                nested.append((name, value))
            else:
                out.append((name, value))
                if len(out) >= MAX_FLAT_FIELDS:
                    break
        stack.extend(reversed(nested))
    return out
