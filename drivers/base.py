"""The log driver contract.

A driver is registered under its Docker name (see `registry`). Its module (or factory object) offers:

- `name`: the Docker name, e.g. "json-file";
- `validate_options(opts)`: create-time check of the driver's own log-opts (the common ones, `mode` and
  `max-buffer-size`, are checked before by `drivers.options`); raises `InvalidParameter`;
- `async new(info)`: build the driver for a container at start time, parsing option values
  (Docker's `New`); raises `InvalidParameter` for a bad value.

The driver itself is a `LogDriver`. Optional abilities are separate small protocols, as in Docker:
a `LogReader` can serve `logs`, a `SizedLogger` asks the copier for a larger line limit, a
`ConfirmsDelivery` driver says when lines have really left.

A driver that ships off the host declares `disk_buffer = True` on its factory (fluentd, awslogs, syslog,
gelf; third-party drivers choose): it then reads the container's spool with a cursor of its own (see
`logship.pipeline.diskbuffer`), so a slow or dead backend holds neither the container nor its other
drivers until that driver's disk budget (`buffer-max-size`) is used up.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from logship.drivers.util.timestamps import LogsPrefix
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import MAX_LINE_SIZE, Batch, Message
from logship.pipeline.readconfig import ReadConfig


class LogDriver(Protocol):
    """Receives batches of one container's output; never blocks the event loop."""

    name: str

    async def log(self, batch: Batch) -> None:
        """Deliver or durably buffer the whole batch; raise to report it failed."""

    async def close(self) -> None:
        """Flush and release everything; called once when the container's output has ended."""


@runtime_checkable
class LogReader(Protocol):
    """A driver that can read back what it wrote, for `logs`."""

    def read_logs(self, config: ReadConfig) -> AsyncIterator[list[Message]]:
        """Yield messages in order, in lists; with follow, keep going until the driver is closed."""
        ...


# The stream of a reader's notice among the messages it yields, not a line of the container's: a follower
# lost lines at this point (max-file deleted files it had not read, past its `follow-backlog`; see
# `drivers.util.followers`). Its line is the loss, encoded (`FollowLoss.encode`); the API tells it to the
# person following in words, never as a line of output (`logship.api.framing`).
LOST = "lost"

# A stream and what `logs` prints for consecutive messages of it, newlines included: the unit of the
# fast `logs` path (no --timestamps/--details), where a Message per line would cost more than the rest.
# A piece of a long line (no newline) ends its run, so the API can cut a run into dockerd's frame per
# message at its newlines.
Run = tuple[str, bytes]


@runtime_checkable
class TextLogReader(Protocol):
    """A reader that hands `logs` its output as runs of bytes directly (same bytes, same order, same
    since/until/tail/follow semantics as `read_logs`)."""

    def read_text(self, config: ReadConfig) -> AsyncIterator[list[Run]]: ...


def joined_runs(pieces: Iterable[Run]) -> list[Run]:
    """Neighbouring pieces of one stream joined into runs, empty pieces skipped; a piece without a final
    newline (of a long line) ends its run (see Run). The one place that rule lives in Python."""
    runs: list[Run] = []
    stream = ""
    parts: list[bytes] = []  # joined once a run ends: pieces can be many and small
    for piece_stream, text in pieces:
        if not text:
            continue
        if piece_stream != stream or (parts and not parts[-1].endswith(b"\n")):
            if parts:
                runs.append((stream, b"".join(parts)))
                parts = []
            stream = piece_stream
        parts.append(text)
    if parts:
        runs.append((stream, b"".join(parts)))
    return runs


def runs_of(messages: list[Message], timestamps: bool = False) -> list[Run]:
    """Messages as runs (`joined_runs`): each line with its newline unless it is a non-last piece of a
    long line. With `timestamps`, each message after its `logs -t` prefix, an empty piece too (without
    them an empty piece prints nothing); a LOST notice never gets one."""
    prefix = LogsPrefix() if timestamps else None
    pieces: list[Run] = []
    for message in messages:
        text = message.line + b"\n" if message.ends_line else message.line
        if prefix is not None and message.stream != LOST:
            text = prefix.format(message.timestamp_ns) + text
        pieces.append((message.stream, text))
    return joined_runs(pieces)


async def as_runs(messages: AsyncIterator[list[Message]], timestamps: bool = False) -> AsyncIterator[list[Run]]:
    """A reader's message lists as runs (`runs_of` each), for a `logs` served from messages."""
    async for batch in messages:
        yield runs_of(batch, timestamps)


@runtime_checkable
class SizedLogger(Protocol):
    """A driver whose backend takes lines longer than Docker's 16 KiB default before splitting."""

    def buffer_size(self) -> int: ...


def line_limit(drivers: Iterable[LogDriver]) -> int:
    """The line limit of a copier feeding `drivers`: Docker's 16 KiB, or more when one takes longer lines."""
    limit = MAX_LINE_SIZE
    for driver in drivers:
        if isinstance(driver, SizedLogger) and driver.buffer_size() > limit:
            limit = driver.buffer_size()
    return limit


@dataclass
class DeliveryCounters:
    """What a driver that buffers and retries on its own knows about delivery, for `LogStats`."""

    buffered_bytes: int = 0  # held by the driver, not yet delivered
    lines_retried: int = 0  # lines sent again after a failure
    lines_failed: int = 0  # lines given up on before close (permanent errors, rejected by the backend)
    last_error: str = ""
    last_error_ns: int = 0

    def error(self, message: str) -> None:
        self.last_error = message
        self.last_error_ns = time.time_ns()


@runtime_checkable
class ReportsDelivery(Protocol):
    """A driver with its own buffer and retries reports them; the router adds them to the stats."""

    def delivery_counters(self) -> DeliveryCounters: ...


@runtime_checkable
class ConfirmsDelivery(Protocol):
    """A driver that knows when lines have really left (fluentd's ack, CloudWatch's answer, the socket's
    send) calls the listener with how many lines, counted in the order `log()` received them, were newly
    delivered or given up on. A disk-buffered driver's progress is saved only then, so a daemon killed at
    any moment sends again at most what was not confirmed. Drivers without this count a batch as delivered
    once `log()` returns."""

    def set_delivery_listener(self, listener: Callable[[int], None]) -> None: ...


@runtime_checkable
class Flushes(Protocol):
    """A driver that holds lines back to fill a batch (awslogs waits up to its flush interval) sends what it
    holds without waiting when asked: the container's output has ended and everything was handed to it."""

    def flush_soon(self) -> None: ...


# The optional abilities of a driver (LogReader, TextLogReader, SizedLogger, ReportsDelivery) and its log path.
_ABILITIES = ("read_logs", "read_text", "buffer_size", "delivery_counters", "path")


def copy_abilities(wrapper: object, driver: LogDriver) -> None:
    """A wrapper (acknowledging, processing) gets exactly the optional abilities of the driver it wraps,
    copied onto the instance rather than looked up dynamically, so `isinstance(wrapper, LogReader)` and the
    like answer as they would for the driver itself."""
    for ability in _ABILITIES:
        if hasattr(driver, ability):
            setattr(wrapper, ability, getattr(driver, ability))


class Undelivered(Exception):
    """Raised by `close()` of a driver that buffers: lines still buffered that it could not deliver in
    time (not those already counted in its DeliveryCounters). The router counts them as failed."""

    def __init__(self, lines: int, reason: str) -> None:
        super().__init__(f"{lines} lines not delivered: {reason}")
        self.lines = lines
        self.reason = reason


class DriverFactory(Protocol):
    """What the registry needs from a driver: a module with these names satisfies it.

    A factory whose drivers can read back may also say `can_read = True`: `logs` of a stopped container
    then opens the driver again to read (json-file, journald, local); otherwise it reads the container's
    dual-logging cache. One that ships off the host says `disk_buffer = True` (see the module docstring).
    Processing (`logship.pipeline.processing`) asks two more: `line_records = True` for a format of a
    record per line (json-file, local: multiline events only with multiline-files=events), and
    `has_fields = True` for a driver that puts parse=json's keys (a batch's `fields`) in fields of its own
    (fluentd, gelf, journald; awslogs sends the JSON message as it is): parse=json is refused for the others,
    which would drop the keys without a word.
    """

    name: str

    def validate_options(self, opts: Mapping[str, str]) -> None: ...

    async def new(self, info: ContainerInfo) -> LogDriver: ...
