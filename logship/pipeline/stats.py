"""Live counters for one container's logging, shown in `inspect` under `LogStats`.

Docker counts nothing users can see (non-blocking drops are silent, moby#44431). Here every line read is
accounted for: written, still buffered, dropped by an explicit non-blocking choice, or failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DriverStats:
    driver: str
    mode: str
    lines_written: int = 0
    bytes_written: int = 0
    lines_dropped: int = 0
    lines_failed: int = 0
    buffered_bytes: int = 0  # in the router's queue for this driver
    buffer_limit: int = 0
    lines_retried: int = 0  # reported by the driver (DeliveryCounters)
    driver_buffered_bytes: int = 0  # held inside the driver itself
    driver_failed: int = 0  # given up on by the driver before close
    last_write_ns: int = 0
    last_error: str = ""
    last_error_ns: int = 0

    def record_written(self, lines: int, nbytes: int) -> None:
        self.lines_written += lines
        self.bytes_written += nbytes
        self.last_write_ns = time.time_ns()

    def record_failed(self, lines: int, error: str) -> None:
        self.lines_failed += lines
        self.last_error = error
        self.last_error_ns = time.time_ns()

    def to_api(self) -> dict[str, Any]:
        return {
            "Driver": self.driver,
            "Mode": self.mode,
            "LinesWritten": self.lines_written,
            "BytesWritten": self.bytes_written,
            "LinesDropped": self.lines_dropped,
            "LinesRetried": self.lines_retried,
            "LinesFailed": self.lines_failed + self.driver_failed,
            "BufferedBytes": self.buffered_bytes + self.driver_buffered_bytes,
            "BufferLimit": self.buffer_limit,
            "LastWrite": _iso(self.last_write_ns),
            "LastError": self.last_error,
            "LastErrorTime": _iso(self.last_error_ns),
        }


@dataclass
class LogStats:
    lines_read: int = 0
    bytes_read: int = 0
    partial_messages: int = 0
    drivers: list[DriverStats] = field(default_factory=list)

    @property
    def lines_dropped(self) -> int:
        return sum(d.lines_dropped for d in self.drivers)

    def to_api(self) -> dict[str, Any]:
        return {
            "LinesRead": self.lines_read,
            "BytesRead": self.bytes_read,
            "PartialMessages": self.partial_messages,
            "LinesDropped": self.lines_dropped,
            "Drivers": [d.to_api() for d in self.drivers],
        }

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> LogStats:
        """Counters survive daemon restarts through the container's state file."""
        stats = cls(data.get("LinesRead", 0), data.get("BytesRead", 0), data.get("PartialMessages", 0))
        for d in data.get("Drivers") or []:
            stats.drivers.append(
                DriverStats(
                    driver=d.get("Driver", ""),
                    mode=d.get("Mode", ""),
                    lines_written=d.get("LinesWritten", 0),
                    bytes_written=d.get("BytesWritten", 0),
                    lines_dropped=d.get("LinesDropped", 0),
                    lines_failed=d.get("LinesFailed", 0),
                    lines_retried=d.get("LinesRetried", 0),
                    buffer_limit=d.get("BufferLimit", 0),
                    last_error=d.get("LastError", ""),
                )
            )
        return stats


def _iso(ns: int) -> str:
    if not ns:
        return ""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
