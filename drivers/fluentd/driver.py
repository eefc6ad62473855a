"""The fluentd driver's loop: a byte-bounded buffer filled by `log`, drained by one sender task that
keeps a connection, sends PackedForward messages, waits for acks when asked to, and reconnects with
backoff whenever fluentd goes away (a restarted fluentd is picked up without a daemon restart).

Delivery: with `fluentd-request-ack=true` a message stays buffered until fluentd acks its chunk id and
is resent on a new connection otherwise (at-least-once). Without acks a message counts as delivered once
the kernel took it: what sits in socket buffers when fluentd dies is lost (at-most-once; the loss
window is one connection's unsent and unread bytes).

Buffering is bounded in bytes (`fluentd-buffer-limit`): a full buffer makes `log` wait, which is the
container's backpressure in blocking mode and the router's counted drops in non-blocking mode.
Closing flushes with a bound (10 s), retrying a dead fluentd quickly meanwhile, then gives up loudly
(`Undelivered`, which the router counts and the daemon log reports). It never hangs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from logship.drivers.base import DeliveryCounters, Undelivered
from logship.drivers.fluentd.encode import RecordEncoder, encode_tag, forward_message
from logship.drivers.fluentd.options import Config
from logship.drivers.fluentd.retry import backoff_s
from logship.drivers.fluentd.transport import Connection, TransportError, connect
from logship.drivers.util.tasks import finish_within
from logship.pipeline.message import Batch

log = logging.getLogger("logship.drivers.fluentd")

MAX_MESSAGE_BYTES = 4 << 20  # entries per forward message, merged from queued batches
DEFAULT_ACK_TIMEOUT_S = 30.0  # fluentd-read-timeout unset: still never wait forever for an ack
FLUSH_TIMEOUT_S = 10.0
CLOSING_RETRY_S = 0.25  # while flushing at close, retry a dead fluentd this often


@dataclass
class _Pending:
    entries: bytes
    records: int


class FluentdDriver:
    name = "fluentd"

    def __init__(
        self, container_id: str, config: Config, tag: str, encoder: RecordEncoder, connection: Connection | None = None
    ) -> None:
        self.container = container_id[:12]
        self.config = config
        self._tag = encode_tag(tag)
        self._encoder = encoder
        self._connection = connection
        self._connected_at = time.monotonic() if connection else 0.0
        self._queue: deque[_Pending] = deque()
        self._buffered = 0
        self._space = asyncio.Event()
        self._space.set()
        self._work = asyncio.Event()
        self._closing = False
        self._close_requested = asyncio.Event()  # wakes a backoff pause at close
        self.counters = DeliveryCounters()  # given-up records (fluentd-max-retries) are counters.lines_failed
        self._failing = False
        self._resending = False
        self._listener: Callable[[int], None] | None = None
        self._sender = asyncio.get_running_loop().create_task(self._run(), name=f"fluentd-{self.container}")

    def set_delivery_listener(self, listener: Callable[[int], None]) -> None:
        """A ConfirmsDelivery: records count as delivered once acked (fluentd-request-ack) or taken by the
        kernel, or once given up on (fluentd-max-retries)."""
        self._listener = listener

    def delivery_counters(self) -> DeliveryCounters:
        self.counters.buffered_bytes = self._buffered
        return self.counters

    async def log(self, batch: Batch) -> None:
        # A batch whose records would not fit the buffer is taken in parts that do: fluentd-buffer-limit
        # bounds what is unacknowledged at any time, and so what a crash makes the disk buffer send again.
        estimate = batch.nbytes + len(batch) * self._encoder.record_overhead
        if estimate > self.config.buffer_limit and len(batch) > 1:
            per_part = max(1, len(batch) * self.config.buffer_limit // estimate)
            while len(batch) > per_part:
                head, batch = batch.take(per_part)
                await self._log(head)
        await self._log(batch)

    async def _log(self, batch: Batch) -> None:
        entries = self._encoder.entries(batch)
        while self._queue and self._buffered + len(entries) > self.config.buffer_limit:
            self._space.clear()
            await self._space.wait()
        self._queue.append(_Pending(entries, len(batch)))
        self._buffered += len(entries)
        self._work.set()

    # ---- the sender -----------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._work.clear()
                await self._work.wait()
                continue
            try:
                connection = await self._ensure_connection()
                taken, records, entries = self._next_message()
                if self._resending:  # what this message holds failed before: it goes out again
                    self.counters.lines_retried += records
                    self._resending = False
                chunk = base64.b64encode(os.urandom(16)).decode() if self.config.request_ack else None
                await connection.send(forward_message(self._tag, entries, records, chunk), self.config.write_timeout_s)
                if chunk is not None:
                    await self._await_ack(connection, chunk)
            except TransportError as err:
                attempt += 1
                await self._drop_connection()
                self.counters.error(str(err))
                self._resending = True
                self._report_failure(err, attempt)
                if attempt > self.config.max_retries:
                    self._give_up(str(err), attempt)
                    attempt = 0
                    continue
                await self._pause(backoff_s(self.config.retry_wait_s, attempt))
                continue
            if self._failing:
                log.info(
                    "fluentd at %s reachable again; container %s ships its buffer", self.config.address, self.container
                )
                self._failing = False
            attempt = 0
            self._release(taken)

    async def _ensure_connection(self) -> Connection:
        interval = self.config.reconnect_interval_s
        if self._connection is not None and interval and time.monotonic() - self._connected_at > interval:
            await self._drop_connection()  # fluentd-async-reconnect-interval: re-dial (DNS may point elsewhere)
        if self._connection is None or self._connection.broken:
            await self._drop_connection()
            self._connection = await connect(self.config.address)
            self._connected_at = time.monotonic()
        return self._connection

    def _next_message(self) -> tuple[int, int, list[bytes]]:
        """Queued batches for one message (at least one, up to MAX_MESSAGE_BYTES)."""
        taken, records, size = 0, 0, 0
        for pending in self._queue:
            if taken and size + len(pending.entries) > MAX_MESSAGE_BYTES:
                break
            taken += 1
            records += pending.records
            size += len(pending.entries)
        return taken, records, [self._queue[i].entries for i in range(taken)]

    async def _await_ack(self, connection: Connection, chunk: str) -> None:
        reply = await connection.read_ack(self.config.read_timeout_s or DEFAULT_ACK_TIMEOUT_S)
        if not isinstance(reply, dict) or reply.get("ack") != chunk:
            raise TransportError(f"fluentd at {self.config.address} answered {reply!r} instead of ack {chunk!r}")

    def _release(self, taken: int) -> None:
        records = 0
        for _ in range(taken):
            pending = self._queue.popleft()
            self._buffered -= len(pending.entries)
            records += pending.records
        self._space.set()
        if self._listener is not None:
            self._listener(records)

    def _give_up(self, reason: str, attempts: int) -> None:
        pending = self._queue.popleft()
        self._buffered -= len(pending.entries)
        self.counters.lines_failed += pending.records
        self._resending = False
        self._space.set()
        if self._listener is not None:
            self._listener(pending.records)
        log.error(
            "fluentd: gave up on %d records of container %s after %d attempts (fluentd-max-retries=%d): %s",
            pending.records,
            self.container,
            attempts,
            self.config.max_retries,
            reason,
        )

    def _report_failure(self, err: TransportError, attempt: int) -> None:
        if not self._failing:
            log.warning(
                "%s; container %s keeps its records buffered and retries (attempt %d)", err, self.container, attempt
            )
            self._failing = True

    async def _pause(self, seconds: float) -> None:
        """Back off; a close cuts a long pause short and retries every CLOSING_RETRY_S meanwhile."""
        if self._closing:
            await asyncio.sleep(min(seconds, CLOSING_RETRY_S))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._close_requested.wait(), seconds)

    async def _drop_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    # ---- close ----------------------------------------------------------------------------------

    async def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        self._closing = True
        self._work.set()
        self._close_requested.set()
        await finish_within(self._sender, timeout_s)
        await self._drop_connection()
        unsent = sum(p.records for p in self._queue)
        if unsent:
            reason = f"fluentd at {self.config.address} did not take them within {timeout_s:g}s of the container's end"
            log.error("fluentd: %d records of container %s were not delivered: %s", unsent, self.container, reason)
            self._queue.clear()
            self._buffered = 0
            raise Undelivered(unsent, reason)
