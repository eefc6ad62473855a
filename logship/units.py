"""Size parsing exactly as Docker's go-units does it.

Docker uses two parsers and the difference is visible to users: `max-size` is decimal
(`10m` = 10,000,000 bytes, `units.FromHumanSize`) while `max-buffer-size`, `fluentd-buffer-limit`
and `--memory` are binary (`1m` = 1,048,576 bytes, `units.RAMInBytes`). Both reject negative and
malformed sizes with `invalid size: '<s>'`.
"""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_BINARY = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


class SizeError(ValueError):
    pass


def _parse(text: str, table: dict[str, int]) -> int:
    match = _SIZE_RE.fullmatch(text)  # fullmatch: "$" alone would accept a trailing newline, Go's does not
    if not match:
        raise SizeError(f"invalid size: '{text}'")
    number, unit = match.group(1), (match.group(2) or "").lower()
    size = float(number) * table[unit]
    if size == float("inf"):  # Go's ParseFloat fails with "value out of range" there
        raise SizeError(f"invalid size: '{text}' (out of range)")
    return int(size)


def from_human_size(text: str) -> int:
    """Decimal sizes (k=1000), as `units.FromHumanSize`: used for json-file and local `max-size`."""
    return _parse(text, _DECIMAL)


def ram_in_bytes(text: str) -> int:
    """Binary sizes (k=1024), as `units.RAMInBytes`: buffers and memory limits."""
    return _parse(text, _BINARY)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_or_none(text: str) -> float | None:
    """Seconds in a Go duration string (`10m`, `1h30m`, `1.5s`, `-2s`, `0`), or None when it is not one."""
    if text == "0":
        return 0.0
    body = text.lstrip("+")
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("-")
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    return sign * total if position == len(body) and position else None


def parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration in seconds, with its error text."""
    value = go_duration_or_none(text)
    if value is None:
        raise ValueError(f'time: invalid duration "{text}"')
    return value
