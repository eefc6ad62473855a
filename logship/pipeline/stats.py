"""Live counters for one container's logging, shown in `inspect` under `LogStats`.

Docker counts nothing users can see (non-blocking drops are silent, moby#44431). Here every line read is
accounted for: written, still buffered, dropped by an explicit non-blocking choice, or failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logship.drivers.base import DeliveryCounters


@dataclass
class DiskStats:
    """A disk-buffered driver's buffer (see `logship.pipeline.diskbuffer`)."""

    limit: int = 0  # buffer-max-size
    bytes: int = 0  # spooled, not yet taken by the driver
    lines: int = 0  # spooled, not yet confirmed delivered
    oldest_ns: int = 0  # read time of the oldest line not confirmed delivered (0: none)
    catchup_lps: float = 0.0  # lines confirmed delivered per second, lately
    pending: bool = False  # delivery goes on after the container's end

    def to_api(self) -> dict[str, Any]:
        age = max(0.0, (time.time_ns() - self.oldest_ns) / 1e9) if self.oldest_ns else 0.0
        return {
            "Limit": self.limit,
            "Bytes": self.bytes,
            "Lines": self.lines,
            "OldestUndelivered": _iso(self.oldest_ns),
            "OldestAgeSeconds": round(age, 3),
            "CatchUpLinesPerSecond": round(self.catchup_lps, 1),
            "Pending": self.pending,
        }


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
    disk: DiskStats | None = None  # a disk-buffered driver's buffer

    def record_written(self, lines: int, nbytes: int) -> None:
        self.lines_written += lines
        self.bytes_written += nbytes
        self.last_write_ns = time.time_ns()

    def take_counters(self, counters: DeliveryCounters) -> None:
        """What a driver with its own buffer and retries reports (`ReportsDelivery`)."""
        self.driver_buffered_bytes = counters.buffered_bytes
        self.lines_retried = counters.lines_retried
        self.driver_failed = counters.lines_failed
        if counters.last_error_ns > self.last_error_ns:
            self.last_error, self.last_error_ns = counters.last_error, counters.last_error_ns

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
            "DiskBuffer": self.disk.to_api() if self.disk is not None else None,
        }


@dataclass
class ProcessingStats:
    """What the container's processing did (`logship.pipeline.processing`), as its own driver's reader saw
    it (the other readers process the same lines alike and do not count again)."""

    events_joined: int = 0  # multiline events of more than one line
    lines_joined: int = 0  # the lines in them
    events_capped: int = 0  # events ended by multiline-max-bytes
    lines_parsed: int = 0  # parse=json: records that were a JSON object
    lines_not_parsed: int = 0  # ... that were not (passed unchanged)
    matches_redacted: int = 0
    lines_filtered: int = 0  # dropped by drop/keep

    def to_api(self) -> dict[str, int]:
        return {key: getattr(self, attribute) for attribute, key in _PROCESSING_API.items()}

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ProcessingStats:
        return cls(**{attribute: data.get(key, 0) for attribute, key in _PROCESSING_API.items()})


# ProcessingStats' counters and their names in the API (inspect's LogStats.Processing, /metrics).
_PROCESSING_API = {
    "events_joined": "EventsJoined",
    "lines_joined": "LinesJoined",
    "events_capped": "EventsCapped",
    "lines_parsed": "LinesParsed",
    "lines_not_parsed": "LinesNotParsed",
    "matches_redacted": "MatchesRedacted",
    "lines_filtered": "LinesFiltered",
}


@dataclass
class LogStats:
    lines_read: int = 0
    bytes_read: int = 0
    partial_messages: int = 0
    drivers: list[DriverStats] = field(default_factory=list)
    processing: ProcessingStats | None = None  # set when the container has processing options

    @property
    def lines_dropped(self) -> int:
        return sum(d.lines_dropped for d in self.drivers)

    def for_driver(self, name: str, mode: str, limit: int) -> DriverStats:
        """The counters of one driver (kept across the container's runs and daemon restarts)."""
        stats = next((s for s in self.drivers if s.driver == name), None)
        if stats is None:
            stats = DriverStats(name, mode)
            self.drivers.append(stats)
        stats.mode, stats.buffer_limit = mode, limit
        return stats

    def to_api(self) -> dict[str, Any]:
        return {
            "LinesRead": self.lines_read,
            "BytesRead": self.bytes_read,
            "PartialMessages": self.partial_messages,
            "LinesDropped": self.lines_dropped,
            "Drivers": [d.to_api() for d in self.drivers],
            "Processing": self.processing.to_api() if self.processing is not None else None,
        }

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> LogStats:
        """Counters survive daemon restarts through the container's state file."""
        stats = cls(data.get("LinesRead", 0), data.get("BytesRead", 0), data.get("PartialMessages", 0))
        if data.get("Processing"):
            stats.processing = ProcessingStats.from_api(data["Processing"])
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
