"""RFC 3339 timestamps as Go's `time.RFC3339Nano` writes them, in nanoseconds since the epoch.

Docker stores every time this way (json-file's `time`, the gzip header's `lastTime`): UTC with a `Z`,
and the fraction's trailing zeros trimmed (`.47440988Z`), no fraction at all on a whole second.

Both directions cache the whole-second part, because a log holds thousands of entries per second and
the seconds are the expensive part to convert.
"""

from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache

NS_PER_SECOND = 1_000_000_000

# Seconds part, optional fraction, zone: "2006-01-02T15:04:05.999999999Z07:00".
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))")


def format_rfc3339nano(timestamp_ns: int) -> str:
    """`2026-11-29T06:35:39.47440988Z` for a time in nanoseconds since the epoch."""
    seconds, nanos = divmod(timestamp_ns, NS_PER_SECOND)
    whole = _format_seconds(seconds)
    if not nanos:
        return whole + "Z"
    return f"{whole}.{nanos:09d}".rstrip("0") + "Z"


@lru_cache(maxsize=256)
def _format_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def parse_rfc3339nano(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 time; ValueError naming the text if it is not one."""
    # The common case, as Docker writes it: "2026-11-29T06:35:39.47440988Z".
    if text[-1:] == "Z" and len(text) > 20 and text[19] == ".":
        fraction = text[20:-1]
        if len(fraction) <= 9 and fraction.isdigit() and fraction.isascii():
            return _parse_seconds(text[:19]) * NS_PER_SECOND + int(fraction) * _FRACTION_SCALE[len(fraction)]
    return _parse_general(text)


_FRACTION_SCALE: list[int] = [10 ** (9 - digits) for digits in range(10)]


@lru_cache(maxsize=4096)
def _parse_seconds(text: str) -> int:
    match = _RFC3339.fullmatch(text + "Z")
    if not match:
        raise ValueError(f"invalid RFC 3339 time {text!r}")
    return _epoch_seconds(match)


def _parse_general(text: str) -> int:
    match = _RFC3339.fullmatch(text)
    if not match:
        raise ValueError(f"invalid RFC 3339 time {text!r}")
    seconds = _epoch_seconds(match)
    if match.group(9):  # a numeric zone: local time = UTC + offset
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    fraction = match.group(7) or ""
    return seconds * NS_PER_SECOND + (int(fraction.ljust(9, "0")) if fraction else 0)


def _epoch_seconds(match: re.Match[str]) -> int:
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"invalid RFC 3339 time {match.group(0)!r}")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


class LogsPrefix:
    """`logs -t`'s prefix, `2006-01-02T15:04:05.000000000Z ` (always nine digits): the strftime costs only
    once per second of log."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def format(self, timestamp_ns: int) -> bytes:
        second, nanos = divmod(timestamp_ns, NS_PER_SECOND)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._text}.{nanos:09d}Z ".encode()
