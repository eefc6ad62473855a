"""Start containers and find them again after a daemon restart: the daemon's side of the runtime.

Per container, one resident process besides the container's own, and it is not Python:

    unshare --pid -- sh supervisor.sh    the supervisor (unshare execs sh): holds the output read ends,
      │                                  waits, writes `exitcode`
      └─ python init.py                  pid 1 of the new pid namespace: sets up, then execs the command
           = the command                 (init replaced itself)

The daemon never forks itself: it `Popen`s the supervisor (no preexec_fn). Everything it needs later
is in the state directory, so a restarted daemon can `reattach`:

    init.json      what init needs (written by the daemon before start)
    process.json   supervisor and init pids with start times, pty master fd, cgroup (daemon, after start)
    status.fifo    init -> daemon: `{"pid": ...}`, then EOF on exec or an error line
    stdout.fifo, stderr.fifo, stdin.fifo    the container's streams (no FIFOs with a tty: a pty instead)
    release.fifo   daemon -> supervisor: the output FIFOs are drained, stop holding them (see release())
    spool/         the daemon's: output between the FIFOs and the log drivers (logship.pipeline.spool)
    exitcode       the command's exit status, written by the supervisor when it ends
    supervisor.log what sh, unshare or Python printed outside the container (start failures)
    hostname, hosts, resolv.conf            bind-mounted into the container's /etc
    diff/, work/, merged/                   the container's private overlay layer and its mount point

All fds handed to the daemon are non-blocking. A pty master reports EIO once the container side is
closed: that is its EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.asyncfd import wait_readable
from logship.errors import InvalidParameter
from logship.runtime import capabilities, cgroups
from logship.runtime.capabilities import validate_capabilities

__all__ = [
    "ContainerSpec",
    "ExitStatus",
    "Process",
    "StartError",
    "collect_exit",
    "read_exit_code",
    "reattach",
    "start",
    "validate_capabilities",
]

SUPERVISOR = Path(__file__).with_name("supervisor.sh")
INIT = Path(__file__).with_name("init.py")

INIT_JSON = "init.json"
PROCESS_JSON = "process.json"
STATUS_FIFO = "status.fifo"
STDOUT_FIFO = "stdout.fifo"
STDERR_FIFO = "stderr.fifo"
STDIN_FIFO = "stdin.fifo"
RELEASE_FIFO = "release.fifo"  # daemon -> supervisor: every byte of the output FIFOs is spooled, you may go
# The fds supervisor.sh uses itself (release.fifo, and the FIFO write ends it opens for init). No fd the
# daemon passes to it may have these numbers, so passed fds are moved to 10 and above.
SUPERVISOR_STDOUT_FD = 8
SUPERVISOR_STDERR_FD = 9
LOWEST_PASSED_FD = 10
EXITCODE = "exitcode"
SUPERVISOR_LOG = "supervisor.log"

EXIT_RUNTIME_FAILURE = 125
EXIT_UNKNOWN = 255  # the supervisor vanished without recording an exit status
STARTUP_TIMEOUT = 60.0  # init has done nothing for this long: something is badly wrong
F_SETPIPE_SZ = 1031
PIDFD_GETFD = 438  # the same number on x86_64 and aarch64
SUPERVISOR_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_OVERLAY_UNSAFE = re.compile(r"[,:\\]")  # overlay's option syntax cannot carry these in paths

DOCKER_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass
class ContainerSpec:
    """Everything needed to start a container; plain data."""

    container_id: str
    state_dir: Path
    image_rootfs: Path
    argv: list[str]
    env: list[str] = field(default_factory=list)  # "KEY=value"; PATH is searched for argv[0]
    workdir: str = "/"
    hostname: str = ""  # "" means the short id, as Docker does
    tty: bool = False
    open_stdin: bool = False
    network: str = "none"  # "none" (own netns with lo up) or "host"
    memory: int = 0
    pids_limit: int = 0
    nano_cpus: int = 0
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    # FIFOs only: the supervisor keeps holding the output FIFOs after the container ended until
    # `Process.release()` (the daemon calls it once it has read them to EOF). Without it a container that
    # ends while the daemon is away loses what was still in its pipes.
    hold_output: bool = False


class StartError(Exception):
    """The container did not start. 125: runtime failure; 126/127: the command could not be executed."""

    def __init__(self, message: str, exit_code: int = EXIT_RUNTIME_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    oom_killed: bool


@dataclass
class _Record:
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
        _write_atomically(state_dir / PROCESS_JSON, json.dumps(data))

    @classmethod
    def load(cls, state_dir: Path) -> _Record | None:
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


async def start(spec: ContainerSpec) -> Process:
    """Start the container; returns once its command is exec'd. Raises StartError."""
    state_dir = spec.state_dir.resolve()
    config = _init_config(spec, state_dir)
    try:
        cgroup = cgroups.create(spec.container_id, cgroups.Limits(spec.memory, spec.pids_limit, spec.nano_cpus))
    except cgroups.CgroupError as err:
        raise StartError(str(err)) from err
    except OSError as err:
        raise StartError(f"cannot set up the container's cgroup: {err}") from err
    config["cgroup_procs"] = cgroup.procs_files()
    try:
        _prepare_state_dir(state_dir, spec)
        status_fd = _fresh_fifo_reader(state_dir / STATUS_FIFO)
        try:
            streams = _open_streams(state_dir, spec.tty, spec.open_stdin)
        except BaseException:
            os.close(status_fd)
            raise
        config["stdio_fds"] = list(streams.child_stdio())
        _write_atomically(state_dir / INIT_JSON, json.dumps(config), mode=0o600)  # it holds the env
    except OSError as err:
        cgroup.remove()
        raise StartError(f"cannot prepare the container's state directory {state_dir}: {err}") from err

    try:
        popen = _spawn_supervisor(state_dir, streams, spec.hold_output)
    except BaseException:
        streams.close_all()
        os.close(status_fd)
        cgroup.remove()
        raise
    streams.close_child_ends()
    record = _Record(
        supervisor_pid=popen.pid,
        supervisor_start=_start_time(popen.pid) or 0,
        tty=spec.tty,
        open_stdin=spec.open_stdin,
        pty_master_fd=streams.pty_master,
        cgroup=cgroup,
    )
    process = Process(
        state_dir=state_dir,
        supervisor_pid=popen.pid,
        init_pid=0,
        stdout_fd=streams.stdout,
        stderr_fd=streams.stderr,
        stdin_fd=streams.stdin,
        tty=spec.tty,
        cgroup=cgroup,
        _supervisor_pidfd=os.pidfd_open(popen.pid),
        _popen=popen,
    )
    try:
        record.save(state_dir)  # first thing: a daemon dying from here on can find the container again
        report = await _await_init(status_fd, process._supervisor_pidfd)
    except BaseException:
        await _abandon(process, init_is_exiting=False)
        raise
    finally:
        os.close(status_fd)
    if report.pid:
        process.init_pid = report.pid
        process._init_pidfd = _open_pidfd(report.pid, report.start_time)
    if report.error is not None:
        await _abandon(process, init_is_exiting=not report.timed_out)
        raise StartError(report.error, report.exit_code)
    if report.pid == 0:  # the chain died before init could say anything
        exit_status = await _abandon(process, init_is_exiting=True)
        detail = _read_or(state_dir / SUPERVISOR_LOG, "").strip()
        raise StartError(
            f"container init exited with status {exit_status.exit_code} before starting"
            + (f": {detail}" if detail else "")
        )
    record.init_pid, record.init_start = report.pid, report.start_time
    try:
        record.save(state_dir)
    except BaseException:
        await _abandon(process, init_is_exiting=False)
        raise
    return process


def reattach(state_dir: Path) -> Process | None:
    """For a restarted daemon: the running container of `state_dir`, or None if it has ended.

    A supervisor counts as running only if its pid AND start time match process.json (pids get reused).
    The output FIFOs are re-opened (what was written meanwhile is still buffered: the supervisor kept
    them open); a pty master is fetched back from the supervisor with pidfd_getfd. If that fails, the
    Process is still returned, with `output_lost` saying why.
    """
    state_dir = state_dir.resolve()
    record = _Record.load(state_dir)
    if record is None:
        return None
    supervisor_pidfd = _open_pidfd(record.supervisor_pid, record.supervisor_start)
    if supervisor_pidfd < 0:
        return None
    init_pid, init_start = record.init_pid, record.init_start
    if not init_pid:  # the daemon died before init reported: init is the supervisor's only child
        init_pid = _only_child(record.supervisor_pid)
        init_start = (_start_time(init_pid) or 0) if init_pid else 0
    init_pidfd = _open_pidfd(init_pid, init_start) if init_pid else -1
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


def _recover_streams(state_dir: Path, record: _Record, supervisor_pidfd: int) -> tuple[int, int | None, int | None]:
    """(stdout, stderr, stdin) of a running container, for a daemon that lost its own fds."""
    if record.tty:
        if record.pty_master_fd is None:
            raise OSError(errno.EINVAL, f"{state_dir / PROCESS_JSON} has a tty but no pty master fd")
        master = _pidfd_getfd(supervisor_pidfd, record.pty_master_fd)
        os.set_blocking(master, False)
        return master, None, (master if record.open_stdin else None)
    stdout = _open_fifo(state_dir / STDOUT_FIFO, os.O_RDONLY)
    try:
        stderr = _open_fifo(state_dir / STDERR_FIFO, os.O_RDONLY)
    except OSError:
        os.close(stdout)
        raise
    return stdout, stderr, (_reopen_stdin(state_dir) if record.open_stdin else None)


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
    record = _Record.load(state_dir)
    if record is not None and _open_pidfd_alive(record.supervisor_pid, record.supervisor_start):
        raise RuntimeError(f"the container of {state_dir} is still running (supervisor {record.supervisor_pid})")
    code = read_exit_code(state_dir)
    oom_killed = False
    if record is not None and record.cgroup is not None:
        oom_killed = record.cgroup.oom_kills() > 0
        await _remove_cgroup(record.cgroup)
    return ExitStatus(EXIT_UNKNOWN if code is None else code, oom_killed)


# --- start, step by step ------------------------------------------------------------------------------


def _init_config(spec: ContainerSpec, state_dir: Path) -> dict[str, Any]:
    """Check the spec and turn it into init.json (without the cgroup, which comes later)."""
    if not _ID.match(spec.container_id):
        raise StartError(f"invalid container id {spec.container_id!r}: use letters, digits, '_', '.', '-'")
    if not spec.argv:
        raise StartError("No command specified")
    if spec.network not in ("none", "host"):
        raise StartError(f'network mode "{spec.network}" is not supported: use "none" or "host"')
    if not spec.workdir.startswith("/"):
        raise StartError(f"the working directory '{spec.workdir}' is invalid, it needs to be an absolute path")
    hostname = spec.hostname or spec.container_id[:12]
    if len(hostname.encode()) > 64:
        raise StartError(f"hostname {hostname!r} is longer than the kernel's 64 bytes")
    image_rootfs = spec.image_rootfs.resolve()
    if not image_rootfs.is_dir():
        raise StartError(f"image root filesystem {image_rootfs} is not a directory")
    for path in (image_rootfs, state_dir):
        if _OVERLAY_UNSAFE.search(str(path)):
            raise StartError(f"path {path} contains ',', ':' or '\\', which overlay mounts cannot take")
    try:
        caps = capabilities.for_container(spec.cap_add, spec.cap_drop)
        cgroups.validate_limits(cgroups.Limits(spec.memory, spec.pids_limit, spec.nano_cpus))
    except InvalidParameter as err:
        raise StartError(str(err)) from err
    return {
        "state_dir": str(state_dir),
        "image_rootfs": str(image_rootfs),
        "status_fifo": str(state_dir / STATUS_FIFO),
        "argv": list(spec.argv),
        "env": list(spec.env),
        "workdir": spec.workdir,
        "hostname": hostname,
        "tty": spec.tty,
        "network": spec.network,
        "capabilities": caps,
    }


def _prepare_state_dir(state_dir: Path, spec: ContainerSpec) -> None:
    for name in ("diff", "work", "merged"):
        (state_dir / name).mkdir(parents=True, exist_ok=True)
    for name in (EXITCODE, PROCESS_JSON):  # leftovers of a previous run of the same container
        (state_dir / name).unlink(missing_ok=True)
    hostname = spec.hostname or spec.container_id[:12]
    _write_atomically(state_dir / "hostname", hostname + "\n")
    hosts = _read_or(Path("/etc/hosts"), DOCKER_HOSTS) if spec.network == "host" else DOCKER_HOSTS
    _write_atomically(state_dir / "hosts", hosts)
    _write_atomically(state_dir / "resolv.conf", _read_or(Path("/etc/resolv.conf"), ""))


@dataclass
class _Streams:
    """The fds of one start: the daemon keeps some, the supervisor gets others."""

    stdout: int  # daemon: FIFO read end or pty master
    stderr: int | None
    stdin: int | None
    child_stdin: int  # the numbers init finds the container's stdio under (init.json's stdio_fds)
    child_stdout: int
    child_stderr: int
    held: tuple[int, ...]  # inherited by the supervisor and kept for the container's whole life
    child_only: tuple[int, ...]  # passed on to init; the daemon closes its copies once the supervisor runs
    pty_master: int | None = None

    def child_stdio(self) -> tuple[int, int, int]:
        return (self.child_stdin, self.child_stdout, self.child_stderr)

    def close_child_ends(self) -> None:
        for fd in self.child_only:
            os.close(fd)

    def close_all(self) -> None:
        self.close_child_ends()
        for fd in {self.stdout, self.stderr, self.stdin}:
            if fd is not None:
                os.close(fd)


def _open_streams(state_dir: Path, tty: bool, open_stdin: bool) -> _Streams:
    """Every fd is at LOWEST_PASSED_FD or above: Popen puts the supervisor's log on 0/1/2 and the supervisor
    uses 7-9 itself; neither may clobber ours."""
    opened: list[int] = []

    def keep(fd: int) -> int:
        fd = _above_low_fds(fd)
        opened.append(fd)
        return fd

    try:
        return _open_streams_into(keep, state_dir, tty, open_stdin)
    except BaseException:
        for fd in opened:  # failed halfway (EMFILE, a vanished state dir): close what was opened
            os.close(fd)
        raise


def _open_streams_into(keep: Callable[[int], int], state_dir: Path, tty: bool, open_stdin: bool) -> _Streams:
    if tty:
        master, slave = (keep(fd) for fd in os.openpty())  # both non-inheritable
        os.set_blocking(master, False)
        return _Streams(
            stdout=master,
            stderr=None,
            stdin=master if open_stdin else None,
            child_stdin=slave,
            child_stdout=slave,
            child_stderr=slave,
            held=(master,),
            child_only=(slave,),
            pty_master=master,
        )
    release = state_dir / RELEASE_FIFO
    release.unlink(missing_ok=True)
    os.mkfifo(release, 0o600)
    stdout_read = keep(_fresh_fifo_reader(state_dir / STDOUT_FIFO))
    stderr_read = keep(_fresh_fifo_reader(state_dir / STDERR_FIFO))
    for fd in (stdout_read, stderr_read):
        _enlarge_pipe(fd)
    # The write ends are opened by the supervisor for init alone (see supervisor.sh), so that the daemon
    # reads EOF once the container's processes are gone although the supervisor still holds read ends.
    if open_stdin:
        stdin_read = keep(_fresh_fifo_reader(state_dir / STDIN_FIFO))
        stdin_write = keep(os.open(state_dir / STDIN_FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        os.set_blocking(stdin_read, True)  # the container's reads must block
        stdin: int | None = stdin_write
    else:
        stdin_read = keep(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        stdin = None
    return _Streams(
        stdout=stdout_read,
        stderr=stderr_read,
        stdin=stdin,
        child_stdin=stdin_read,
        child_stdout=SUPERVISOR_STDOUT_FD,
        child_stderr=SUPERVISOR_STDERR_FD,
        held=(stdout_read, stderr_read),
        child_only=(stdin_read,),
    )


def _spawn_supervisor(state_dir: Path, streams: _Streams, hold_output: bool) -> subprocess.Popen[bytes]:
    mode = "tty" if streams.pty_master is not None else ("fifo-held" if hold_output else "fifo")
    unshare = shutil.which("unshare", path=SUPERVISOR_ENV["PATH"])
    if unshare is None:
        raise StartError("cannot start containers: the `unshare` program (util-linux) is not installed")
    if not sys.executable:
        raise StartError("cannot start containers: the path of the Python interpreter is unknown")
    log = os.open(state_dir / SUPERVISOR_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        return subprocess.Popen(
            [unshare, "--pid", "--", "/bin/sh", str(SUPERVISOR), sys.executable, str(INIT), mode],
            cwd=state_dir,
            env=SUPERVISOR_ENV,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=tuple(dict.fromkeys(streams.held + streams.child_only)),
            start_new_session=True,  # terminal and process-group signals of the daemon stay away
        )
    except OSError as err:
        raise StartError(f"cannot start the container's supervisor: {err}") from err
    finally:
        os.close(log)


@dataclass
class _InitReport:
    pid: int = 0
    start_time: int = 0
    error: str | None = None
    exit_code: int = EXIT_RUNTIME_FAILURE
    timed_out: bool = False


async def _await_init(status_fd: int, supervisor_pidfd: int) -> _InitReport:
    """Read init's status lines until EOF (exec'd or failed) or until the supervisor is gone."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    received = bytearray()

    def on_status() -> None:
        try:
            chunk = os.read(status_fd, 65536)
        except BlockingIOError:
            return
        if chunk:
            received.extend(chunk)
        elif not finished.done():
            finished.set_result(None)  # EOF: init exec'd (close-on-exec) or exited

    def on_supervisor_exit() -> None:
        if not finished.done():
            finished.set_result(None)

    loop.add_reader(status_fd, on_status)
    loop.add_reader(supervisor_pidfd, on_supervisor_exit)
    try:
        await asyncio.wait_for(finished, STARTUP_TIMEOUT)
    except TimeoutError:
        return _InitReport(
            error=f"container init did not finish starting within {STARTUP_TIMEOUT:.0f}s", timed_out=True
        )
    finally:
        loop.remove_reader(status_fd)
        loop.remove_reader(supervisor_pidfd)
    received.extend(_drain_bytes(status_fd))  # lines written just before the supervisor exited
    report = _InitReport()
    for line in received.splitlines():
        try:
            message = json.loads(line)
            if "pid" in message:
                report.pid, report.start_time = int(message["pid"]), int(message["start_time"])
            if "error" in message:
                report.error, report.exit_code = str(message["error"]), int(message["exit_code"])
        except (ValueError, TypeError, KeyError):
            report.error = f"container init sent an unreadable status line: {line[:200]!r}"
    return report


async def _abandon(process: Process, init_is_exiting: bool) -> ExitStatus:
    """A start that failed: make sure the container is gone, reap, clean up, close the fds.

    When init reported a failure (or never started), the supervisor is already on its way out and is
    left to record the exit status. Otherwise init is killed, and if that is impossible (its pid is
    unknown) or the supervisor lingers, the supervisor is killed: init dies with it (parent-death signal).
    """
    if not init_is_exiting:
        process.signal(signal.SIGKILL)
    process.release()  # a failed start has no output worth draining: the supervisor need not wait for us
    if init_is_exiting or process._init_pidfd >= 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), 10)
    if process._exit is None or not process._exit.done():
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(process._supervisor_pidfd, signal.SIGKILL)
    exit_status = await process.wait()
    process.close_fds()
    return exit_status


# --- small helpers ------------------------------------------------------------------------------------


async def _remove_cgroup(cgroup: cgroups.Cgroup) -> None:
    """Best effort: the exit status matters more than an empty directory. The kernel can lag a moment
    behind the last exit, so a busy cgroup is retried briefly, then left (the next start replaces it)."""
    for attempt in range(40):
        try:
            if not cgroup.remove():
                return
        except OSError:
            return
        await asyncio.sleep(0.01 * (attempt + 1))


def _fresh_fifo_reader(path: Path) -> int:
    """A new FIFO (an old one may still have a reader of a previous run), opened for reading."""
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)
    return _above_low_fds(_open_fifo(path, os.O_RDONLY))


def _above_low_fds(fd: int) -> int:
    """Move an fd to LOWEST_PASSED_FD or above: below are the supervisor's own (0-2: its log, 7-9: see
    supervisor.sh); a daemon started with closed stdio even gets 0-2 from open()."""
    if fd >= LOWEST_PASSED_FD:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, LOWEST_PASSED_FD)
    os.close(fd)
    return moved


def _open_fifo(path: Path, mode: int) -> int:
    return os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC)


def _reopen_stdin(state_dir: Path) -> int | None:
    try:
        return _open_fifo(state_dir / STDIN_FIFO, os.O_WRONLY)
    except OSError as err:
        if err.errno in (errno.ENXIO, errno.ENOENT):  # the container no longer reads its stdin
            return None
        raise


def _enlarge_pipe(fd: int) -> None:
    """As large as the system allows (pipe-max-size): the container blocks less while we are busy."""
    try:
        size = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except (OSError, ValueError):
        pass  # keep the default size; the container just blocks sooner


def _drain_bytes(fd: int, limit: int = 1 << 16) -> bytes:
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = os.read(fd, limit - len(data))
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields from 3 (state) on; comm may contain anything


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _open_pidfd(pid: int, start_time: int) -> int:
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


def _open_pidfd_alive(pid: int, start_time: int) -> bool:
    pidfd = _open_pidfd(pid, start_time)
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


def _read_or(path: Path, default: str) -> str:
    try:
        return path.read_text()
    except OSError:
        return default


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with open(fd, "w") as file:
        file.write(text)
    os.chmod(temporary, mode)  # an older leftover keeps its mode through O_CREAT
    os.replace(temporary, path)
