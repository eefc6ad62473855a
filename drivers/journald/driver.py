"""The journald driver: each line becomes one journal entry, sent with systemd-python off the event loop,
a batch per worker-thread step; `logs` reads the entries back (see `reader`).

The journal's native protocol takes one entry per datagram, so the cost per line is one `sendmsg`; what
logship controls is everything around it: fields encoded once per container and once per batch, and no
per-line work on the event loop.

When journald is unreachable (restarting, or not started yet) the batch is retried with backoff: the
container waits in blocking mode, the router's buffer fills and counts drops in non-blocking mode. At
close the retries stop, and what could not be sent is reported as failed by the router. Entries a dying
journald still had queued on its socket are found in the journal after its restart and sent again
(see `resend`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from logship.drivers.base import DeliveryCounters
from logship.drivers.journald import fields
from logship.drivers.journald.resend import SentWindow, lost_entries, socket_identity, window_size
from logship.drivers.util.timestamps import format_rfc3339nano
from logship.errors import LogshipError
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch, Message
from logship.pipeline.readconfig import ReadConfig

log = logging.getLogger("logship.drivers.journald")

# Sends block while journald's socket queue is full: they get threads of their own, so a busy journald never
# takes the threads json-file writes use.
EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="journald")
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0


class JournalClosed(Exception):
    """Sending stopped because the driver was closed while journald was unreachable."""


@dataclass
class Progress:
    """What a follower needs to know when it has read everything this driver sent."""

    epoch: str
    sent: int = 0  # CONTAINER_LOG_ORDINAL of the last entry handed to journald
    closed: bool = False


class JournaldDriver:
    name = "journald"

    def __init__(self, info: ContainerInfo, tag: str, socket_path: str) -> None:
        from systemd import journal  # imported here: only containers using this driver need it

        self._sendv = journal.sendv
        self.info = info
        self.socket_path = socket_path
        self.progress = Progress(epoch=secrets.token_hex(32))
        self._static = fields.container_fields(info, tag, self.progress.epoch)
        own = [field.partition(b"=")[0].decode() for field in self._static]
        self._parsed = fields.ParsedFields(own, info.config.get("parse-key", ""))
        self._closing = threading.Event()
        self._unreachable_logged = False
        self.counters = DeliveryCounters()
        # Only the worker thread touches these (the router sends one batch at a time).
        self._window = SentWindow(window_size())
        self._socket_id = socket_identity(socket_path)
        self._journald_replaced = False  # set when journald went away or its socket changed
        self._sending = threading.Lock()  # held while a batch is sent, so close never races it

    def delivery_counters(self) -> DeliveryCounters:
        return self.counters

    async def log(self, batch: Batch) -> None:
        await asyncio.get_running_loop().run_in_executor(EXECUTOR, self._send_batch, batch)

    def _send_batch(self, batch: Batch) -> None:
        with self._sending:
            self._send_entries(batch)

    def _send_entries(self, batch: Batch) -> None:
        if socket_identity(self.socket_path) != self._socket_id:
            self._journald_replaced = True  # restarted between two batches: what it had queued may be gone
        static = self._static
        timestamp = b"SYSLOG_TIMESTAMP=" + format_rfc3339nano(batch.timestamp_ns).encode()
        common = (fields.priority_field(batch.stream), timestamp)
        partials = batch.partials
        parsed = batch.fields
        ordinal = self.progress.sent
        for index, line in enumerate(batch.lines):
            ordinal += 1
            entry = [b"MESSAGE=" + line, *common, b"CONTAINER_LOG_ORDINAL=%d" % ordinal, *static]
            meta = partials.get(index) if partials else None
            if meta is not None:
                entry.extend(fields.partial_fields(meta))
            line_fields = parsed[index] if parsed is not None else None
            if line_fields is not None:
                entry.extend(self._parsed.encode(line_fields))
            self._send(ordinal, entry)
            self.progress.sent = ordinal

    def _send(self, ordinal: int, entry: list[bytes]) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                if self._journald_replaced:
                    self._resend_lost()
                self._sendv(*entry)
            except OSError as err:
                self._journald_replaced = True
                self.counters.lines_retried += 1
                self.counters.error(f"journald unreachable at {self.socket_path}: {err.strerror or err}")
                if self._closing.is_set():
                    raise JournalClosed(f"journald unreachable at {self.socket_path} while closing: {err}") from err
                if not self._unreachable_logged:
                    log.warning(
                        "journald unreachable at %s (%s); retrying, container %s waits for it",
                        self.socket_path,
                        err.strerror or err,
                        self.info.id(),
                    )
                    self._unreachable_logged = True
                self._closing.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._window.add(ordinal, entry)
            if self._unreachable_logged:
                log.info(
                    "journald is reachable again at %s; container %s resumes logging",
                    self.socket_path,
                    self.info.id(),
                )
                self._unreachable_logged = False
            return

    def _resend_lost(self) -> None:
        """After journald went away: send again the recent entries the journal does not hold. Raises
        OSError when journald is still unreachable (the caller retries)."""
        identity = socket_identity(self.socket_path)
        try:
            lost = lost_entries(self._window, self.progress.epoch)
        except Exception as err:  # an unreadable journal must not stop logging: resend nothing
            log.warning(
                "journald was restarted but its journal could not be read back (%s); entries of container %s "
                "it had queued may be lost",
                err,
                self.info.id(),
            )
            lost = []
        for sent in lost:
            self._sendv(*sent.fields)
        if lost:
            self.counters.lines_retried += len(lost)
            log.warning(
                "journald was restarted and had not stored %d entries of container %s (ordinals %d-%d); "
                "they were sent again",
                len(lost),
                self.info.id(),
                lost[0].ordinal,
                lost[-1].ordinal,
            )
        self._journald_replaced = False
        self._socket_id = identity

    def _check_at_close(self) -> None:
        """journald restarted after the last batch: its queue may have held that batch's tail."""
        if not self._sending.acquire(blocking=False):
            return  # a batch is still being retried (the router gave up on it): it reports itself
        try:
            if socket_identity(self.socket_path) != self._socket_id or self._journald_replaced:
                self._resend_lost()
        except OSError as err:
            log.warning("journald unreachable at close; container %s: %s", self.info.id(), err)
        finally:
            self._sending.release()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(EXECUTOR, self._check_at_close)
        self._closing.set()
        self.progress.closed = True

    def read_logs(self, config: ReadConfig) -> AsyncIterator[list[Message]]:
        from logship.drivers.journald.reader import read_journal, unreadable_journal

        problem = unreadable_journal()
        if problem:  # systemd's reader would skip every file it may not open and find nothing
            raise LogshipError(problem)
        return read_journal(self.info.full_id(), config, self.progress)
