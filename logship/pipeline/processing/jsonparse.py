"""parse=json: a line (or multiline event) that is a JSON object becomes fields.

The bounds, so that no line can make the daemon work without limit or a driver choke:
- only a JSON object parses (`{...}`, whitespace around it allowed); arrays, strings, numbers and text that
  is not JSON (or not UTF-8) pass unchanged, counted as not parsed;
- a record is at most `multiline-max-bytes` (256 KiB by default): a longer line passes in its pieces,
  unparsed (see `events`);
- objects and arrays nested deeper than MAX_DEPTH levels are kept, from that level down, as their JSON
  text (a string), so every driver gets at most MAX_DEPTH levels (orjson itself refuses more than 1,024).

Drivers that flatten fields (gelf, journald) bound their number too (`flatten`).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 16
MAX_FLAT_FIELDS = 256  # gelf and journald: fields made from one record at most
Fields = dict[str, Any]

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def parse(record: bytes) -> Fields | None:
    """The record's fields, None when it is not a JSON object."""
    head = record[:1]
    if head != b"{" and (head not in (b" ", b"\t", b"\r") or record.lstrip()[:1] != b"{"):
        return None
    try:
        value = _loads(record)
    except _JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    if record.count(b"{") + record.count(b"[") > MAX_DEPTH:  # could be deeper than allowed: look
        value = _bounded(value, 1)
    fields: Fields = value
    return fields


def _bounded(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            return orjson.dumps(value).decode()
        return {key: _bounded(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        if depth > MAX_DEPTH:
            return orjson.dumps(value).decode()
        return [_bounded(item, depth + 1) for item in value]
    return value


def scalar_text(value: Any) -> str:
    """A value as the text of a flat field: strings as they are, everything else as its JSON text."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


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
