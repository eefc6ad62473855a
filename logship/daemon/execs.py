"""`exec`: processes started in a running container, as dockerd keeps them.

An exec is created (its command, environment, user, working directory, tty; checked), then started once.
Its output is read by the daemon whether or not a client is attached (a detached exec must never block on
a full pipe), and handed to attached clients through the same `Attachments` as a container's. When the
command ends, its exit code is recorded (before attached streams close, so the docker CLI's inspect right
after sees it) and `exec_die` is published. Start failures get dockerd's exit codes: 127 when the command
is not found, 126 when it cannot be executed or the exec cannot be set up (user, working directory).

Ended execs are kept for inspection for EXEC_KEEP_S, and all of a container's go when it is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logship.asyncfd import wait_readable
from logship.daemon import create
from logship.daemon.attach import Attachments, StdinPipe
from logship.errors import Conflict, InvalidParameter, NotFound
from logship.pipeline.message import STDERR, STDOUT
from logship.runtime import capabilities, execs

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager
    from logship.daemon.handle import Container

log = logging.getLogger("logship.exec")

EXEC_KEEP_S = 600.0  # an ended exec stays inspectable this long
OUTPUT_GRACE_S = 1.0  # after the command exits, how long its output may stay open (a background child)
READ_SIZE = 1 << 16


@dataclass(eq=False)
class Exec:
    id: str
    container: Container
    argv: list[str]
    env: list[str]
    user: str
    workdir: str
    tty: bool
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    privileged: bool
    detach_keys: str
    console_size: tuple[int, int] | None = None
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    ended_at: float = 0.0
    process: execs.ExecProcess | None = None
    stdin: StdinPipe | None = None
    attachments: Attachments = field(default_factory=Attachments)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # exit recorded, output closed

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def to_api(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": self.argv[0],
                "arguments": self.argv[1:],
                "privileged": self.privileged,
                **({"user": self.user} if self.user else {}),
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container.id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


class Execs:
    def __init__(self, manager: ContainerManager) -> None:
        self._manager = manager
        self._execs: dict[str, Exec] = {}

    def find(self, exec_id: str) -> Exec:
        self._forget_old()
        found = self._execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return found

    def of_container(self, container: Container, running_only: bool = True) -> list[Exec]:
        return [e for e in self._execs.values() if e.container is container and (e.running or not running_only)]

    def forget_container(self, container: Container) -> None:
        for exec_ in self.of_container(container, running_only=False):
            del self._execs[exec_.id]

    def _forget_old(self) -> None:
        horizon = time.monotonic() - EXEC_KEEP_S
        for exec_id in [i for i, e in self._execs.items() if e.ended_at and e.ended_at < horizon]:
            del self._execs[exec_id]

    def create(self, container: Container, body: dict[str, Any]) -> Exec:
        _check_running(container)
        argv = create.strings_field(body, "Cmd")
        if not argv:
            raise InvalidParameter("No exec command specified")
        env = create.strings_field(body, "Env") or []
        for entry in env:
            if "=" not in entry or entry.startswith("="):
                raise InvalidParameter(f"invalid environment variable: {entry!r} (use KEY=value)")
        workdir = create.string_field(body, "WorkingDir")
        if workdir and not workdir.startswith("/"):
            raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        exec_ = Exec(
            id=secrets.token_hex(32),
            container=container,
            argv=argv,
            env=env,
            user=create.string_field(body, "User"),
            workdir=workdir,
            tty=bool(body.get("Tty")),
            attach_stdin=bool(body.get("AttachStdin")),
            attach_stdout=bool(body.get("AttachStdout")),
            attach_stderr=bool(body.get("AttachStderr")),
            privileged=bool(body.get("Privileged")),
            detach_keys=create.string_field(body, "DetachKeys"),
            console_size=_console_size(body.get("ConsoleSize")),
        )
        self._forget_old()
        self._execs[exec_.id] = exec_
        self._manager.event(container, f"exec_create: {exec_.command}", execID=exec_.id)
        return exec_

    def check_startable(self, exec_: Exec) -> None:
        if exec_.running:
            raise Conflict(f"Exec command {exec_.id} is already running")
        if exec_.started:
            raise Conflict(f"Exec command {exec_.id} has already run")
        _check_running(exec_.container)

    async def start(self, exec_: Exec, tty: bool | None = None, console_size: object = None) -> None:
        """Start the command (raises ExecStartError with the exit code recorded); its output flows to
        `exec_.attachments` until it ends."""
        self.check_startable(exec_)
        container = exec_.container
        process = container.process
        assert process is not None  # _check_running
        exec_.started = True
        if tty is not None:
            exec_.tty = tty
        size = _console_size(console_size) or exec_.console_size
        record = container.record
        host_config = record.host_config
        if exec_.privileged:
            kept = list(range(len(capabilities.known_capabilities())))
        else:
            kept = capabilities.for_container(host_config.get("CapAdd") or [], host_config.get("CapDrop") or [])
        spec = execs.ExecSpec(
            exec_id=exec_.id,
            state_dir=container.dir.resolve(),
            container_pid=process.init_pid,
            cgroup_procs=process.cgroup.procs_files() if process.cgroup is not None else [],
            argv=exec_.argv,
            env=create.exec_env(record, exec_.env, exec_.tty),
            workdir=exec_.workdir or record.config.get("WorkingDir") or "/",
            user=exec_.user or record.config.get("User") or "",
            capabilities=kept,
            tty=exec_.tty,
            open_stdin=exec_.attach_stdin,
        )
        self._manager.event(container, f"exec_start: {exec_.command}", execID=exec_.id)
        try:
            started = await execs.start(spec)
        except execs.ExecStartError as err:
            exec_.exit_code = err.exit_code
            exec_.ended_at = time.monotonic()
            exec_.attachments.close()
            exec_.done.set()
            log.info("exec in container %s failed to start: %s", record.short_id, err.message)
            raise
        exec_.process = started
        exec_.pid = started.pid
        exec_.running = True
        if size is not None and exec_.tty:
            with contextlib.suppress(OSError, ValueError):
                started.resize(*size)
        if started.stdin_fd is not None:
            exec_.stdin = StdinPipe(started.stdin_fd, on_eof=started.close_stdin)
        asyncio.get_running_loop().create_task(self._run(exec_, started), name=f"exec-{exec_.id[:12]}")

    async def _run(self, exec_: Exec, process: execs.ExecProcess) -> None:
        streams = [(process.stdout_fd, STDOUT)]
        if process.stderr_fd is not None:
            streams.append((process.stderr_fd, STDERR))
        copiers = [asyncio.create_task(_copy(fd, name, exec_.attachments)) for fd, name in streams]
        try:
            code = await process.wait()
        except Exception:
            log.exception("exec %s: waiting for its exit failed", exec_.id[:12])
            code = execs.EXIT_CANNOT_EXECUTE
        _, pending = await asyncio.wait(copiers, timeout=OUTPUT_GRACE_S)
        for task in pending:  # a background child holds the output open: what it wrote so far was sent
            task.cancel()
        exec_.exit_code = code
        exec_.running = False
        exec_.ended_at = time.monotonic()
        exec_.stdin = None
        process.close_fds()
        self._manager.event(exec_.container, "exec_die", execID=exec_.id, exitCode=str(code))
        exec_.attachments.close()
        exec_.done.set()

    def resize(self, exec_: Exec, height: int, width: int) -> None:
        if exec_.process is None or not exec_.running:
            raise Conflict(f"Exec {exec_.id} is not running")
        if exec_.tty:
            try:
                exec_.process.resize(height, width)
            except ValueError as err:
                raise InvalidParameter(str(err)) from None


def _check_running(container: Container) -> None:
    state = container.record.state
    if state.restarting:
        raise Conflict(f"Container {container.id} is restarting, wait until the container is running")
    if not state.running or container.process is None or not container.process.init_pid:
        raise Conflict(f"Container {container.id} is not running")


def _console_size(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise InvalidParameter(f"invalid ConsoleSize: {value!r} (expected [height, width])")
    return (value[0], value[1]) if value[0] or value[1] else None


async def _copy(fd: int, stream: str, attachments: Attachments) -> None:
    """An output fd to the attached clients until EOF (a pty master reports EIO once the terminal closes)."""
    while True:
        try:
            chunk = os.read(fd, READ_SIZE)
        except BlockingIOError:
            await wait_readable(fd)
            continue
        except OSError as err:
            if err.errno == errno.EIO:
                return
            raise
        if not chunk:
            return
        await attachments.publish(stream, chunk)
