"""The awslogs driver's loop: lines become events at once, a publisher task sends them in PutLogEvents
batches when a batch is full or the flush interval has passed, after the group and stream exist.

Start never waits on AWS: the group and stream are created in the background (retried with backoff)
while events buffer. The buffer is bounded (`awslogs-max-buffered-events`, plus the batch being added):
when full, `log` waits, which is the container's backpressure in blocking mode and the router's counted
drops in non-blocking mode. Temporary failures keep the batch and retry; a permanent one gives the batch
up, logged once with its size, and counted. Events CloudWatch rejects as too old or too new are counted
and reported. Closing flushes for at most 10 s, then reports what was not sent (`Undelivered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from logship.drivers.awslogs import client as aws
from logship.drivers.awslogs.events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    EventBuilder,
    EventQueue,
    Segment,
)
from logship.drivers.awslogs.options import Config
from logship.drivers.awslogs.retry import SUCCESS_CODES, backoff_s, error_code, is_temporary
from logship.drivers.base import DeliveryCounters, Undelivered
from logship.pipeline.message import Batch

log = logging.getLogger("logship.drivers.awslogs")

FLUSH_TIMEOUT_S = 10.0
CREATE_BACKOFF_CAP_S = 32.0
T = TypeVar("T")


class AWSLogsDriver:
    name = "awslogs"

    def __init__(self, container_id: str, config: Config, stream: str) -> None:
        self.container = container_id[:12]
        self.config = config
        self.group = config.group
        self.stream = stream
        self._builder = EventBuilder(config.multiline)
        self._queue = EventQueue()
        self._space = asyncio.Event()
        self._space.set()
        self._wake = asyncio.Event()
        # Set by close(); an Event rather than a flag so that a backoff in progress can wait on it too.
        self._closing = asyncio.Event()
        self._created = asyncio.Event()
        self.counters = DeliveryCounters()  # given up on or rejected by CloudWatch: counters.lines_failed
        self._last_publish = time.monotonic()
        loop = asyncio.get_running_loop()
        self._creator = loop.create_task(self._create(), name=f"awslogs-create-{self.container}")
        self._publisher = loop.create_task(self._publish_loop(), name=f"awslogs-{self.container}")
        self._listener: Callable[[int], None] | None = None
        self._flush_now = False  # flush_soon() was asked: send without waiting, until the buffer is empty

    def flush_soon(self) -> None:
        """A Flushes: send what is buffered now (the multiline event being gathered included), without
        waiting for a batch to fill or the flush interval to pass."""
        self._flush_now = True
        self._wake.set()

    def set_delivery_listener(self, listener: Callable[[int], None]) -> None:
        """A ConfirmsDelivery: a line counts as delivered once CloudWatch took every event it is part of (or
        they were given up on)."""
        self._listener = listener

    def delivery_counters(self) -> DeliveryCounters:
        self.counters.buffered_bytes = self._queue.bytes
        return self.counters

    def buffer_size(self) -> int:
        """A SizedLogger: CloudWatch takes events up to 262,118 bytes, so the copier cuts lines there, not at 16 KiB."""
        return MAX_EVENT_BYTES

    async def log(self, batch: Batch) -> None:
        # Docker's queue (max-buffered-events) feeds a batch of up to 10,000 events: hold as much.
        while len(self._queue) >= self.config.max_buffered_events + MAX_BATCH_EVENTS:
            self._space.clear()
            self._wake.set()
            await self._space.wait()
        out: list[Segment] = []
        self._builder.add(batch, out)
        self._queue.extend(out)
        if self._queue.events >= MAX_BATCH_EVENTS or self._queue.bytes >= MAX_BATCH_BYTES:
            self._wake.set()

    async def _call(self, method: str, **params: Any) -> Any:
        def call() -> Any:
            client = aws.client_for(
                self.config.region, self.config.endpoint, self.config.credentials_endpoint, self.config.emf
            )
            return getattr(client, method)(**params)

        return await _in_executor(call)

    # ---- group and stream ---------------------------------------------------------------------

    async def _create(self) -> None:
        if not self.config.create_stream:
            log.info(
                "awslogs: skipping creating log stream %s for container %s (awslogs-create-stream=false)",
                self.stream,
                self.container,
            )
            self._created.set()
            return
        attempt = 0
        reported = ""
        while True:
            try:
                await self._create_stream()
                self._created.set()
                if reported:
                    log.info(
                        "awslogs: log stream %s/%s ready for container %s", self.group, self.stream, self.container
                    )
                return
            except Exception as err:  # every failure is retried: start never depends on AWS
                attempt += 1
                problem = self._describe(err)
                if problem != reported:
                    log.error(
                        "awslogs: cannot create log stream %s/%s for container %s: %s; retrying, lines "
                        "buffer meanwhile",
                        self.group,
                        self.stream,
                        self.container,
                        problem,
                    )
                    reported = problem
                await self._sleep(min(CREATE_BACKOFF_CAP_S, 2 ** min(attempt - 1, 5)))

    async def _create_stream(self) -> None:
        try:
            await self._call("create_log_stream", logGroupName=self.group, logStreamName=self.stream)
        except Exception as err:
            code = error_code(err)
            if code == "ResourceAlreadyExistsException":
                return
            if code != "ResourceNotFoundException" or not self.config.create_group:
                raise
            try:
                await self._call("create_log_group", logGroupName=self.group)
            except Exception as group_err:
                if error_code(group_err) != "ResourceAlreadyExistsException":
                    raise
            try:
                await self._call("create_log_stream", logGroupName=self.group, logStreamName=self.stream)
            except Exception as again:
                if error_code(again) != "ResourceAlreadyExistsException":
                    raise

    def _describe(self, err: BaseException) -> str:
        code = error_code(err)
        if code == "ResourceNotFoundException" and not self.config.create_group:
            return f"log group {self.group!r} does not exist (create it, or set awslogs-create-group=true)"
        return f"{code}: {err}"

    # ---- publishing -------------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        await self._created.wait()
        attempt = 0
        while True:
            due = self._last_publish + self.config.flush_interval_s - time.monotonic()
            full = self._queue.events >= MAX_BATCH_EVENTS or self._queue.bytes >= MAX_BATCH_BYTES
            full = full or not self._space.is_set() or self._flush_now  # a writer waits for room, or flush_soon
            if not full and not self._closing.is_set() and due > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due)
                continue
            out: list[Segment] = []
            flush = self._builder.flush if self._closing.is_set() or self._flush_now else None
            if flush is not None:
                flush(out)
            else:
                self._builder.flush_older_than(time.time_ns(), self.config.flush_interval_s, out)
            self._queue.extend(out)
            if not self._queue:
                self._flush_now = False
                self._last_publish = time.monotonic()
                if self._closing.is_set():
                    return
                continue
            events, count = self._queue.take_batch()
            try:
                response = await self._call(
                    "put_log_events", logGroupName=self.group, logStreamName=self.stream, logEvents=events
                )
                self._count_rejected(response, count)
            except Exception as err:
                if error_code(err) == "ResourceNotFoundException" and await self._recreate():
                    continue  # the stream (or group) vanished, e.g. an emulator restarted: made again, resend
                if error_code(err) not in SUCCESS_CODES:
                    self.counters.error(f"{error_code(err)}: {err}")
                    if is_temporary(err):
                        self.counters.lines_retried += count
                        attempt += 1
                        if attempt == 1:
                            log.warning(
                                "awslogs: sending %d events of container %s failed (%s: %s); retrying with "
                                "backoff, the events stay buffered",
                                count,
                                self.container,
                                error_code(err),
                                err,
                            )
                        await self._sleep(backoff_s(attempt))
                        continue
                    self.counters.lines_failed += count
                    log.error(
                        "awslogs: gave up on %d events of container %s for %s/%s: %s",
                        count,
                        self.container,
                        self.group,
                        self.stream,
                        self._describe(err),
                    )
            if attempt:
                log.info("awslogs: container %s sends again after %d failed attempts", self.container, attempt)
            attempt = 0
            lines = self._queue.drop(count)
            if self._listener is not None and lines:
                self._listener(lines)
            self._last_publish = time.monotonic()
            self._space.set()

    async def _recreate(self) -> bool:
        """Make the stream (and with awslogs-create-group the group) again; False if that is not allowed
        or fails for good."""
        if not self.config.create_stream:
            return False
        try:
            await self._create_stream()
        except Exception as err:
            if is_temporary(err):
                await self._sleep(1.0)
                return True
            return False
        log.warning(
            "awslogs: log stream %s/%s of container %s had disappeared and was created again",
            self.group,
            self.stream,
            self.container,
        )
        return True

    def _count_rejected(self, response: Any, count: int) -> None:
        info = response.get("rejectedLogEventsInfo") if isinstance(response, dict) else None
        if not info:
            return
        rejected = 0
        if "tooNewLogEventStartIndex" in info:
            rejected += count - int(info["tooNewLogEventStartIndex"])
        old_end = max(int(info.get("tooOldLogEventEndIndex", -1)), int(info.get("expiredLogEventEndIndex", -1)))
        rejected += old_end + 1 if old_end >= 0 else 0
        if rejected:
            self.counters.lines_failed += rejected
            self.counters.error(f"CloudWatch rejected {rejected} events as too old or too new")
            log.error(
                "awslogs: CloudWatch rejected %d of %d events of container %s as too old or too new: %s",
                rejected,
                count,
                self.container,
                info,
            )

    async def _sleep(self, seconds: float) -> None:
        """Back off, but retry at least every second while closing, and at once when closing begins: a
        backoff of up to CAP_S taken before would otherwise outlast the flush deadline (a backend back
        just after the container's end was then never tried again)."""
        if self._closing.is_set():
            await asyncio.sleep(min(seconds, 1.0))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    # ---- close --------------------------------------------------------------------------------------

    async def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        self._closing.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._publisher), timeout_s)
        except TimeoutError:
            self._publisher.cancel()
        self._creator.cancel()
        for task in (self._publisher, self._creator):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        out: list[Segment] = []
        self._builder.flush(out)
        self._queue.extend(out)
        unsent = self._queue.events
        if unsent:
            reason = (
                f"CloudWatch group {self.group!r} stream {self.stream!r} did not take them within "
                f"{timeout_s:g}s of the container's end"
            )
            log.error("awslogs: %d events of container %s were not delivered: %s", unsent, self.container, reason)
            self._queue.clear()
            raise Undelivered(unsent, reason)


async def _in_executor(call: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(aws.EXECUTOR, call)
