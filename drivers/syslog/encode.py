"""Batches of lines → syslog messages, byte for byte as Docker's driver (srslog) writes them:

    ""            <PRI>Mmm dd hh:mm:ss TAG[PID]: LINE\\n                  (Go's log/syslog for a local daemon)
    rfc3164       <PRI>Mmm dd hh:mm:ss HOST TAG[PID]: LINE\\n
    rfc5424       <PRI>1 YYYY-MM-DDThh:mm:ssZ HOST TAG PID TAG - LINE\\n  (APP-NAME and MSGID are the tag)
    rfc5424micro  the same with six fraction digits

PRI is facility * 8 + 6 (info) for stdout, + 3 (err) for stderr; PID is the daemon's, as dockerd puts its
own; times are local, as Go's `time.Now()` prints them, but they are the line's own time (read by the
copier), not the time of sending. No structured data: labels and env are not sent. Empty lines are not
sent; a piece of a long line is a message of its own; bytes pass unchanged (invalid UTF-8, NUL, CR, tab).
Octet-counted framing prefixes each message, its newline included, with its length and a space.

A batch shares one stream and one time, so its header is made once, and a batch of whole lines without
empty ones becomes one `replace` on its text.
"""

from __future__ import annotations

import time
from functools import lru_cache

from logship.drivers.syslog.options import OCTET_COUNTED, Config
from logship.pipeline.message import STDERR, Batch

LOG_INFO = 6
LOG_ERR = 3
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=64)
def _local(seconds: int) -> tuple[time.struct_time, str]:
    """The local time of `seconds` and its zone as RFC 3339 writes it (Go's Z07:00)."""
    local = time.localtime(seconds)
    offset = local.tm_gmtoff or 0
    if offset == 0:
        return local, "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return local, f"{sign}{hours:02d}:{minutes:02d}"


def stamp(seconds: int) -> str:
    """Go's time.Stamp: `Jan _2 15:04:05` (day padded with a space)."""
    local, _ = _local(seconds)
    return f"{_MONTHS[local.tm_mon - 1]} {local.tm_mday:2d} {local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}"


def rfc3339(timestamp_ns: int, micro: bool) -> str:
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    local, zone = _local(seconds)
    whole = (
        f"{local.tm_year:04d}-{local.tm_mon:02d}-{local.tm_mday:02d}"
        f"T{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}"
    )
    return f"{whole}.{nanos // 1000:06d}{zone}" if micro else whole + zone


class SyslogEncoder:
    """Encodes one container's batches: `messages(batch)` gives what to send, one item per datagram, or
    (for a stream) one item holding them all."""

    def __init__(self, config: Config, tag: str, hostname: str, pid: int, datagrams: bool) -> None:
        self._format = config.format
        self._octet_counted = config.framing == OCTET_COUNTED
        self._datagrams = datagrams
        self._tag = tag
        self._hostname = hostname
        self._pid = pid
        self._priority = {
            stream: config.facility * 8 + (LOG_ERR if stream == STDERR else LOG_INFO) for stream in ("stdout", STDERR)
        }
        self._cache: tuple[str, int, bytes] = ("", -1, b"")

    def header(self, stream: str, timestamp_ns: int) -> bytes:
        """Everything of a message before its line."""
        key = timestamp_ns if self._format == "rfc5424micro" else timestamp_ns // 1_000_000_000
        cached_stream, cached_key, cached = self._cache
        if cached_stream == stream and cached_key == key:
            return cached
        priority = self._priority.get(stream, self._priority["stdout"])
        seconds = timestamp_ns // 1_000_000_000
        if self._format == "":
            text = f"<{priority}>{stamp(seconds)} {self._tag}[{self._pid}]: "
        elif self._format == "rfc3164":
            text = f"<{priority}>{stamp(seconds)} {self._hostname} {self._tag}[{self._pid}]: "
        else:
            when = rfc3339(timestamp_ns, self._format == "rfc5424micro")
            text = f"<{priority}>1 {when} {self._hostname} {self._tag} {self._pid} {self._tag} - "
        header = text.encode("utf-8", "surrogateescape")
        self._cache = (stream, key, header)
        return header

    def messages(self, batch: Batch) -> list[bytes]:
        header = self.header(batch.stream, batch.timestamp_ns)
        text = batch.text
        if (
            not self._datagrams
            and not self._octet_counted
            and text
            and text[:1] != b"\n"
            and text[-1:] != b"\n"
            and b"\n\n" not in text
        ):
            return [header + text.replace(b"\n", b"\n" + header) + b"\n"]
        messages = [header + line + b"\n" for line in batch.lines if line]
        if self._octet_counted:
            messages = [b"%d %s" % (len(message), message) for message in messages]
        if self._datagrams:
            return messages
        return [b"".join(messages)] if messages else []
