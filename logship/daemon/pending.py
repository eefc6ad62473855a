"""Pending deliveries: the lines of a container whose logs are closed (it ended, was stopped or removed)
that a disk-buffered driver has not delivered yet. They go on in the background, survive `rm` and daemon
restarts, and are shown as pending (`logship stats -a`, `logship info`, `/metrics`, `inspect`).

When a container's logs close with such lines, its spool moves to `<container dir>/undelivered/spool`
(one rename in the same directory, whatever file systems the data root spans; open files keep working)
beside a `delivery.json` that says how to open the driver again (the container's info, driver and
options) and holds its counters. `rm` removes everything of the container but that folder, which goes once
the delivery ends. A restarted daemon resumes every delivery it finds from the driver's ledger: at least
once, in order.

A delivery ends when every line is confirmed (the spool goes), when `buffer-max-age` (24 h by default)
has passed since the container's end (what is left is given up, counted as failed, and said in the
daemon log), or when it is dropped on purpose (`logship buffer drop`, `DELETE /logship/buffers/{id}`).
A container started again while its previous lines are still pending has its new lines wait behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from logship.drivers import options, registry
from logship.drivers.base import LogDriver, line_limit
from logship.pipeline.budget import DaemonBudget
from logship.pipeline.diskbuffer import BufferConfig, DiskBuffer
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STREAMS
from logship.pipeline.processing import config as processing_options
from logship.pipeline.spool import HANDOFF, SPOOL_DIR, Spool
from logship.pipeline.stats import LogStats, ProcessingStats

log = logging.getLogger("logship.pending")

UNDELIVERED = "undelivered"
DELIVERY_FILE = "delivery.json"
AGE_CHECK_S = 30.0
REOPEN_BACKOFF_S = (1.0, 60.0)  # a driver that cannot be opened again (fluentd-async=false, fluentd away)

OpenDriver = Callable[[ContainerInfo, str], Awaitable[LogDriver]]


@dataclass
class Delivery:
    """One container's pending lines."""

    info: ContainerInfo
    log_type: str
    ended_ns: int  # when the container's logs were closed
    max_age_s: float
    stats: LogStats
    directory: Path
    buffers: list[DiskBuffer] = field(default_factory=list)
    spool: Spool | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    removed: bool = False  # the container itself is gone
    task: asyncio.Task[None] | None = None

    @property
    def container_id(self) -> str:
        return self.info.container_id

    def refresh_stats(self) -> None:
        for buffer in self.buffers:
            buffer.refresh_stats()

    def to_api(self) -> dict[str, Any]:
        self.refresh_stats()
        return {
            "Id": self.container_id,
            "Name": self.info.container_name,
            "Removed": self.removed,
            "Driver": self.log_type,
            "Since": self.ended_ns,
            "MaxAgeSeconds": self.max_age_s,
            "LogStats": self.stats.to_api(),
        }


class PendingDeliveries:
    def __init__(self, containers_root: Path, budget: DaemonBudget, open_driver: OpenDriver) -> None:
        self.root = containers_root
        self.budget = budget
        self.open_driver = open_driver
        self.deliveries: dict[str, Delivery] = {}
        self._ager: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # a delivery came: the ager looks at its age

    # -- taking over --

    def adopt(
        self, info: ContainerInfo, log_type: str, stats: LogStats, spool: Spool, buffers: list[DiskBuffer]
    ) -> Delivery:
        """A container's logs closed with `buffers` still delivering: their spool moves here (see the module
        docstring) and they go on."""
        directory = Path(info.container_dir) / UNDELIVERED
        directory.mkdir(exist_ok=True)
        keep = {buffer.name for buffer in buffers}
        for name, ledger in list(spool.ledgers.items()):  # the in-step drivers are done with the spool
            if name not in keep:
                ledger.close()
                spool.ledgers.pop(name)
                with contextlib.suppress(FileNotFoundError):
                    ledger.path.unlink()
        delivery = Delivery(
            info, log_type, time.time_ns(), options.buffer_max_age_of(info.config), stats, directory, buffers, spool
        )
        self._write(delivery)
        os.replace(spool.directory, directory / SPOOL_DIR)
        spool.directory = directory / SPOOL_DIR
        self._track(delivery)
        log.info(
            "container %s: its logs are closed with lines %s has not delivered yet; delivery goes on in the background",
            info.container_id[:12],
            log_type,
        )
        return delivery

    def _track(self, delivery: Delivery) -> None:
        previous = self.deliveries.get(delivery.container_id)
        if previous is not None and not previous.done.is_set():
            raise RuntimeError(f"two pending deliveries for container {delivery.container_id}")
        self.deliveries[delivery.container_id] = delivery
        delivery.task = asyncio.get_running_loop().create_task(
            self._follow(delivery), name=f"pending-{delivery.container_id[:12]}"
        )
        if self._ager is None:
            self._ager = asyncio.get_running_loop().create_task(self._age(), name="pending-age")
        self._changed.set()

    def _write(self, delivery: Delivery) -> None:
        info = asdict(delivery.info)
        info["config"] = dict(delivery.info.config)
        info["labels"] = dict(delivery.info.labels)
        data = {
            "Info": info,
            "LogType": delivery.log_type,
            "Ended": delivery.ended_ns,
            "MaxAgeSeconds": delivery.max_age_s,
            "Removed": delivery.removed,
            "LogStats": delivery.stats.to_api(),
        }
        temporary = delivery.directory / f"{DELIVERY_FILE}.tmp"
        temporary.write_bytes(orjson.dumps(data))
        os.replace(temporary, delivery.directory / DELIVERY_FILE)

    async def _follow(self, delivery: Delivery) -> None:
        """Until every buffer has ended; then the spool and the directory go."""
        await asyncio.gather(*(buffer.done.wait() for buffer in delivery.buffers))
        for buffer in delivery.buffers:
            self.budget.unregister(buffer)
        self._finish(delivery)
        failed = sum(d.lines_failed + d.driver_failed for d in delivery.stats.drivers)
        log.info(
            "container %s: pending delivery to %s ended (%d lines written in all, %d failed)",
            delivery.container_id[:12],
            delivery.log_type,
            sum(d.lines_written for d in delivery.stats.drivers),
            failed,
        )

    def _finish(self, delivery: Delivery) -> None:
        if delivery.spool is not None:
            delivery.spool.close()
        shutil.rmtree(delivery.directory.parent if delivery.removed else delivery.directory, ignore_errors=True)
        delivery.done.set()
        if self.deliveries.get(delivery.container_id) is delivery:
            del self.deliveries[delivery.container_id]

    # -- asked by the container manager and the API --

    def waiting_for(self, container_id: str) -> asyncio.Event | None:
        """What a new run's disk buffers must let finish first (their lines come after these)."""
        delivery = self.deliveries.get(container_id)
        return delivery.done if delivery is not None and not delivery.done.is_set() else None

    def container_removed(self, container_id: str) -> None:
        delivery = self.deliveries.get(container_id)
        if delivery is not None:
            delivery.removed = True
            with contextlib.suppress(OSError):
                self._write(delivery)

    def find(self, ref: str) -> Delivery:
        """By full id, name or unique id prefix; KeyError when nothing matches."""
        if ref in self.deliveries:
            return self.deliveries[ref]
        named = [d for d in self.deliveries.values() if d.info.container_name.lstrip("/") == ref.lstrip("/")]
        if len(named) == 1:
            return named[0]
        prefixed = [d for d in self.deliveries.values() if ref and d.container_id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        raise KeyError(ref)

    async def drop(self, delivery: Delivery, reason: str) -> int:
        """Give up what is left on purpose (or at buffer-max-age): the lines given up."""
        given_up = 0
        for buffer in delivery.buffers:
            given_up += await buffer.abandon(reason)
        if delivery.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await delivery.task
        return given_up

    async def _age(self) -> None:
        """Give up the deliveries older than their buffer-max-age, checking when the next one is due."""
        while True:
            now = time.time_ns()
            due = [
                (delivery.ended_ns + delivery.max_age_s * 1e9 - now) / 1e9
                for delivery in self.deliveries.values()
                if delivery.max_age_s
            ]
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(AGE_CHECK_S, max(0.1, min(due, default=AGE_CHECK_S))))
            now = time.time_ns()
            for delivery in list(self.deliveries.values()):
                if delivery.max_age_s and (now - delivery.ended_ns) / 1e9 >= delivery.max_age_s:
                    reason = f"buffer-max-age ({delivery.max_age_s:g}s) passed since the container's end"
                    given_up = await self.drop(delivery, reason)
                    log.error(
                        "container %s: gave up %d lines that %s had not delivered: %s",
                        delivery.container_id[:12],
                        given_up,
                        delivery.log_type,
                        reason,
                    )

    # -- daemon start and shutdown --

    async def load(self, live_stats: Callable[[str], LogStats | None]) -> None:
        """Resume the deliveries a previous daemon left (`live_stats`: a container that still exists keeps
        its counters in its own record)."""
        if not self.root.is_dir():
            return
        for directory in sorted(self.root.glob(f"*/{UNDELIVERED}")):
            if directory.parent.name in self.deliveries:
                continue  # handed over again just now (a container's spool replayed at start)
            try:
                data = orjson.loads((directory / DELIVERY_FILE).read_bytes())
            except FileNotFoundError:
                shutil.rmtree(directory, ignore_errors=True)  # never finished handing over: the container has it
                continue
            except Exception as err:
                log.error("pending delivery %s is unreadable (%s); it is left on disk", directory, err)
                continue
            if not (directory / SPOOL_DIR).is_dir():
                shutil.rmtree(directory, ignore_errors=True)
                continue
            raw = data["Info"]
            info = ContainerInfo(**{**raw, "args": tuple(raw.get("args") or ()), "env": tuple(raw.get("env") or ())})
            stats = live_stats(info.container_id) or LogStats.from_api(data.get("LogStats") or {})
            delivery = Delivery(
                info, data["LogType"], data["Ended"], data["MaxAgeSeconds"], stats, directory, removed=data["Removed"]
            )
            self.deliveries[info.container_id] = delivery
            delivery.task = asyncio.get_running_loop().create_task(
                self._resume(delivery), name=f"pending-{info.container_id[:12]}"
            )
        if self.deliveries and self._ager is None:
            self._ager = asyncio.get_running_loop().create_task(self._age(), name="pending-age")

    async def _resume(self, delivery: Delivery) -> None:
        pause = REOPEN_BACKOFF_S[0]
        while True:
            try:
                driver = await self.open_driver(delivery.info, delivery.log_type)
                break
            except Exception as err:
                log.error(
                    "container %s: cannot open log driver %s to deliver its pending lines (%s); retrying in %gs",
                    delivery.container_id[:12],
                    delivery.log_type,
                    err,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, REOPEN_BACKOFF_S[1])
        opts = delivery.info.config
        spool = Spool(delivery.directory, options.mode_of(opts) != options.NON_BLOCKING)
        spool.start_run(name for name in STREAMS if any(spool.directory.glob(f"{name}.*")))
        for stream in spool.streams.values():
            stream.input_ended.set()
        spool.ledgers.pop(HANDOFF, None)
        mode = options.mode_of(opts)
        limit = options.buffer_max_size_of(opts)
        processing = processing_options.config_of(opts)
        if processing is not None and delivery.stats.processing is None:
            delivery.stats.processing = ProcessingStats()
        config = BufferConfig(
            limit or options.DEFAULT_BUFFER_MAX_SIZE,
            mode != options.NON_BLOCKING,
            line_limit([driver]),
            processing.for_records(processing_options.line_records_of(driver.name, registry.get(delivery.log_type)))
            if processing is not None
            else None,
        )
        buffer = DiskBuffer(
            delivery.container_id,
            spool,
            driver,
            delivery.stats.for_driver(driver.name, mode, limit),
            config,
            delivery.stats.processing,
        )
        delivery.spool = spool
        delivery.buffers = [buffer]
        self.budget.register(buffer)
        buffer.start()
        buffer.finish()
        log.info(
            "container %s: resumed the pending delivery of its lines to %s",
            delivery.container_id[:12],
            delivery.log_type,
        )
        await self._follow(delivery)

    def save(self) -> None:
        for delivery in self.deliveries.values():
            if delivery.directory.is_dir():
                with contextlib.suppress(OSError):
                    self._write(delivery)

    async def shutdown(self) -> None:
        """Stop delivering; everything stays on disk for the next daemon."""
        if self._ager is not None:
            self._ager.cancel()
        for delivery in list(self.deliveries.values()):
            if delivery.task is not None:
                delivery.task.cancel()
            for buffer in delivery.buffers:
                await buffer.stop()
            with contextlib.suppress(OSError):
                self._write(delivery)
            if delivery.spool is not None:
                delivery.spool.close()


def remove_files(directory: Path, keep_undelivered: bool) -> None:
    """A removed container's files go; its undelivered lines stay until their delivery ends (see pending)."""
    if not keep_undelivered:
        shutil.rmtree(directory, ignore_errors=True)
        return
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:  # the delivery ended meanwhile and took the folder along
        return
    for entry in entries:
        if entry.name == UNDELIVERED:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
