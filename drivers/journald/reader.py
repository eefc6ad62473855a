"""Reading a container's entries back from the journal for `logs`, with systemd's reader.

Entries are matched on CONTAINER_ID_FULL. As Docker's reader: the stream comes from PRIORITY (3 stderr,
6 stdout, others skipped), the time is the journal's receive time (`__REALTIME_TIMESTAMP`), and
`--details` shows every field that does not start with `_` and is not one of the well-known ones.
Unlike Docker, the pieces of a line longer than 16 KiB are joined back into one message, so `-t` prints
one timestamp per line and `--tail` counts whole lines.

The reader is blocking C code, so it runs in a thread that hands lists of messages to the event loop.
Following ends once the driver is closed and every entry it sent (CONTAINER_LOG_ORDINAL up to the last
one of its CONTAINER_LOG_EPOCH) has been read, or after a drain deadline, because journald may have
rate-limited some entries away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.drivers.journald.driver import Progress
from logship.drivers.journald.fields import STREAM_OF_PRIORITY, WELL_KNOWN
from logship.pipeline.message import Message, PartialMeta
from logship.pipeline.readconfig import ReadConfig

BATCH = 1024  # messages handed over at once
WAIT_S = 0.25  # journal wait slice while following
DRAIN_DEADLINE_S = 5.0  # after close, how long to wait for entries journald may have dropped


def _raw(value: bytes) -> bytes:
    return value


_CONVERTERS: dict[str, Callable[[bytes], Any]] = {"MESSAGE": _raw, "__REALTIME_TIMESTAMP": int}


@dataclass
class _Pending:
    """Pieces of one long line read so far."""

    id: str
    stream: str
    timestamp_ns: int
    attrs: dict[str, str] | None
    pieces: list[bytes] = field(default_factory=list)

    def message(self, last: bool) -> Message:
        partial = None if last else PartialMeta(self.id, len(self.pieces), False)
        return Message(b"".join(self.pieces), self.stream, self.timestamp_ns, partial, self.attrs)


class _Joiner:
    """Joins consecutive pieces of a line (per stream) back into one message."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}

    def add(self, entry: dict[str, Any], out: list[Message]) -> None:
        stream = STREAM_OF_PRIORITY.get(str(entry.get("PRIORITY")))
        if stream is None:
            return
        line = entry.get("MESSAGE", b"")
        if isinstance(line, str):
            line = line.encode()
        timestamp_ns = int(entry["__REALTIME_TIMESTAMP"]) * 1000
        attrs = {k: str(v) for k, v in entry.items() if not k.startswith("_") and k not in WELL_KNOWN} or None
        partial_id = entry.get("CONTAINER_PARTIAL_ID")
        pending = self._pending.get(stream)
        if pending is not None and pending.id != partial_id:
            out.append(pending.message(last=False))  # a line cut short (EOF) before this entry
            del self._pending[stream]
            pending = None
        if not partial_id:
            out.append(Message(line, stream, timestamp_ns, None, attrs))
            return
        if pending is None:
            pending = self._pending[stream] = _Pending(partial_id, stream, timestamp_ns, attrs)
        pending.pieces.append(line)
        if entry.get("CONTAINER_PARTIAL_LAST") == "true":
            out.append(pending.message(last=True))
            del self._pending[stream]

    def flush(self, out: list[Message]) -> None:
        for pending in self._pending.values():
            out.append(pending.message(last=False))
        self._pending.clear()


def _starts_line(entry: dict[str, Any]) -> bool:
    return not entry.get("CONTAINER_PARTIAL_ID") or str(entry.get("CONTAINER_PARTIAL_ORDINAL")) == "1"


def _position(reader: Any, config: ReadConfig) -> None:
    """Put the reader just before the first entry to return (Docker's tail/since/until positioning)."""
    if config.tail < 0:
        if config.since_ns:
            reader.seek_realtime(config.since_ns // 1000)
        else:
            reader.seek_head()
        return
    if config.until_ns:
        reader.seek_realtime(config.until_ns // 1000 + 1)
    else:
        reader.seek_tail()
    starts = 0
    first: dict[str, Any] | None = None
    while starts < config.tail:
        entry = reader.get_previous()
        if not entry:
            reader.seek_head()
            return
        if config.since_ns and entry["__REALTIME_TIMESTAMP"] * 1000 < config.since_ns:
            reader.seek_realtime(config.since_ns // 1000)
            return
        if config.until_ns and entry["__REALTIME_TIMESTAMP"] * 1000 > config.until_ns:
            continue
        first = entry
        if _starts_line(entry):
            starts += 1
    if first is None:  # tail 0: nothing from the history
        reader.seek_tail()
        reader.get_previous()  # now at the last entry: get_next() returns only what comes after it
        return
    reader.seek_cursor(first["__CURSOR"])


def _read(
    container_id: str,
    config: ReadConfig,
    progress: Progress,
    deliver: Callable[[list[Message] | BaseException | None], None],
    stop: threading.Event,
) -> None:
    from systemd import journal

    try:
        with journal.Reader(converters=_CONVERTERS) as reader:
            reader.add_match(CONTAINER_ID_FULL=container_id)
            _position(reader, config)
            joiner = _Joiner()
            out: list[Message] = []
            seen = 0  # highest CONTAINER_LOG_ORDINAL of the live epoch read
            drain_deadline = 0.0
            while not stop.is_set():
                entry = reader.get_next()
                if entry:
                    if config.since_ns and entry["__REALTIME_TIMESTAMP"] * 1000 < config.since_ns:
                        continue
                    if config.until_ns and entry["__REALTIME_TIMESTAMP"] * 1000 > config.until_ns:
                        break
                    if entry.get("CONTAINER_LOG_EPOCH") == progress.epoch:
                        with contextlib.suppress(ValueError):
                            seen = max(seen, int(entry.get("CONTAINER_LOG_ORDINAL", 0)))
                    joiner.add(entry, out)
                    if len(out) >= BATCH:
                        deliver(out)
                        out = []
                    continue
                if out:
                    deliver(out)
                    out = []
                if not config.follow:
                    break
                if progress.closed:
                    if seen >= progress.sent:
                        break
                    drain_deadline = drain_deadline or time.monotonic() + DRAIN_DEADLINE_S
                    if time.monotonic() > drain_deadline:
                        break
                reader.wait(WAIT_S)
            joiner.flush(out)
            if out:
                deliver(out)
    except BaseException as err:  # reported on the event loop, never lost in the thread
        deliver(err)
        return
    deliver(None)


JOURNAL_DIRS = (Path("/run/log/journal"), Path("/var/log/journal"))


def unreadable_journal(dirs: tuple[Path, ...] = JOURNAL_DIRS) -> str:
    """Why this process can read none of the journal's files though there are some (a rootless daemon's
    user, on a journald without per-user journals), or "" when it can read one, or there is none."""
    locked = []
    for base in dirs:
        for machine in sorted(base.glob("*")) if base.is_dir() else []:
            if not os.access(machine, os.R_OK | os.X_OK):
                locked.append(str(machine))
                continue
            for path in machine.glob("*.journal"):
                if os.access(path, os.R_OK):
                    return ""
                locked.append(str(path))
    if not locked:
        return ""
    return (
        f"cannot read the container's entries back: this daemon's user may read none of the journal's files "
        f"({', '.join(locked[:3])}); journald gives each user a journal of its own (which `logs` reads) only "
        "with persistent storage (/var/log/journal, Storage=persistent or auto), else add the user to the "
        "systemd-journal group; the entries themselves are in the journal"
    )


async def read_journal(container_id: str, config: ReadConfig, progress: Progress) -> AsyncIterator[list[Message]]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[Message] | BaseException | None] = asyncio.Queue(maxsize=8)
    stop = threading.Event()

    def deliver(item: list[Message] | BaseException | None) -> None:
        if stop.is_set():
            return
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        with contextlib.suppress(Exception):
            future.result()

    thread = threading.Thread(
        target=_read,
        args=(container_id, config, progress, deliver, stop),
        daemon=True,
        name=f"journal-read-{container_id[:12]}",
    )
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a thread waiting to hand over its last batch
            queue.get_nowait()
        await asyncio.to_thread(thread.join)
