"""A started container seen from the daemon, and finding it again after a daemon restart.

`Process` signals, resizes, waits for and releases a container that `logship.runtime.spawn.start`
started; `reattach` builds the same object from the state directory alone for a restarted daemon, and
`collect_exit` reads the exit of a container that ended while the daemon was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from logship.asyncfd import wait_readable
from logship.runtime import cgroups
from logship.runtime.statedir import EXITCODE, PROCESS_JSON, RELEASE_FIFO, STDERR_FIFO, STDOUT_FIFO, write_atomically
from logship.runtime.stdio import open_fifo, reopen_stdin

EXIT_UNKNOWN = 255  # the supervisor vanished without recording an exit status
PIDFD_GETFD = 438  # the same number on x86_64 and aarch64


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    oom_killed: bool


@dataclass
class ProcessRecord:
    """process.json: what a restarted daemon needs to find a running container again."""

    supervisor_pid: int
    supervisor_start: int
    tty: bool
    open_stdin: bool
    pty_master_fd: int | None  # the fd number inside the supervisor (for pidfd_getfd)
    cgroup: cgroups.Cgroup | None
    init_pid: int = 0
    init_start: int = 0

    def save(self, state_dir: Path) -> None:
        data = {
            "supervisor_pid": self.supervisor_pid,
            "supervisor_start": self.supervisor_start,
            "tty": self.tty,
            "open_stdin": self.open_stdin,
            "pty_master_fd": self.pty_master_fd,
            "cgroup": self.cgroup.to_json() if self.cgroup else None,
            "init_pid": self.init_pid,
            "init_start": self.init_start,
        }
        write_atomically(state_dir / PROCESS_JSON, json.dumps(data))

    @classmethod
    def load(cls, state_dir: Path) -> ProcessRecord | None:
        try:
            data = json.loads((state_dir / PROCESS_JSON).read_text())
            cgroup = data.get("cgroup")
            master = data.get("pty_master_fd")
            return cls(
                supervisor_pid=int(data["supervisor_pid"]),
                supervisor_start=int(data["supervisor_start"]),
                tty=bool(data["tty"]),
                open_stdin=bool(data["open_stdin"]),
                pty_master_fd=None if master is None else int(master),
                cgroup=cgroups.Cgroup.from_json(cgroup) if cgroup else None,
                init_pid=int(data.get("init_pid", 0)),
                init_start=int(data.get("init_start", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing or damaged: nothing to reattach to


@dataclass(eq=False)
class Process:
    """A started (or re-found) container, seen from the daemon."""

    state_dir: Path
    supervisor_pid: int
    init_pid: int  # host pid of the container's pid 1 (0 if it was already gone when found)
    stdout_fd: int  # stdout FIFO read end, or the pty master (stdout and stderr merged) with a tty
    stderr_fd: int | None  # None with a tty
    stdin_fd: int | None  # stdin FIFO write end, or the pty master; None without open_stdin
    tty: bool
    cgroup: cgroups.Cgroup | None = None  # for reading usage and limits; removed by wait()
    # Set by reattach when the streams could not be recovered: the fds then read EOF at once, and the
    # daemon must tell the user why the logs stop (no silent loss). Signal and wait still work.
    output_lost: str | None = None
    _supervisor_pidfd: int = -1
    _init_pidfd: int = -1
    _popen: subprocess.Popen[bytes] | None = None
    _exit: asyncio.Future[ExitStatus] | None = None

    def signal(self, sig: int) -> None:
        """Send `sig` to the container's pid 1. A container that already ended is not an error.

        As in Docker, pid 1 only receives signals it handles, except SIGKILL.
        """
        if self._init_pidfd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._init_pidfd, sig)

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size (the container's foreground process gets SIGWINCH)."""
        if not self.tty:
            raise ValueError("the container was not started with a tty, so it has no terminal to resize")
        if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
            raise ValueError(f"terminal size {rows}x{cols} is out of range (0 to 65535 rows and columns)")
        fcntl.ioctl(self.stdout_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def wait_init(self) -> None:
        """Resolves once the container's pid 1 has exited (at once when it was already gone when found).
        The supervisor may still be waiting to be released (see `release`)."""
        if self._init_pidfd >= 0:
            await wait_readable(self._init_pidfd)

    def release(self) -> None:
        """Tell a supervisor that holds the output FIFOs after the container ended that every byte has
        been read (moved to the spool): it may exit now. Harmless when it is gone or does not wait."""
        try:
            fd = os.open(self.state_dir / RELEASE_FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            if err.errno in (errno.ENXIO, errno.ENOENT):  # no supervisor reads it (gone, or a pty container)
                return
            raise
        try:
            os.write(fd, b"\n")
        except BlockingIOError:
            pass  # full of earlier releases: it will read one of them
        finally:
            os.close(fd)

    def close_stdin(self) -> None:
        """The container reads EOF on stdin (no-op with a tty: the terminal stays open)."""
        if self.stdin_fd is not None and not self.tty:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    @property
    def closed(self) -> bool:
        """True after close_fds(): the object can no longer signal or wait."""
        return self._supervisor_pidfd < 0

    async def wait(self) -> ExitStatus:
        """Resolves when the supervisor has exited: the exit code, whether the kernel OOM-killed in the
        container, and the cgroup removed. Any number of callers may wait; one does the work.

        With `ContainerSpec.hold_output` the supervisor outlives the container until `release()` is
        called (once the output is drained): call it, or this never resolves."""
        if self._exit is None:
            if self.closed:
                raise RuntimeError("cannot wait: close_fds() was called before the container ended")
            self._exit = asyncio.ensure_future(self._wait_once())
        return await asyncio.shield(self._exit)

    async def _wait_once(self) -> ExitStatus:
        await wait_readable(self._supervisor_pidfd)
        if self._popen is not None:
            self._popen.wait()  # already exited: this only reaps it
        else:
            with contextlib.suppress(ChildProcessError):  # not our child after a daemon restart
                os.waitpid(self.supervisor_pid, os.WNOHANG)
        return await collect_exit(self.state_dir)

    def close_fds(self) -> None:
        """Close every fd this object holds (streams and pidfds). The container is not affected."""
        for fd in {self.stdout_fd, self.stderr_fd, self.stdin_fd, self._supervisor_pidfd, self._init_pidfd}:
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdout_fd = self._supervisor_pidfd = self._init_pidfd = -1
        self.stderr_fd = self.stdin_fd = None


def reattach(state_dir: Path) -> Process | None:
    """For a restarted daemon: the running container of `state_dir`, or None if it has ended.

    A supervisor counts as running only if its pid AND start time match process.json (pids get reused).
    The output FIFOs are re-opened (what was written meanwhile is still buffered: the supervisor kept
    them open); a pty master is fetched back from the supervisor with pidfd_getfd. If that fails, the
    Process is still returned, with `output_lost` saying why.
    """
    state_dir = state_dir.resolve()
    record = ProcessRecord.load(state_dir)
    if record is None:
        return None
    supervisor_pidfd = open_pidfd(record.supervisor_pid, record.supervisor_start)
    if supervisor_pidfd < 0:
        return None
    init_pid, init_start = record.init_pid, record.init_start
    if not init_pid:  # the daemon died before init reported: init is the supervisor's only child
        init_pid = _only_child(record.supervisor_pid)
        init_start = (start_time(init_pid) or 0) if init_pid else 0
    init_pidfd = open_pidfd(init_pid, init_start) if init_pid else -1
    output_lost = None
    try:
        stdout, stderr, stdin = _recover_streams(state_dir, record, supervisor_pidfd)
    except OSError as err:
        # The container must stay under control (signal, wait, exit code) even when its output cannot
        # be had back, e.g. where Yama's ptrace_scope=3 refuses pidfd_getfd even to root.
        output_lost = f"cannot recover the container's output after a daemon restart: {err}"
        stdout = os.open(os.devnull, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # reads as EOF at once
        stderr = None if record.tty else os.open(os.devnull, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        stdin = None
    return Process(
        state_dir=state_dir,
        supervisor_pid=record.supervisor_pid,
        init_pid=init_pid if init_pidfd >= 0 else 0,
        stdout_fd=stdout,
        stderr_fd=stderr,
        stdin_fd=stdin,
        tty=record.tty,
        cgroup=record.cgroup,
        output_lost=output_lost,
        _supervisor_pidfd=supervisor_pidfd,
        _init_pidfd=init_pidfd,
    )


def _recover_streams(
    state_dir: Path, record: ProcessRecord, supervisor_pidfd: int
) -> tuple[int, int | None, int | None]:
    """(stdout, stderr, stdin) of a running container, for a daemon that lost its own fds."""
    if record.tty:
        if record.pty_master_fd is None:
            raise OSError(errno.EINVAL, f"{state_dir / PROCESS_JSON} has a tty but no pty master fd")
        master = _pidfd_getfd(supervisor_pidfd, record.pty_master_fd)
        os.set_blocking(master, False)
        return master, None, (master if record.open_stdin else None)
    stdout = open_fifo(state_dir / STDOUT_FIFO, os.O_RDONLY)
    try:
        stderr = open_fifo(state_dir / STDERR_FIFO, os.O_RDONLY)
    except OSError:
        os.close(stdout)
        raise
    return stdout, stderr, (reopen_stdin(state_dir) if record.open_stdin else None)


def live_supervisors(state_dirs: Iterable[Path]) -> list[int]:
    """The pids of the supervisors still running for these state directories (pid and start time checked).
    A rootless daemon that restarts joins their user namespace (logship.runtime.userns)."""
    found = []
    for state_dir in state_dirs:
        record = ProcessRecord.load(state_dir)
        if record is not None and open_pidfd_alive(record.supervisor_pid, record.supervisor_start):
            found.append(record.supervisor_pid)
    return found


def read_exit_code(state_dir: Path) -> int | None:
    """The exit code the supervisor recorded, or None if it has not (yet) written one."""
    try:
        text = (state_dir / EXITCODE).read_text()
    except OSError:
        return None
    if not text.endswith("\n"):  # not written completely: the supervisor died mid-write
        return None
    try:
        return int(text)
    except ValueError:
        return None


async def collect_exit(state_dir: Path) -> ExitStatus:
    """After the supervisor is gone: its recorded exit code, the OOM flag, and the cgroup removed.

    For containers that ended while the daemon was away (reattach returned None).
    """
    record = ProcessRecord.load(state_dir)
    if record is not None and open_pidfd_alive(record.supervisor_pid, record.supervisor_start):
        raise RuntimeError(f"the container of {state_dir} is still running (supervisor {record.supervisor_pid})")
    code = read_exit_code(state_dir)
    oom_killed = False
    if record is not None and record.cgroup is not None:
        oom_killed = record.cgroup.oom_kills() > 0
        await remove_cgroup(record.cgroup)
    return ExitStatus(EXIT_UNKNOWN if code is None else code, oom_killed)


# --- small helpers ------------------------------------------------------------------------------------


async def remove_cgroup(cgroup: cgroups.Cgroup) -> None:
    """Best effort: the exit status matters more than an empty directory. The kernel can lag a moment
    behind the last exit, so a busy cgroup is retried briefly, then left (the next start replaces it)."""
    for attempt in range(40):
        try:
            if not cgroup.remove():
                return
        except OSError:
            return
        await asyncio.sleep(0.01 * (attempt + 1))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields from 3 (state) on; comm may contain anything


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def open_pidfd(pid: int, start_time: int) -> int:
    """A pidfd for `pid` if it is still the process that started at `start_time` and not a zombie."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return -1
    fields = _stat_fields(pid)  # read after pidfd_open: the pidfd pins the identity we check
    if fields is None or int(fields[19]) != start_time or fields[0] == "Z":
        os.close(pidfd)
        return -1
    return pidfd


def open_pidfd_alive(pid: int, start_time: int) -> bool:
    pidfd = open_pidfd(pid, start_time)
    if pidfd < 0:
        return False
    os.close(pidfd)
    return True


def _only_child(pid: int) -> int:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    return int(children[0]) if len(children) == 1 else 0


def _pidfd_getfd(pidfd: int, target_fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.syscall(ctypes.c_long(PIDFD_GETFD), ctypes.c_int(pidfd), ctypes.c_int(target_fd), ctypes.c_uint(0)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"pidfd_getfd of fd {target_fd}: {os.strerror(code)}")
    return fd
