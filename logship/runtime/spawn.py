"""Start containers: the daemon's side of the runtime.

Per container, one resident process besides the container's own, and it is not Python:

    unshare --pid -- sh supervisor.sh    the supervisor (unshare execs sh): holds the output read ends,
      │                                  waits, writes `exitcode`
      └─ python init/                      pid 1 of the new pid namespace: sets up, then execs the command
           = the command                 (init replaced itself)

The daemon never forks itself: it `Popen`s the supervisor (no preexec_fn). Everything it needs later
is in the state directory (`logship.runtime.statedir`), so a restarted daemon can `reattach`
(`logship.runtime.process`). The streams are opened by `logship.runtime.stdio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.errors import InvalidParameter
from logship.runtime import cgroups, confinement
from logship.runtime.capabilities import validate_capabilities
from logship.runtime.process import (
    EXIT_UNKNOWN,
    ExitStatus,
    Process,
    ProcessRecord,
    collect_exit,
    open_pidfd,
    read_exit_code,
    reattach,
    start_time,
)
from logship.runtime.statedir import (
    EXITCODE,
    INIT_JSON,
    PROCESS_JSON,
    STATUS_FIFO,
    SUPERVISOR_LOG,
    read_or,
    write_atomically,
)
from logship.runtime.stdio import Streams, fresh_fifo_reader, open_streams

__all__ = [
    "EXIT_UNKNOWN",
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
INIT = Path(__file__).with_name("init") / "__main__.py"  # the init package, run by path

EXIT_RUNTIME_FAILURE = 125
STARTUP_TIMEOUT = 60.0  # init has done nothing for this long: something is badly wrong
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
    # A network namespace prepared by the daemon (a bind-mounted nsfs file, `logship.runtime.netns`) that the
    # container joins instead: its bridge networks. With it `network` is ignored, and `hosts` and
    # `resolv_conf` say what the container's /etc/hosts and /etc/resolv.conf hold (None: as for "none").
    netns: str = ""
    hosts: str | None = None
    resolv_conf: str | None = None
    memory: int = 0
    pids_limit: int = 0
    nano_cpus: int = 0
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False  # every capability, no seccomp, no masked paths, the host's devices
    no_new_privs: bool = True
    seccomp: str = "default"  # "default" (Docker's profile), "unconfined", or a profile's JSON
    user: str = ""  # name|uid[:group|gid], looked up in the image's /etc/passwd and /etc/group
    group_add: list[str] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # binds, volumes, tmpfs: see init/mounts.py
    readonly_rootfs: bool = False
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # [{"Name", "Soft", "Hard"}]
    shm_size: int = 0  # bytes of /dev/shm; 0 is Docker's 64 MiB
    init: bool = False  # tini as pid 1 (--init)
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


async def start(spec: ContainerSpec) -> Process:
    """Start the container; returns once its command is exec'd. Raises StartError."""
    state_dir = spec.state_dir.resolve()
    config = _init_config(spec, state_dir)
    try:
        limits = cgroups.Limits(spec.memory, spec.pids_limit, spec.nano_cpus)
        cgroup = cgroups.create(spec.container_id, limits, privileged=spec.privileged)
    except cgroups.CgroupError as err:
        raise StartError(str(err)) from err
    except OSError as err:
        raise StartError(f"cannot set up the container's cgroup: {err}") from err
    config["cgroup_procs"] = cgroup.procs_files()
    try:
        _prepare_state_dir(state_dir, spec)
        status_fd = fresh_fifo_reader(state_dir / STATUS_FIFO)
        try:
            streams = open_streams(state_dir, spec.tty, spec.open_stdin)
        except BaseException:
            os.close(status_fd)
            raise
        config["stdio_fds"] = list(streams.child_stdio())
        write_atomically(state_dir / INIT_JSON, json.dumps(config), mode=0o600)  # it holds the env
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
    record = ProcessRecord(
        supervisor_pid=popen.pid,
        supervisor_start=start_time(popen.pid) or 0,
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
        process._init_pidfd = open_pidfd(report.pid, report.start_time)
    if report.error is not None:
        await _abandon(process, init_is_exiting=not report.timed_out)
        raise StartError(report.error, report.exit_code)
    if report.pid == 0:  # the chain died before init could say anything
        exit_status = await _abandon(process, init_is_exiting=True)
        detail = read_or(state_dir / SUPERVISOR_LOG, "").strip()
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


# --- start, step by step ------------------------------------------------------------------------------


def _init_config(spec: ContainerSpec, state_dir: Path) -> dict[str, Any]:
    """Check the spec and turn it into init.json (without the cgroup, which comes later)."""
    if not _ID.match(spec.container_id):
        raise StartError(f"invalid container id {spec.container_id!r}: use letters, digits, '_', '.', '-'")
    if not spec.argv:
        raise StartError("No command specified")
    if spec.netns and not Path(spec.netns).is_absolute():
        raise StartError(f"network namespace {spec.netns!r} is not an absolute path")
    if not spec.netns and spec.network not in ("none", "host"):
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
    argv = list(spec.argv)
    mounts = list(spec.mounts)
    try:
        cgroups.validate_limits(cgroups.Limits(spec.memory, spec.pids_limit, spec.nano_cpus))
        if spec.init:
            mounts.append(confinement.init_mount(confinement.find_init()))
            argv = [confinement.INIT_TARGET, "--", *argv]
        confined = confinement.init_config(
            state_dir, spec.cap_add, spec.cap_drop, spec.privileged, "unconfined" if spec.privileged else spec.seccomp
        )
    except InvalidParameter as err:
        raise StartError(str(err)) from err
    except OSError as err:
        raise StartError(f"cannot prepare the container's seccomp filter in {state_dir}: {err}") from err
    return {
        "state_dir": str(state_dir),
        "image_rootfs": str(image_rootfs),
        "status_fifo": str(state_dir / STATUS_FIFO),
        "argv": argv,
        "env": list(spec.env),
        "workdir": spec.workdir,
        "hostname": hostname,
        "tty": spec.tty,
        "network": "netns" if spec.netns else spec.network,
        "netns": spec.netns,
        **confined,
        "privileged": spec.privileged,
        "no_new_privs": spec.no_new_privs,
        "user": spec.user,
        "group_add": list(spec.group_add),
        "mounts": mounts,
        "readonly_rootfs": spec.readonly_rootfs,
        "ulimits": list(spec.ulimits),
        "shm_size": spec.shm_size,
    }


def _prepare_state_dir(state_dir: Path, spec: ContainerSpec) -> None:
    for name in ("diff", "work", "merged"):
        (state_dir / name).mkdir(parents=True, exist_ok=True)
    for name in (EXITCODE, PROCESS_JSON):  # leftovers of a previous run of the same container
        (state_dir / name).unlink(missing_ok=True)
    hostname = spec.hostname or spec.container_id[:12]
    write_atomically(state_dir / "hostname", hostname + "\n")
    hosts = read_or(Path("/etc/hosts"), DOCKER_HOSTS) if spec.network == "host" and not spec.netns else DOCKER_HOSTS
    write_atomically(state_dir / "hosts", hosts if spec.hosts is None else spec.hosts)
    resolv_conf = read_or(Path("/etc/resolv.conf"), "") if spec.resolv_conf is None else spec.resolv_conf
    write_atomically(state_dir / "resolv.conf", resolv_conf)


def _spawn_supervisor(state_dir: Path, streams: Streams, hold_output: bool) -> subprocess.Popen[bytes]:
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
