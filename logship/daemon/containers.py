"""The daemon's containers: create, start, stop, kill, restart, wait, remove, attach and logs.

Each running container has a runtime process (see `logship.runtime.spawn`), two copier tasks reading
its stdout and stderr, a router feeding its log drivers, and a monitor task that waits for the exit, lets
the copiers drain the pipes, closes the drivers (bounded) and records the exit code. Everything is
persisted under the container's directory so a restarted daemon finds it again.

Restart policies (rules in `logship.daemon.restart`): when a run ends and its policy restarts it, the
container becomes "restarting" and a task starts it again after the back-off. Its router and log drivers
stay open between runs, so every run's lines go to the same log in order and `logs -f` keeps following
(Docker closes the logger at each exit, which ends followers: moby#37630). They are closed when the
container is stopped for good: no restart due, `stop`/`kill`/`rm -f` during the back-off, shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from logship.daemon import create, restart
from logship.daemon.attach import Attachments, StdinPipe, Subscriber
from logship.daemon.container import ContainerRecord
from logship.daemon.names import random_name
from logship.drivers import cache, options, registry
from logship.drivers.base import LogDriver, LogReader, Run, SizedLogger, TextLogReader, as_runs
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
from logship.pipeline.router import DEFAULT_FLUSH_TIMEOUT_S, Router
from logship.pipeline.spool import Spool, has_spool, repair_log_files
from logship.runtime import spawn
from logship.runtime.images import ImageStore
from logship.settings import Settings

log = logging.getLogger("logship.containers")

# After the container's main process is gone its pipes reach EOF at once (every writer died with the pid
# namespace); this bound only guards against a runtime bug keeping a writer open.
DRAIN_TIMEOUT_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 10
EXIT_FLUSH_REASON = f"not written within the {DEFAULT_FLUSH_TIMEOUT_S:g}s flush bound after the container ended"


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
    spool: Spool | None = None  # the output on its way to the drivers (FIFOs only); lives as long as the router
    pending_restart: asyncio.Task[None] | None = None  # a policy restart waiting out its back-off
    backoff_s: float = 0.0  # the last back-off delay; in memory only, as in dockerd
    # Docker's cancelled restart manager: the user stopped this run, so its exit is not followed by a
    # restart whatever the policy. Cleared at every start.
    restart_called_off: bool = False
    manual_restart: bool = False  # `restart` is stopping it to start it again: no --rm removal in between

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
        self._shutting_down = False  # exits during shutdown are not restarted (dockerd: the same)

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
            elif has_spool(directory):
                await self._replay_spool(container)
        self._apply_restart_policies_at_daemon_start()

    async def _restore(self, container: Container) -> None:
        record = container.record
        for note in repair_log_files(container.dir):
            log.warning("container %s: %s; it is written again from the spool", record.short_id, note)
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
            if has_spool(container.dir):
                await self._replay_spool(container)
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
        self._run(container, process, drivers, restored=True)
        if process.init_pid:
            log.info("reattached to running container %s (pid %d)", record.short_id, process.init_pid)
            return
        # It ended while the daemon was away; its supervisor kept the output. Write that out and record the
        # exit before the API answers, so that `ps -a` and `logs` are right from the first request.
        log.info("container %s ended while the daemon was down; writing out its last output", record.short_id)
        try:
            await asyncio.wait_for(container.stopped.wait(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.error("container %s: its last output is still being written", record.short_id)

    async def _replay_spool(self, container: Container) -> None:
        """A container that is not running but whose drivers had not written all it spooled (the daemon
        was killed after its output ended): write the rest now."""
        record = container.record
        for note in repair_log_files(container.dir):
            log.warning("container %s: %s; it is written again from the spool", record.short_id, note)
        try:
            drivers = await self._open_drivers(container)
        except LogshipError as err:
            log.error("container %s: cannot open its log drivers to write its last output: %s", record.short_id, err)
            return
        mode = options.mode_of(record.log_opts)
        spool = Spool(container.dir, blocking=mode != options.NON_BLOCKING)
        router = Router(record.id, spool.track(drivers), record.log_stats, mode, 0)
        max_line = _max_line(router.drivers)
        for name in spool.start_run((STDOUT, STDERR)):
            await copy_stream(None, LineSplitter(name, max_line), router.deliver, spool=spool.stream(name))
        await router.close()
        spool.remove()
        container.save()
        log.info("container %s: wrote out the output it left when the daemon was killed", record.short_id)

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
        """The user's start: a fresh restart count and back-off, and any earlier stop forgotten."""
        try:
            await self._start(container, by_policy=False)
        except LogshipError as err:
            # --rm: a container that could not start is removed too, as dockerd does (the docker CLI waits
            # for that removal).
            record = container.record
            if record.host_config.get("AutoRemove") and not record.state.running and not isinstance(err, NotModified):
                with contextlib.suppress(LogshipError):
                    await self.remove(container, force=False)
            raise

    async def _start(self, container: Container, by_policy: bool) -> None:
        async with container.lock:
            record = container.record
            if by_policy:
                if not record.state.restarting:
                    return  # called off (stop, kill, rm -f) while this restart waited for the lock
                container.pending_restart = None  # from here on a stop waits for this start, then stops the run
            elif record.state.running or record.state.restarting:
                raise NotModified("container already started")
            if container.removed.is_set() or record.state.status == "removing":
                raise Conflict(f"container {record.short_id} is marked for removal and cannot be started")
            if not by_policy:
                record.restart_count = 0
                record.manually_stopped = False
                container.backoff_s = 0.0
            container.restart_called_off = False
            image = await asyncio.to_thread(self.images.get, record.image_id)
            # A policy restart reuses the drivers the previous run left open (see the module docstring).
            drivers = container.router.drivers if container.router is not None else await self._open_drivers(container)
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
                hold_output=True,  # until the copiers have spooled it all: see _release_when_drained
            )
            try:
                process = await spawn.start(spec)
            except spawn.StartError as err:
                await self._close_drivers(container, drivers)
                record.state.status = "exited" if record.state.started_ns else "created"
                record.state.exit_code = err.exit_code
                record.state.error = err.message
                record.state.finished_ns = time.time_ns()
                container.save()
                log.warning("container %s failed to start: %s", record.short_id, err.message)
                if by_policy:
                    self._signal_exit(container)  # it was "restarting", it is now stopped for good
                raise StartFailed(err.message, err.exit_code) from None
            except Exception as err:
                await self._close_drivers(container, drivers)
                log.exception("starting container %s failed", record.short_id)
                raise LogshipError(f"starting the container failed: {type(err).__name__}: {err}") from err
            self._run(container, process, drivers)
            log.info("started container %s (pid %d)", record.short_id, process.init_pid)

    def _run(
        self, container: Container, process: spawn.Process, drivers: list[LogDriver], restored: bool = False
    ) -> None:
        """Wire a started (or re-found, `restored`) process to its copiers, router and monitor."""
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
        router = container.router  # kept from the previous run by a policy restart
        if router is None:
            opts = record.log_opts
            mode = options.mode_of(opts)
            max_buffer = options.max_buffer_size_of(opts) if mode == options.NON_BLOCKING else 0
            if not process.tty:  # a pty is not a pipe: its output cannot be spliced, nor replayed
                blocking = mode != options.NON_BLOCKING
                spool = Spool(container.dir, blocking) if restored else Spool.fresh(container.dir, blocking)
                drivers = spool.track(drivers)
                container.spool = spool
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
        max_line = _max_line(router.drivers)

        def count_bytes(n: int) -> None:
            record.log_stats.bytes_read += n

        streams: list[tuple[int | None, str]] = [(process.stdout_fd, STDOUT)]
        if process.stderr_fd is not None:
            streams.append((process.stderr_fd, STDERR))
        spool = container.spool
        if spool is not None:
            spool.start_run(name for _, name in streams)
            if process.output_lost:  # the fds read nothing: only what the spool already holds
                streams = [(None, name) for _, name in streams]
        container.copiers = copiers = [
            asyncio.create_task(
                copy_stream(
                    fd,
                    LineSplitter(name, max_line),
                    router.deliver,
                    container.attachments.publish,
                    count_bytes,
                    spool=spool.stream(name) if spool is not None else None,
                ),
                name=f"copy-{name}-{record.short_id}",
            )
            for fd, name in streams
        ]
        if spool is not None:
            releasing = asyncio.create_task(_release_when_drained(record.short_id, process, spool, router))
        try:
            status = await process.wait()
        except Exception as err:  # the runtime lost track of the process: record it, never stay "running"
            log.exception("container %s: waiting for its exit failed", record.short_id)
            status = spawn.ExitStatus(spawn.EXIT_UNKNOWN, False)
            record.state.error = f"lost track of the container's process: {err}"
        finally:
            if spool is not None:
                releasing.cancel()
        container.process_exited.set()
        # One bound from the exit on: the copiers drain the pipes (and the spool) into the router, then the
        # router flushes, all within DEFAULT_FLUSH_TIMEOUT_S plus the drivers' close grace. A driver stuck past
        # it must not hold `stop` longer: the copiers stop waiting for it and count what it missed. (With a
        # spool, _release_when_drained has already applied the bound while the pipes drained.)
        flush_deadline = time.monotonic() + DEFAULT_FLUSH_TIMEOUT_S
        done, pending = await asyncio.wait(copiers, timeout=0 if router.given_up else DEFAULT_FLUSH_TIMEOUT_S)
        if pending:
            router.give_up_waiting(EXIT_FLUSH_REASON)
            more, pending = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT_S)
            done |= more
        for task in pending:
            log.error("container %s: output still open %ss after exit; closing it", record.short_id, DRAIN_TIMEOUT_S)
            task.cancel()
        for task in done:
            if task.exception() is not None:
                log.error("container %s: reading its output failed: %s", record.short_id, task.exception())
        restarts = self._restarts_after_exit(container, status.exit_code)
        if restarts:
            router.resume_waiting()
            # The drivers stay open for the next run. Let them write this run's last lines first, so that
            # `logs` read after the exit is complete.
            await router.wait_idle(DRAIN_TIMEOUT_S)
            restarts = self._restarts_after_exit(container, status.exit_code)  # a stop may have come meanwhile
        if not restarts:
            await router.close(1.0 if router.given_up else max(1.0, flush_deadline - time.monotonic()))
            container.router = None
            self._drop_spool(container)
        container.attachments.close()
        container.started.clear()
        container.stdin = None
        process.close_fds()
        state = record.state
        state.exit_code = status.exit_code
        state.oom_killed = status.oom_killed
        state.finished_ns = time.time_ns()
        state.pid = 0
        container.process = None
        if restarts:
            ran_for_s = (state.finished_ns - state.started_ns) / 1e9
            container.backoff_s = restart.next_delay(container.backoff_s, ran_for_s)
            record.restart_count += 1
            state.status = "restarting"
        else:
            state.status = "exited"
        container.save()
        dropped = record.log_stats.lines_dropped
        log.info(
            "container %s exited with code %d%s%s",
            record.short_id,
            status.exit_code,
            f"; {dropped} log lines were dropped by the non-blocking buffer" if dropped else "",
            f"; restart {record.restart_count} in {container.backoff_s:g}s by its restart policy" if restarts else "",
        )
        container.stopped.set()
        self._signal_exit(container)
        if restarts:
            self._schedule_restart(container, container.backoff_s)
        elif record.host_config.get("AutoRemove") and not container.manual_restart:
            try:
                await self.remove(container, force=False)
            except LogshipError as err:
                log.error("auto-removing container %s failed: %s", record.short_id, err)

    # ---- restart policies ----------------------------------------------------------------------------

    def _restarts_after_exit(self, container: Container, exit_code: int) -> bool:
        if self._shutting_down or container.restart_called_off or container.manual_restart:
            return False
        if container.removed.is_set():
            return False
        record = container.record
        policy = restart.Policy.of(record.host_config)
        return restart.restarts_after_exit(policy, exit_code, record.restart_count, record.manually_stopped)

    def _schedule_restart(self, container: Container, delay_s: float) -> None:
        container.pending_restart = asyncio.get_running_loop().create_task(
            self._restart_later(container, delay_s), name=f"restart-{container.record.short_id}"
        )

    async def _restart_later(self, container: Container, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        record = container.record
        try:
            await self._start(container, by_policy=True)
        except Exception as err:  # recorded on the container; nothing else waits for this task
            log.error("container %s: the restart by its restart policy failed: %s", record.short_id, err)
            async with container.lock:
                if not record.state.restarting:
                    return  # _start recorded the failure (the runtime refused the command)
                await self._close_drivers(container, [])
                record.state.status = "exited"
                record.state.error = f"restart failed: {err}"
                container.save()
            self._signal_exit(container)

    async def _call_off_restart(self, container: Container) -> bool:
        """Stop a container that waits out its restart back-off, for good (stop, kill, rm -f): its drivers
        close, which also ends `logs -f`. False when its restart is already under way: the caller then
        deals with the new run."""
        record = container.record
        async with container.lock:
            if not record.state.restarting:
                return False
            self._note_user_stop(container)
            if container.pending_restart is not None:
                container.pending_restart.cancel()
                container.pending_restart = None
            await self._close_drivers(container, [])
            record.state.status = "exited"
            container.save()
        log.info("container %s: its pending restart was called off", record.short_id)
        self._signal_exit(container)
        return True

    def _note_user_stop(self, container: Container) -> None:
        """Docker's ExitOnNext: this run's end is not followed by a policy restart, and `unless-stopped`
        remembers the stop across daemon restarts (a stop by the daemon's own shutdown does not count)."""
        container.restart_called_off = True
        if not self._shutting_down and not container.record.manually_stopped:
            container.record.manually_stopped = True
            container.save()

    def _apply_restart_policies_at_daemon_start(self) -> None:
        """After loading: resume the restarts that were pending when the daemon went away, and start again
        the stopped containers whose policy says so (dockerd does both when it starts)."""
        for container in self._containers.values():
            record = container.record
            state = record.state
            policy = restart.Policy.of(record.host_config)
            if container.pending_restart is not None:
                continue  # reattached, it ended while the daemon was away, and its exit scheduled the restart
            if not state.restarting:
                if state.status != "exited" or not restart.restarts_at_daemon_start(
                    policy, state.exit_code, record.restart_count, record.manually_stopped, bool(state.started_ns)
                ):
                    continue
                state.status = "restarting"
                container.save()
            log.info("container %s: starting it again (restart policy %s)", record.short_id, policy.name)
            self._schedule_restart(container, 0.0)

    async def _close_drivers(self, container: Container, drivers: list[LogDriver]) -> None:
        """Close a run's drivers: through the router that fed them if there is one (it flushes them first)."""
        router, container.router = container.router, None
        if router is not None:
            await router.close()
            self._drop_spool(container)
        else:
            await _close_all(drivers)

    @staticmethod
    def _drop_spool(container: Container) -> None:
        """The router is closed: its drivers have written what they could, nothing is left to replay."""
        if container.spool is not None:
            container.spool.remove()
            container.spool = None

    # ---- shutdown --------------------------------------------------------------------------------

    async def shutdown(self, stop_containers: bool, timeout: int) -> None:
        """Daemon shutdown. Without live-restore running containers are stopped (Docker's default);
        with it they keep running, their unread output waiting in the pipes the supervisor holds, and
        only what was already read is flushed to the drivers. A restart waiting out its back-off stays
        "restarting" on disk: the next daemon resumes it."""
        self._shutting_down = True
        for container in list(self._containers.values()):
            if container.record.state.restarting:
                async with container.lock:
                    if container.pending_restart is not None:
                        container.pending_restart.cancel()
                        container.pending_restart = None
                    if container.record.state.restarting:
                        await self._close_drivers(container, [])
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
            if container.spool is not None:
                container.spool.close()  # kept on disk: the next daemon resumes from it
            if container.process is not None:
                container.process.close_fds()
            container.save()

    # ---- signals ---------------------------------------------------------------------------------

    async def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        record = container.record
        # As dockerd: SIGKILL or the container's stop signal is the user ending it, which calls off its
        # restart policy; other signals (SIGHUP to reload, ...) are not.
        ends_it = sig in (signal.SIGKILL, parse_signal(record.config.get("StopSignal") or "SIGTERM"))
        if record.state.restarting:
            if not ends_it:
                return  # no process between runs to receive it; dockerd ignores it too
            if await self._call_off_restart(container):
                return
        process = container.process
        if process is None or not record.state.running:
            raise Conflict(f"Cannot kill container: {container.id}: Container {container.id} is not running")
        if ends_it:
            self._note_user_stop(container)
        process.signal(sig)

    async def stop(self, container: Container, timeout: int | None = None, sig: int | None = None) -> None:
        if container.record.state.restarting and await self._call_off_restart(container):
            return
        process = container.process
        if process is None or not container.record.state.running:
            raise NotModified("container already stopped")
        self._note_user_stop(container)
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

    async def restart(self, container: Container, timeout: int | None = None, sig: int | None = None) -> None:
        """`docker restart`: stop the run (or call off a pending policy restart), then start it afresh, which
        resets the restart count and back-off like any start by the user."""
        container.manual_restart = True
        try:
            with contextlib.suppress(NotModified):
                await self.stop(container, timeout, sig)
        finally:
            container.manual_restart = False
        await self.start(container)

    def resize(self, container: Container, height: int, width: int) -> None:
        if container.process is None:
            raise Conflict(f"Container {container.id} is not running")
        if container.record.tty:
            container.process.resize(height, width)

    # ---- wait and remove -------------------------------------------------------------------------

    async def wait(self, container: Container, condition: str) -> int:
        if condition == "removed":
            await container.removed.wait()
        elif condition == "next-exit" or container.record.state.status in ("running", "restarting"):
            # not-running on a live container: until its run ends (even if its policy restarts it, as in
            # dockerd) or a pending restart is called off.
            await self._next_exit(container)
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
        if record.state.running or record.state.restarting:
            if not force:
                raise Conflict(
                    f'cannot remove container "{record.name}": container is {record.state.status}: '
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
        reader, config, close = await self._log_reader(container, config)
        return _reading(reader.read_logs(config), close)

    async def read_log_text(self, container: Container, config: ReadConfig) -> AsyncGenerator[list[Run], None]:
        """`read_logs` as runs of bytes (for `logs` without --details; with `config.timestamps` the
        lines carry their prefixes): straight from a `TextLogReader`, else made from the messages."""
        reader, config, close = await self._log_reader(container, config)
        if isinstance(reader, TextLogReader):
            return _reading(reader.read_text(config), close)
        return _reading(as_runs(reader.read_logs(config), config.timestamps), close)

    async def _log_reader(
        self, container: Container, config: ReadConfig
    ) -> tuple[LogReader, ReadConfig, Callable[[], Any] | None]:
        """The reader, the config it can serve (no follow for a stopped container's fresh instance) and
        what closes that instance."""
        record = container.record
        if record.log_type == "none":
            raise NotImplementedByDriver("configured logging driver does not support reading")
        live = container.router
        reader: LogReader | None = None
        opened: LogDriver | None = None
        if live is not None:
            reader = next((d for d in live.drivers if isinstance(d, LogReader)), None)
        if reader is None:
            config = replace(config, follow=False)
            opened = await self._open_reader(container)
            if not isinstance(opened, LogReader):
                await opened.close()
                raise NotImplementedByDriver("configured logging driver does not support reading")
            reader = opened
        return reader, config, opened.close if opened is not None else None


def _max_line(drivers: list[LogDriver]) -> int:
    """The copier's line limit: Docker's 16 KiB, or more when a driver takes longer lines."""
    max_line = MAX_LINE_SIZE
    for driver in drivers:
        if isinstance(driver, SizedLogger) and driver.buffer_size() > max_line:
            max_line = driver.buffer_size()
    return max_line


async def _release_when_drained(short_id: str, process: spawn.Process, spool: Spool, router: Router) -> None:
    """Let the supervisor go once every output FIFO has reached EOF and its bytes are in the spool. Once the
    container's pid 1 is gone the pipes drain at once, unless a stuck driver holds the copiers (blocking
    mode): after the flush bound they stop waiting for it (`Router.give_up_waiting`). If a FIFO stays open
    (a process outside the container holding a write end), the supervisor is let go after DRAIN_TIMEOUT_S
    anyway, so the container does not look "running" forever."""

    async def input_ended() -> None:  # a task, not the bare gather: cancelling it then leaves no stray error
        await spool.input_ended()

    drained = asyncio.ensure_future(input_ended())
    init_gone = asyncio.ensure_future(process.wait_init())
    try:
        await asyncio.wait({drained, init_gone}, return_when=asyncio.FIRST_COMPLETED)
        if not drained.done():
            finished, _ = await asyncio.wait({drained}, timeout=DEFAULT_FLUSH_TIMEOUT_S)
            if not finished:
                router.give_up_waiting(EXIT_FLUSH_REASON)
        if not drained.done():
            try:
                await asyncio.wait_for(asyncio.shield(drained), DRAIN_TIMEOUT_S)
            except TimeoutError:
                log.error("container %s: its output is still open %ss after it ended", short_id, DRAIN_TIMEOUT_S)
        process.release()
    finally:
        drained.cancel()
        init_gone.cancel()


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


T = TypeVar("T")


async def _reading(items: AsyncIterator[T], close: Callable[[], Any] | None) -> AsyncGenerator[T, None]:
    try:
        async for item in items:
            yield item
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
