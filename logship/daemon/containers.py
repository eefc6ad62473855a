"""The daemon's containers: create, start, stop, kill, wait, remove, attach and logs.

Each running container has a runtime process (see `logship.runtime.spawn`), two copier tasks reading
its stdout and stderr, a router feeding its log drivers, and a monitor task that waits for the exit, lets
the copiers drain the pipes, closes the drivers (bounded) and records the exit code. Everything is
persisted under the container's directory so a restarted daemon finds it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.daemon import create
from logship.daemon.attach import Attachments, StdinPipe, Subscriber
from logship.daemon.container import ContainerRecord
from logship.daemon.names import random_name
from logship.drivers import cache, options, registry
from logship.drivers.base import LogDriver, LogReader, SizedLogger
from logship.errors import (
    Conflict,
    InvalidParameter,
    LogshipError,
    NotFound,
    NotImplementedByDriver,
    NotModified,
)
from logship.pipeline.copier import LineSplitter, copy_stream
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import MAX_LINE_SIZE, STDERR, STDOUT, Message
from logship.pipeline.readconfig import ReadConfig
from logship.pipeline.router import Router
from logship.runtime import spawn
from logship.runtime.images import ImageStore
from logship.settings import Settings

log = logging.getLogger("logship.containers")

# After the container's main process is gone its pipes reach EOF at once (every writer died with the pid
# namespace); this bound only guards against a runtime bug keeping a writer open.
DRAIN_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 10


@dataclass
class Container:
    record: ContainerRecord
    dir: Path
    process: spawn.Process | None = None
    router: Router | None = None
    attachments: Attachments = field(default_factory=Attachments)
    stdin: StdinPipe | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    process_exited: asyncio.Event = field(default_factory=asyncio.Event)  # the main process is gone
    stopped: asyncio.Event = field(default_factory=asyncio.Event)  # ... and its logs are flushed
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)  # set while a run is live
    exit_count: int = 0  # runs ended since the daemon started, for wait(condition=next-exit)
    exit_event: asyncio.Event = field(default_factory=asyncio.Event)  # set (and replaced) at each exit
    monitor: asyncio.Task[None] | None = None
    copiers: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.record.state.running:
            self.process_exited.set()
            self.stopped.set()

    @property
    def id(self) -> str:
        return self.record.id

    def save(self) -> None:
        self.record.save(self.dir)


class ContainerManager:
    def __init__(self, settings: Settings, images: ImageStore) -> None:
        self.settings = settings
        self.images = images
        self.root = settings.data_root / "containers"
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}  # "/name" -> id

    # ---- lookup ---------------------------------------------------------------------------------

    def all(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.record.created_ns, reverse=True)

    def find(self, ref: str) -> Container:
        """By full id, by name, then by unique id prefix, as Docker resolves references."""
        if ref in self._containers:
            return self._containers[ref]
        by_name = self._names.get(ref if ref.startswith("/") else "/" + ref)
        if by_name:
            return self._containers[by_name]
        matches = [c for cid, c in self._containers.items() if ref and cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(
                f"multiple containers found with provided prefix: {ref} (give more characters of the ID, or the name)"
            )
        raise NotFound(f"No such container: {ref}")

    def containers_using_image(self, image_id: str) -> list[str]:
        return [c.id for c in self._containers.values() if c.record.image_id == image_id]

    # ---- restore after a daemon restart --------------------------------------------------------

    async def load(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for directory in sorted(self.root.iterdir()):
            try:
                record = ContainerRecord.load(directory)
            except FileNotFoundError:
                continue  # a create interrupted before its record was written
            except Exception as err:
                log.error("skipping container directory %s: its record is unreadable: %s", directory, err)
                continue
            container = Container(record, directory)
            self._containers[record.id] = container
            self._names[record.name] = record.id
            if record.state.running:
                await self._restore(container)

    async def _restore(self, container: Container) -> None:
        record = container.record
        process = spawn.reattach(container.dir)
        if process is None:
            status = await spawn.collect_exit(container.dir)
            code = spawn.read_exit_code(container.dir)
            record.state.status = "exited"
            record.state.exit_code = status.exit_code
            record.state.oom_killed = status.oom_killed
            if code is None:
                record.state.error = "the container ended while the daemon was down and its exit code was lost"
            record.state.finished_ns = time.time_ns()
            container.process_exited.set()
            container.stopped.set()
            container.save()
            log.info("container %s ended while the daemon was down (exit code %s)", record.short_id, code)
            return
        try:
            drivers = await self._open_drivers(container)
        except LogshipError as err:
            log.error("container %s: cannot reopen its log drivers after restart: %s", record.short_id, err)
            drivers = []
        if process.output_lost:
            log.error(
                "container %s: its output cannot be read after the restart: %s", record.short_id, process.output_lost
            )
        self._run(container, process, drivers)
        log.info("reattached to running container %s (pid %d)", record.short_id, process.init_pid)

    # ---- create ---------------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], name: str | None) -> Container:
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidParameter("no image specified: the create request needs an Image")
        image = await asyncio.to_thread(self.images.get, image_ref)
        full_name = create.check_name(name) if name else "/" + random_name(self._names)
        if full_name in self._names:
            other = self._names[full_name]
            raise Conflict(
                f'Conflict. The container name "{full_name}" is already in use by container "{other}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            )
        container_id = create.new_container_id()
        record = create.build_record(
            body, full_name, image_ref, image.id, image.config.get("config") or {}, self.settings, container_id
        )
        directory = self.root / container_id
        directory.mkdir(parents=True)
        container = Container(record, directory)
        container.save()
        self._containers[container_id] = container
        self._names[full_name] = container_id
        log.info(
            "created container %s %s (image %s, log driver %s)", record.short_id, full_name, image_ref, record.log_type
        )
        return container

    # ---- start and the life of a running container ---------------------------------------------

    def container_info(self, container: Container) -> ContainerInfo:
        record = container.record
        return ContainerInfo(
            container_id=record.id,
            container_name=record.name,
            config=record.log_opts,
            entrypoint=record.path,
            args=tuple(record.args),
            image_id=record.image_id,
            image_name=record.image,
            created_ns=record.created_ns,
            env=tuple(record.config.get("Env") or ()),
            labels=record.config.get("Labels") or {},
            log_path=record.log_path,
            container_dir=str(container.dir),
        )

    async def _open_drivers(self, container: Container) -> list[LogDriver]:
        """The container's driver, plus the dual-logging cache when that driver cannot read back."""
        record = container.record
        info = self.container_info(container)
        drivers = [await self._opening(record, "logging driver", registry.get(record.log_type).new(info))]
        if not isinstance(drivers[0], LogReader) and cache.enabled(record.log_type, record.log_opts):
            try:
                drivers.append(await self._opening(record, "the dual-logging cache", cache.open_cache(info)))
            except LogshipError:
                await _close_all(drivers)
                raise
        return drivers

    async def _opening(self, record: ContainerRecord, what: str, opening: Awaitable[LogDriver]) -> LogDriver:
        try:
            return await opening
        except LogshipError as err:
            raise InvalidParameter(f"failed to initialize {what}: {err}") from None
        except Exception as err:
            log.exception("%s failed to start for container %s", what, record.short_id)
            raise LogshipError(f"failed to initialize {what}: {type(err).__name__}: {err}") from None

    async def _open_reader(self, container: Container) -> LogDriver:
        """A fresh driver instance to read a stopped container's logs: its own driver if that can read,
        else its cache; never a remote driver (that would connect to fluentd or AWS just to read)."""
        record = container.record
        info = self.container_info(container)
        if getattr(registry.get(record.log_type), "can_read", False):
            return await self._opening(record, "logging driver", registry.get(record.log_type).new(info))
        if cache.enabled(record.log_type, record.log_opts):
            return await self._opening(record, "the dual-logging cache", cache.open_cache(info))
        raise NotImplementedByDriver("configured logging driver does not support reading")

    async def start(self, container: Container) -> None:
        async with container.lock:
            record = container.record
            if record.state.running:
                raise NotModified("container already started")
            if container.removed.is_set() or record.state.status == "removing":
                raise Conflict(f"container {record.short_id} is marked for removal and cannot be started")
            image = await asyncio.to_thread(self.images.get, record.image_id)
            drivers = await self._open_drivers(container)
            spec = spawn.ContainerSpec(
                container_id=record.id,
                state_dir=container.dir,
                image_rootfs=image.rootfs,
                argv=[record.path, *record.args],
                env=create.runtime_env(record),
                workdir=record.config.get("WorkingDir") or "/",
                hostname=record.config["Hostname"],
                tty=record.tty,
                open_stdin=bool(record.config.get("OpenStdin")),
                network=record.host_config.get("NetworkMode") or "none",
                memory=record.host_config.get("Memory") or 0,
                pids_limit=record.host_config.get("PidsLimit") or 0,
                nano_cpus=record.host_config.get("NanoCpus") or 0,
                cap_add=list(record.host_config.get("CapAdd") or []),
                cap_drop=list(record.host_config.get("CapDrop") or []),
            )
            try:
                process = await spawn.start(spec)
            except spawn.StartError as err:
                await _close_all(drivers)
                record.state.status = "exited" if record.state.started_ns else "created"
                record.state.exit_code = err.exit_code
                record.state.error = err.message
                record.state.finished_ns = time.time_ns()
                container.save()
                log.warning("container %s failed to start: %s", record.short_id, err.message)
                raise StartFailed(err.message, err.exit_code) from None
            except Exception as err:
                await _close_all(drivers)
                log.exception("starting container %s failed", record.short_id)
                raise LogshipError(f"starting the container failed: {type(err).__name__}: {err}") from err
            self._run(container, process, drivers)
            log.info("started container %s (pid %d)", record.short_id, process.init_pid)

    def _run(self, container: Container, process: spawn.Process, drivers: list[LogDriver]) -> None:
        """Wire a started (or re-found) process to its copiers, router and monitor."""
        record = container.record
        state = record.state
        if state.status != "running":
            state.started_ns = time.time_ns()
            state.finished_ns = 0
            state.exit_code = 0
            state.error = ""
            state.oom_killed = False
        state.status = "running"
        state.pid = process.init_pid
        container.process = process
        container.process_exited = asyncio.Event()
        container.stopped = asyncio.Event()
        opts = record.log_opts
        mode = options.mode_of(opts)
        max_buffer = options.max_buffer_size_of(opts) if mode == options.NON_BLOCKING else 0
        router = Router(record.id, drivers, record.log_stats, mode, max_buffer)
        container.router = router
        if process.stdin_fd is not None:
            stdin_once = bool(record.config.get("StdinOnce"))
            container.stdin = StdinPipe(process.stdin_fd, on_eof=process.close_stdin if stdin_once else None)
        container.save()
        container.started.set()
        container.monitor = asyncio.get_running_loop().create_task(
            self._monitor(container, process, router), name=f"monitor-{record.short_id}"
        )

    async def _monitor(self, container: Container, process: spawn.Process, router: Router) -> None:
        record = container.record
        max_line = MAX_LINE_SIZE
        for driver in router.drivers:
            if isinstance(driver, SizedLogger) and driver.buffer_size() > max_line:
                max_line = driver.buffer_size()

        def count_bytes(n: int) -> None:
            record.log_stats.bytes_read += n

        streams = [(process.stdout_fd, STDOUT)]
        if process.stderr_fd is not None:
            streams.append((process.stderr_fd, STDERR))
        container.copiers = copiers = [
            asyncio.create_task(
                copy_stream(
                    fd, LineSplitter(name, max_line), router.deliver, container.attachments.publish, count_bytes
                ),
                name=f"copy-{name}-{record.short_id}",
            )
            for fd, name in streams
        ]
        try:
            status = await process.wait()
        except Exception as err:  # the runtime lost track of the process: record it, never stay "running"
            log.exception("container %s: waiting for its exit failed", record.short_id)
            status = spawn.ExitStatus(spawn.EXIT_UNKNOWN, False)
            record.state.error = f"lost track of the container's process: {err}"
        container.process_exited.set()
        done, pending = await asyncio.wait(copiers, timeout=DRAIN_TIMEOUT_S)
        for task in pending:
            log.error("container %s: output still open %ss after exit; closing it", record.short_id, DRAIN_TIMEOUT_S)
            task.cancel()
        for task in done:
            if task.exception() is not None:
                log.error("container %s: reading its output failed: %s", record.short_id, task.exception())
        await router.close()
        container.attachments.close()
        container.started.clear()
        container.stdin = None
        process.close_fds()
        state = record.state
        state.status = "exited"
        state.exit_code = status.exit_code
        state.oom_killed = status.oom_killed
        state.finished_ns = time.time_ns()
        state.pid = 0
        container.process = None
        container.router = None
        container.save()
        dropped = record.log_stats.lines_dropped
        log.info(
            "container %s exited with code %d%s",
            record.short_id,
            status.exit_code,
            f"; {dropped} log lines were dropped by the non-blocking buffer" if dropped else "",
        )
        container.stopped.set()
        self._signal_exit(container)
        if record.host_config.get("AutoRemove"):
            try:
                await self.remove(container, force=False)
            except LogshipError as err:
                log.error("auto-removing container %s failed: %s", record.short_id, err)

    async def shutdown(self, stop_containers: bool, timeout: int) -> None:
        """Daemon shutdown. Without live-restore running containers are stopped (Docker's default);
        with it they keep running, their unread output waiting in the pipes the supervisor holds, and
        only what was already read is flushed to the drivers."""
        running = [c for c in self._containers.values() if c.record.state.running and c.process is not None]
        if stop_containers:
            results = await asyncio.gather(
                *(self.stop(c, timeout=min(DEFAULT_STOP_TIMEOUT_S, timeout)) for c in running),
                return_exceptions=True,
            )
            for container, result in zip(running, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, NotModified):
                    log.error("stopping container %s at shutdown: %s", container.record.short_id, result)
            return
        for container in running:
            if container.monitor is not None:
                container.monitor.cancel()
            for task in container.copiers:
                task.cancel()
            if container.router is not None:
                await container.router.close()
            if container.process is not None:
                container.process.close_fds()
            container.save()

    # ---- signals ---------------------------------------------------------------------------------

    async def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        process = container.process
        if process is None or not container.record.state.running:
            raise Conflict(f"Cannot kill container: {container.id}: Container {container.id} is not running")
        process.signal(sig)

    async def stop(self, container: Container, timeout: int | None = None, sig: int | None = None) -> None:
        process = container.process
        if process is None or not container.record.state.running:
            raise NotModified("container already stopped")
        stop_signal = sig or parse_signal(container.record.config.get("StopSignal") or "SIGTERM")
        wait_s = DEFAULT_STOP_TIMEOUT_S if timeout is None else timeout
        with contextlib.suppress(ProcessLookupError):
            process.signal(stop_signal)
        if wait_s < 0:
            await container.process_exited.wait()
        else:
            try:
                await asyncio.wait_for(container.process_exited.wait(), wait_s)
            except TimeoutError:
                log.info(
                    "container %s did not stop within %ss after signal %d; killing it",
                    container.record.short_id,
                    wait_s,
                    stop_signal,
                )
                with contextlib.suppress(ProcessLookupError):
                    process.signal(signal.SIGKILL)
        await container.stopped.wait()

    def resize(self, container: Container, height: int, width: int) -> None:
        if container.process is None:
            raise Conflict(f"Container {container.id} is not running")
        if container.record.tty:
            container.process.resize(height, width)

    # ---- wait and remove -------------------------------------------------------------------------

    async def wait(self, container: Container, condition: str) -> int:
        if condition == "removed":
            await container.removed.wait()
        elif condition == "next-exit":
            await self._next_exit(container)
        else:  # not-running
            await container.stopped.wait()
        return container.record.state.exit_code

    async def _next_exit(self, container: Container) -> None:
        """Until the current run ends, or the next one when the container is not running."""
        target = container.exit_count + 1
        while container.exit_count < target and not container.removed.is_set():
            await container.exit_event.wait()

    @staticmethod
    def _signal_exit(container: Container) -> None:
        container.exit_count += 1
        event, container.exit_event = container.exit_event, asyncio.Event()
        event.set()

    async def remove(self, container: Container, force: bool) -> None:
        record = container.record
        if record.state.running:
            if not force:
                raise Conflict(
                    f'cannot remove container "{record.name}": container is running: '
                    "stop the container before removing or force remove"
                )
            with contextlib.suppress(LogshipError):
                await self.kill(container, signal.SIGKILL)
            await container.stopped.wait()
        if container.removed.is_set():
            return
        record.state.status = "removing"
        await asyncio.to_thread(shutil.rmtree, container.dir, True)
        self._containers.pop(record.id, None)
        self._names.pop(record.name, None)
        container.removed.set()
        self._signal_exit(container)
        log.info("removed container %s %s", record.short_id, record.name)

    # ---- attach and logs -------------------------------------------------------------------------

    def subscribe(self, container: Container, streams: frozenset[str]) -> Subscriber:
        return container.attachments.subscribe(streams)

    def unsubscribe(self, container: Container, subscriber: Subscriber) -> None:
        container.attachments.unsubscribe(subscriber)

    async def read_logs(self, container: Container, config: ReadConfig) -> AsyncGenerator[list[Message], None]:
        """Messages from the container's reading driver: its live instance while it runs (follow works),
        otherwise a fresh instance opened just to read (no follow), as Docker does."""
        record = container.record
        if record.log_type == "none":
            raise NotImplementedByDriver("configured logging driver does not support reading")
        live = container.router
        reader: LogReader | None = None
        opened: LogDriver | None = None
        if live is not None:
            reader = next((d for d in live.drivers if isinstance(d, LogReader)), None)
        if reader is None:
            config = ReadConfig(config.since_ns, config.until_ns, config.tail, follow=False)
            opened = await self._open_reader(container)
            if not isinstance(opened, LogReader):
                await opened.close()
                raise NotImplementedByDriver("configured logging driver does not support reading")
            reader = opened
        return _reading(reader, config, opened.close if opened is not None else None)


async def _close_all(drivers: list[LogDriver]) -> None:
    for driver in drivers:
        try:
            await driver.close()
        except Exception:
            log.exception("closing log driver %s", driver.name)


class StartFailed(LogshipError):
    """The runtime could not start the command; carries the exit code Docker's CLI would use (125-127)."""

    status = 400

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def _reading(
    reader: LogReader, config: ReadConfig, close: Callable[[], Any] | None
) -> AsyncGenerator[list[Message], None]:
    try:
        async for messages in reader.read_logs(config):
            yield messages
    finally:
        if close is not None:
            await close()


_SIGNALS = {
    name[3:]: int(value)
    for name, value in signal.Signals.__members__.items()
    if name.startswith("SIG") and not name.startswith("SIG_")
}


def parse_signal(text: str) -> int:
    """Docker accepts `SIGKILL`, `KILL`, `kill` or `9`."""
    value = text.strip().upper()
    if value.isdigit():
        number = int(value)
        if 0 < number < 65:
            return number
    name = value[3:] if value.startswith("SIG") else value
    if name in _SIGNALS:
        return _SIGNALS[name]
    raise InvalidParameter(f"Invalid signal: {text}")
