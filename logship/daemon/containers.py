"""The daemon's containers: the registry of them (ids, names, events) and what the API asks of them: create,
start, stop, kill, restart, rename, wait, remove, attach and logs.

Beside this module: `handle` is the container the daemon holds, `monitor` follows a run from its start to
its exit, `logsource` opens a run's log drivers and reads logs back, `drain` bounds the end of a run's
output, `restore` finds the containers again when the daemon starts, `restarting` applies restart
policies, `signals` parses signal names.

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
import signal
import time
from collections.abc import AsyncGenerator
from typing import Any

from logship.daemon import create, logsource, monitor, mounts, restarting, restore, runspec
from logship.daemon.attach import Subscriber
from logship.daemon.events import CONTAINER, Events
from logship.daemon.execs import Execs
from logship.daemon.handle import Container
from logship.daemon.names import random_name
from logship.daemon.netattach import ContainerNetworking
from logship.daemon.output import Output
from logship.daemon.pending import PendingDeliveries, remove_files
from logship.daemon.signals import parse_signal
from logship.daemon.volumes import VolumeStore
from logship.drivers import registry
from logship.drivers.base import LogDriver, Run
from logship.errors import Conflict, InvalidParameter, LogshipError, NotFound, NotModified
from logship.pipeline.budget import DaemonBudget
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Message
from logship.pipeline.readconfig import ReadConfig
from logship.pipeline.router import DEFAULT_FLUSH_TIMEOUT_S
from logship.pipeline.stats import LogStats
from logship.runtime import spawn
from logship.runtime.images import ImageStore
from logship.settings import Settings

log = logging.getLogger("logship.containers")

DEFAULT_STOP_TIMEOUT_S = 10


class ContainerManager:
    def __init__(self, settings: Settings, images: ImageStore, events: Events | None = None) -> None:
        self.settings = settings
        self.images = images
        self.events = events if events is not None else Events()
        images.subscribe(self.events.image_listener(asyncio.get_running_loop()))
        self.execs = Execs(self)
        self.root = settings.data_root / "containers"
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}  # "/name" -> id
        self._shutting_down = False  # exits during shutdown are not restarted (dockerd: the same)
        self.budget = DaemonBudget(settings.log_buffer_total)
        self.pending = PendingDeliveries(self.root, self.budget, self._open_for_pending)
        self.volumes = VolumeStore(settings.data_root / "volumes", self._volume_users)
        self.network = ContainerNetworking(
            settings.data_root, settings.bridge != "none", self.events, self._containers.values
        )

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

    def event(self, container: Container, action: str, **extra: str) -> None:
        """Publish a container event with dockerd's attributes: the labels, the image, the name (no "/")."""
        record = container.record
        attributes = {**(record.config.get("Labels") or {}), "image": record.image, "name": record.name[1:], **extra}
        self.events.emit(CONTAINER, action, record.id, attributes, image=record.image)

    def _volume_users(self, name: str) -> list[str]:
        return [c.id for c in self._containers.values() if name in mounts.volume_names(c.record.mount_points)]

    # ---- restore after a daemon restart --------------------------------------------------------

    async def load(self) -> None:
        await restore.load(self)

    # ---- create ---------------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], name: str | None) -> tuple[Container, list[str]]:
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
        warnings = self.network.configure(record, body, body.get("HostConfig") or {})
        await asyncio.to_thread(mounts.create_volumes, record.mount_points, self.volumes)
        directory = self.root / container_id
        directory.mkdir(parents=True)
        container = Container(record, directory)
        container.save()
        self._containers[container_id] = container
        self._names[full_name] = container_id
        log.info(
            "created container %s %s (image %s, log driver %s)", record.short_id, full_name, image_ref, record.log_type
        )
        self.event(container, "create")
        return container, warnings

    # ---- start and the life of a running container ---------------------------------------------

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
                    await self.remove(container, force=False, volumes=True)
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
            drivers = [] if container.output is not None else await logsource.open_drivers(container)
            try:
                network = await self.network.setup(container)
                process = await spawn.start(runspec.container_spec(record, container.dir, image.rootfs, network))
            except spawn.StartError as err:
                await self.network.release(container)
                await self._close_drivers(container, drivers)
                record.state.status = "exited" if record.state.started_ns else "created"
                record.state.exit_code = err.exit_code
                record.state.error = err.message
                record.state.finished_ns = time.time_ns()
                container.save()
                log.warning("container %s failed to start: %s", record.short_id, err.message)
                if by_policy:
                    container.signal_exit()  # it was "restarting", it is now stopped for good
                raise StartFailed(err.message, err.exit_code) from None
            except Exception as err:
                await self.network.release(container)
                await self._close_drivers(container, drivers)
                log.exception("starting container %s failed", record.short_id)
                raise LogshipError(f"starting the container failed: {type(err).__name__}: {err}") from err
            monitor.run(self, container, process, drivers)
            log.info("started container %s (pid %d)", record.short_id, process.init_pid)
            self.event(container, "start")

    async def _close_drivers(self, container: Container, drivers: list[LogDriver]) -> None:
        """Close a run's drivers: through the output that fed them if there is one (it flushes them first)."""
        if container.output is not None:
            await self.close_output(container)
        else:
            await logsource.close_all(drivers)

    async def close_output(self, container: Container, timeout: float = DEFAULT_FLUSH_TIMEOUT_S) -> None:
        """The container's logs are closed: the in-step drivers flush (bounded); lines a disk-buffered driver
        has not delivered yet go on as a pending delivery."""
        output, container.output = container.output, None
        if output is None:
            return
        left = await output.close(timeout)
        if left and output.spool is not None:
            record = container.record
            self.pending.adopt(
                logsource.container_info(container), record.log_type, record.log_stats, output.spool, left
            )

    def output_for(self, container: Container, drivers: list[LogDriver], spooled: bool, restored: bool) -> Output:
        record = container.record
        return Output(
            record.id,
            container.dir,
            record.log_type,
            record.log_opts,
            record.log_stats,
            drivers,
            self.budget,
            spooled,
            restored,
            after=self.pending.waiting_for(record.id),
        )

    async def _open_for_pending(self, info: ContainerInfo, log_type: str) -> LogDriver:
        """The driver of a pending delivery, opened again by a restarted daemon."""
        return await registry.get(log_type).new(info)

    def refresh_log_stats(self, container: Container) -> None:
        """Bring the figures of its drivers up to date (also those delivering after its end)."""
        if container.output is not None:
            container.output.refresh_stats()
        delivery = self.pending.deliveries.get(container.id)
        if delivery is not None:
            delivery.refresh_stats()

    def live_stats(self, container_id: str) -> LogStats | None:
        container = self._containers.get(container_id)
        return container.record.log_stats if container is not None else None

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
            await self.pending.shutdown()
            return
        for container in running:
            if container.monitor is not None:
                container.monitor.cancel()
            for task in container.copiers:
                task.cancel()
            if container.output is not None:
                await container.output.stop()  # the spool stays on disk: the next daemon resumes from it
                container.output = None
            if container.process is not None:
                container.process.close_fds()
            container.save()
        await self.pending.shutdown()

    # ---- signals ---------------------------------------------------------------------------------

    async def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        record = container.record
        # As dockerd: SIGKILL or the container's stop signal is the user ending it, which calls off its
        # restart policy; other signals (SIGHUP to reload, ...) are not.
        ends_it = sig in (signal.SIGKILL, parse_signal(record.config.get("StopSignal") or "SIGTERM"))
        if record.state.restarting:
            if not ends_it:
                return  # no process between runs to receive it; dockerd ignores it too
            if await restarting.call_off_restart(self, container):
                return
        process = container.process
        if process is None or not record.state.running:
            raise Conflict(f"Cannot kill container: {container.id}: Container {container.id} is not running")
        if ends_it:
            restarting.note_user_stop(self, container)
        self.event(container, "kill", signal=str(sig))
        process.signal(sig)

    async def stop(self, container: Container, timeout: int | None = None, sig: int | None = None) -> None:
        if container.record.state.restarting and await restarting.call_off_restart(self, container):
            return
        process = container.process
        if process is None or not container.record.state.running:
            raise NotModified("container already stopped")
        restarting.note_user_stop(self, container)
        stop_signal = sig or parse_signal(container.record.config.get("StopSignal") or "SIGTERM")
        wait_s = DEFAULT_STOP_TIMEOUT_S if timeout is None else timeout
        self.event(container, "kill", signal=str(stop_signal))
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
                self.event(container, "kill", signal=str(int(signal.SIGKILL)))
                with contextlib.suppress(ProcessLookupError):
                    process.signal(signal.SIGKILL)
        await container.stopped.wait()
        self.event(container, "stop")

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
        self.event(container, "restart")

    def resize(self, container: Container, height: int, width: int) -> None:
        if container.process is None:
            raise Conflict(f"Container {container.id} is not running")
        if container.record.tty:
            container.process.resize(height, width)
        self.event(container, "resize", height=str(height), width=str(width))

    async def rename(self, container: Container, new_name: str) -> None:
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        full_name = create.check_name(new_name)
        old_name = container.record.name
        if full_name == old_name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        other = self._names.get(full_name)
        if other is not None:
            raise Conflict(
                f'Conflict. The container name "{full_name}" is already in use by container "{other}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            )
        container.record.name = full_name
        self._names.pop(old_name, None)
        self._names[full_name] = container.id
        container.save()
        log.info("renamed container %s from %s to %s", container.record.short_id, old_name, full_name)
        self.event(container, "rename", oldName=old_name)

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

    async def remove(self, container: Container, force: bool, volumes: bool = False) -> None:
        """`volumes` (rm -v, and --rm): its anonymous volumes go too; named volumes always stay."""
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
        self.pending.container_removed(record.id)  # first: a delivery that ends from now on takes the folder along
        await asyncio.to_thread(remove_files, container.dir, self.pending.waiting_for(record.id) is not None)
        self._containers.pop(record.id, None)
        self._names.pop(record.name, None)
        self.execs.forget_container(container)
        container.removed.set()
        container.signal_exit()
        log.info("removed container %s %s", record.short_id, record.name)
        self.event(container, "destroy")
        if volumes:
            for name in mounts.volume_names(record.mount_points, anonymous_only=True):
                try:
                    await asyncio.to_thread(self.volumes.remove, name)
                except LogshipError as err:  # in use by another container: it stays, as in dockerd
                    log.warning("kept volume %s of removed container %s: %s", name, record.short_id, err)

    # ---- attach and logs -------------------------------------------------------------------------

    def subscribe(self, container: Container, streams: frozenset[str]) -> Subscriber:
        self.event(container, "attach")
        return container.attachments.subscribe(streams)

    def unsubscribe(self, container: Container, subscriber: Subscriber) -> None:
        container.attachments.unsubscribe(subscriber)

    async def read_logs(self, container: Container, config: ReadConfig) -> AsyncGenerator[list[Message], None]:
        return await logsource.read_logs(container, config)

    async def read_log_text(self, container: Container, config: ReadConfig) -> AsyncGenerator[list[Run], None]:
        return await logsource.read_log_text(container, config)


class StartFailed(LogshipError):
    """The runtime could not start the command; carries the exit code Docker's CLI would use (125-127)."""

    status = 400

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
