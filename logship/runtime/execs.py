"""Start a process in a running container (`exec`): the daemon's side.

The process enters the container with util-linux's `nsenter` (namespaces and the fork into its pid
namespace) and `execinit.py` (root, cgroup, user, capabilities, working directory: see there). Its stdio
are pipes the daemon holds, or a new pseudo-terminal with `tty`. Like the container's own start, the
daemon never forks itself: it `Popen`s nsenter. The status FIFO in the container's state directory says
the exec worked (EOF: the command was exec'd) or why not (a JSON error line, exit code 126 or 127).

    exec-<id>.json     what execinit needs (removed once it has started)
    exec-<id>.status   execinit -> daemon, as init's status.fifo

An exec ends with its container: it lives in the container's pid namespace, which the kernel empties when
the container's pid 1 exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.asyncfd import wait_readable
from logship.runtime import spawn
from logship.runtime.statedir import INIT_JSON, write_atomically
from logship.runtime.stdio import fresh_fifo_reader

EXECINIT = Path(__file__).with_name("execinit.py")
EXIT_CANNOT_EXECUTE = 126
TIOCSPTLCK = 0x40045431  # unlock a pty's slave
TIOCGPTPEER = 0x5441  # open a pty's slave from its master (Linux 4.13+), never by path


@dataclass
class ExecSpec:
    exec_id: str
    state_dir: Path  # the container's
    container_pid: int  # host pid of the container's pid 1
    cgroup_procs: list[str]
    argv: list[str]
    env: list[str]
    workdir: str
    user: str  # "" is root; else Docker's name|uid[:group|gid], looked up in the container
    capabilities: list[int]
    tty: bool = False
    open_stdin: bool = False


class ExecStartError(Exception):
    """The command could not be started in the container; `exit_code` is the exec's (126, 127)."""

    def __init__(self, message: str, exit_code: int = EXIT_CANNOT_EXECUTE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(eq=False)
class ExecProcess:
    pid: int  # the command's host pid
    stdout_fd: int  # read end, or the pty master (stdout and stderr merged) with a tty
    stderr_fd: int | None
    stdin_fd: int | None  # write end, or the pty master; None without open_stdin
    tty: bool
    _popen: subprocess.Popen[bytes]
    _pidfd: int
    _exit: asyncio.Future[int] | None = field(default=None)

    async def wait(self) -> int:
        """The command's exit code (128+N after signal N). Any number of callers may wait."""
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._wait_once())
        return await asyncio.shield(self._exit)

    async def _wait_once(self) -> int:
        await wait_readable(self._pidfd)
        code = self._popen.wait()  # exited already: this reaps it
        # nsenter passes its child's status on: a signal becomes the same signal (a negative returncode).
        return 128 - code if code < 0 else code

    def resize(self, rows: int, cols: int) -> None:
        if not self.tty:
            raise ValueError("the exec has no terminal to resize (it was started without a tty)")
        if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
            raise ValueError(f"terminal size {rows}x{cols} is out of range (0 to 65535 rows and columns)")
        fcntl.ioctl(self.stdout_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close_stdin(self) -> None:
        """The command reads EOF on stdin (no-op with a tty)."""
        if self.stdin_fd is not None and not self.tty:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def close_fds(self) -> None:
        for fd in {self.stdout_fd, self.stderr_fd, self.stdin_fd, self._pidfd}:
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdout_fd = self._pidfd = -1
        self.stderr_fd = self.stdin_fd = None


async def start(spec: ExecSpec) -> ExecProcess:
    """Start the command; returns once it is exec'd. Raises ExecStartError."""
    nsenter = shutil.which("nsenter", path=spawn.SUPERVISOR_ENV["PATH"])
    if nsenter is None:
        raise ExecStartError("cannot exec in containers: the `nsenter` program (util-linux) is not installed")
    state_dir = spec.state_dir
    config_path = state_dir / f"exec-{spec.exec_id}.json"
    status_path = state_dir / f"exec-{spec.exec_id}.status"
    config = {
        "container_pid": spec.container_pid,
        "cgroup_procs": spec.cgroup_procs,
        "status_fifo": str(status_path),
        "argv": spec.argv,
        "env": spec.env,
        "workdir": spec.workdir,
        "user": spec.user,
        "tty": spec.tty,
        "capabilities": spec.capabilities,
        **_container_confinement(state_dir),
    }
    try:
        status_fd = fresh_fifo_reader(status_path)
    except OSError as err:
        raise ExecStartError(f"cannot prepare the exec in {state_dir}: {err.strerror}") from err
    ours: list[int] = []  # the daemon keeps these
    theirs: list[int] = []  # the process's stdio: closed here once it runs
    try:
        write_atomically(config_path, json.dumps(config), mode=0o600)  # it holds the environment
        stdin, stdout, stderr = _stdio(spec, ours, theirs)
        argv = [
            nsenter,
            f"--target={spec.container_pid}",
            *_namespaces_to_enter(spec.container_pid),
            "--root=/",  # the host's, opened before entering: execinit's Python stays reachable
            "--",
            sys.executable,
            "-I",
            "-S",
            str(EXECINIT),
            str(config_path),
        ]
        try:
            popen = subprocess.Popen(
                argv,
                cwd=state_dir,
                env=spawn.SUPERVISOR_ENV,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # the daemon's terminal and process-group signals stay away
            )
        except OSError as err:
            raise ExecStartError(f"cannot start nsenter for the exec: {err}") from err
        for fd in theirs:
            os.close(fd)
        theirs.clear()
        pidfd = os.pidfd_open(popen.pid)
        try:
            report = await spawn._await_init(status_fd, pidfd)
        except BaseException:
            popen.kill()
            os.close(pidfd)
            raise
    except BaseException:
        for fd in ours + theirs:
            os.close(fd)
        raise
    finally:
        os.close(status_fd)
        status_path.unlink(missing_ok=True)
        config_path.unlink(missing_ok=True)
    tty = spec.tty
    process = ExecProcess(
        pid=report.pid,
        stdout_fd=ours[0],
        stderr_fd=None if tty else ours[1],
        stdin_fd=(ours[0] if tty else ours[2]) if spec.open_stdin else None,
        tty=tty,
        _popen=popen,
        _pidfd=pidfd,
    )
    if report.error is not None or report.pid == 0:
        if report.timed_out:
            process.kill()
        code = await process.wait()
        process.close_fds()
        if report.error is not None:
            raise ExecStartError(report.error, report.exit_code if report.exit_code != 125 else EXIT_CANNOT_EXECUTE)
        raise ExecStartError(f"the exec's process exited with status {code} before starting the command")
    return process


def _container_pty(container_pid: int) -> tuple[int, int]:
    """A pseudo-terminal of the container's own /dev/pts (as runc makes one), so the command's `tty` names a
    device the container has; a host one if that devpts cannot be reached."""
    try:
        master = os.open(f"/proc/{container_pid}/root/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return os.openpty()
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        os.close(master)
        return os.openpty()
    return master, slave


def _namespaces_to_enter(pid: int) -> list[str]:
    """nsenter's options for the container's namespaces that are not the daemon's own. A container on the
    host's network shares the daemon's: entering it again needs CAP_SYS_ADMIN over the host's network,
    which a rootless daemon lacks (and a root one does not need)."""
    options = []
    for name, option in (("mnt", "--mount"), ("uts", "--uts"), ("ipc", "--ipc"), ("net", "--net"), ("pid", "--pid")):
        try:
            same = os.stat(f"/proc/{pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino
        except OSError:
            same = False  # let nsenter report it
        if not same:
            options.append(option)
    return options


def _container_confinement(state_dir: Path) -> dict[str, Any]:
    """What the container's init was given that an exec keeps too, as runc's exec does: the seccomp filter
    (the program compiled at start), no_new_privs, the ulimits and the added groups."""
    try:
        started = json.loads((state_dir / INIT_JSON).read_text())
    except (OSError, ValueError) as err:
        raise ExecStartError(f"cannot read the container's {state_dir / INIT_JSON}: {err}") from err
    return {key: started.get(key) for key in ("seccomp", "no_new_privs", "ulimits", "group_add") if key in started}


def _stdio(spec: ExecSpec, ours: list[int], theirs: list[int]) -> tuple[int, int, int]:
    """(stdin, stdout, stderr) for the process; fills `ours` with [stdout, stderr, stdin] (pty: [master])."""
    if spec.tty:
        master, slave = _container_pty(spec.container_pid)
        os.set_blocking(master, False)
        ours.append(master)
        theirs.append(slave)
        return slave, slave, slave
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    ours.append(out_read)
    theirs.append(out_write)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    ours.append(err_read)
    theirs.append(err_write)
    if spec.open_stdin:
        in_read, in_write = os.pipe2(os.O_CLOEXEC)
        ours.append(in_write)
        theirs.append(in_read)
    else:
        in_read = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        theirs.append(in_read)
    for fd in ours:
        os.set_blocking(fd, False)
    return in_read, out_write, err_write
