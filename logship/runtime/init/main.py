"""pid 1 of a new container: set the container up, then become the user's command.

Run by the supervisor as `python -I -S <this package's directory> init.json <supervisor pid>` in the
state directory, already inside a new pid namespace (the supervisor's children land there). The package
imports only the standard library and its own modules, all at start: after the switch into the
container's root the daemon's files do not exist.

In order, it:
1. makes the container's stdin/stdout/stderr (inherited under other numbers) its fds 0, 1 and 2;
2. arms PR_SET_PDEATHSIG, so a container never outlives the supervisor that records its exit code;
3. reports its host pid on status.fifo (the daemon signals the container through that pid);
4. joins the network namespace the daemon prepared (bridge networks), or enters a new one (network
   "none", then brings `lo` up); enters new mount, uts and ipc namespaces; sets the hostname;
5. opens the user's bind and volume sources (`mounts`), mounts an overlay of the image (private upper
   layer in the state dir), pivot_roots into it, then mounts Docker's /proc, /sys, /dev and
   /etc/{hostname,hosts,resolv.conf}, the user's mounts, masks and read-only paths (`rootfs`);
6. enters the working directory, makes the root read-only (--read-only), (with a tty) takes the
   terminal in a new session, moves into the container's cgroups, then sets the ulimits, the user and
   groups, capabilities, no_new_privs and the seccomp filter (`confine`, `identity`);
7. execs the command with every signal at its default. The status fd is close-on-exec, so a
   successful exec is the daemon's EOF; a failure is one JSON line `{"error": ..., "exit_code": N}`
   (127 not found, 126 cannot execute, 125 any other setup failure), and init exits with N.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import sys
import termios
from collections.abc import Sequence
from typing import Any, NoReturn

from logship.runtime.init import confine, mounts, rootfs
from logship.runtime.init.command import environment, run_command
from logship.runtime.init.errors import EXIT_SETUP_FAILED, InitError
from logship.runtime.init.syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWUTS,
    MS_PRIVATE,
    MS_REC,
    PR_SET_PDEATHSIG,
    mount,
    prctl,
    setns,
    unshare,
)

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


class Status:
    """The write end of status.fifo. Never blocks: if the daemon is gone, reports go nowhere."""

    def __init__(self, path: str) -> None:
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self.fd = -1  # no reader: the daemon died during start; it re-finds us from the state dir

    def send(self, message: dict[str, Any]) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, json.dumps(message).encode() + b"\n")
        except OSError:
            pass


def adopt_stdio(fds: Sequence[int]) -> None:
    """Make the container's stdin/stdout/stderr (inherited under other numbers) fds 0, 1 and 2.

    The supervisor's own 0/1/2 are its log, so that what sh prints ("Killed") never reaches the
    container's output.
    """
    # Move them out of the way first: a source may itself be 0, 1 or 2.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    for target, fd in enumerate(high):
        os.dup2(fd, target)  # dup2 leaves the target inheritable
        os.close(fd)


def host_identity() -> tuple[int, int, int]:
    """(pid, parent pid, start time) as the host sees them; valid only before /proc is replaced."""
    with open("/proc/self/stat") as stat_file:
        after_name = stat_file.read().rpartition(")")[2].split()
    return int(os.readlink("/proc/self")), int(after_name[1]), int(after_name[19])


def shield_setup() -> None:
    """Nothing may interrupt the setup: a pid 1 receives signals from the host only when it handles
    them, and Python handles SIGINT (KeyboardInterrupt). A daemon gone meanwhile must not SIGPIPE us."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(number, signal.SIG_IGN)


def bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def terminal_path() -> str | None:
    """The pty slave's path. Mounts are bound by path: an fd opened before unshare(CLONE_NEWNS)
    belongs to the host's mount namespace and cannot be the source of a mount in ours."""
    try:
        return os.ttyname(0)
    except OSError:
        return None  # not reachable by a path: the container just has no /dev/console


def take_terminal() -> None:
    """Make the pty (fd 0) the controlling terminal of a new session, so ^C and SIGWINCH reach us."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def close_inherited_fds() -> None:
    """Nothing but 0, 1 and 2 reaches the command (the supervisor's held FIFO ends come down to us)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the fd listdir itself used, already closed


def join_cgroups(procs_fds: Sequence[int]) -> None:
    """Writing 0 moves the writer. Done late so init's own memory is not charged to the container."""
    for fd in procs_fds:
        os.write(fd, b"0")
        os.close(fd)


def setup_and_exec(config: dict[str, Any], supervisor_pid: int, status: Status) -> NoReturn:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    pid, parent, start_time = host_identity()
    if parent != supervisor_pid:  # the supervisor died before PDEATHSIG was armed
        raise InitError("the container's supervisor exited during start")
    status.send({"pid": pid, "start_time": start_time})

    state_dir = os.path.realpath(config["state_dir"])
    with open("/proc/sys/kernel/cap_last_cap") as last_cap_file:
        last_cap = int(last_cap_file.read())
    procs_fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in config["cgroup_procs"]]
    program = confine.read_seccomp(config)

    network = config["network"]
    if network == "netns":  # first, while the host's mount namespace still shows the file
        setns(config["netns"], CLONE_NEWNET)
    unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (CLONE_NEWNET if network == "none" else 0))
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount may propagate to the host
    socket.sethostname(config["hostname"])
    if network == "none":
        bring_loopback_up()
    tty_path = terminal_path() if config["tty"] else None
    setup = rootfs.RootSetup(
        int(config.get("shm_size") or 0),
        bool(config.get("privileged")),
        [mounts.Mount(item) for item in config.get("mounts") or []],
    )
    mounts.open_sources(setup.mounts)  # in our mount namespace, before the host's tree is out of reach
    if setup.privileged:
        setup.devices = rootfs.host_devices()
    rootfs.enter_root(state_dir, config["image_rootfs"], tty_path, setup)
    rootfs.enter_workdir(config["workdir"])
    if config.get("readonly_rootfs"):
        mounts.make_root_readonly()
    if config["tty"]:
        take_terminal()
    os.umask(0o022)
    close_inherited_fds()
    join_cgroups(procs_fds)
    env = environment(config["env"])
    who = confine.confine(config, program, config["capabilities"], last_cap)
    env.setdefault("HOME", who.home)
    run_command(config["argv"], env)


def describe(err: Exception) -> str:
    """An error without Python's "[Errno N]" decoration."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return str(err) or type(err).__name__


def main(argv: Sequence[str]) -> NoReturn:
    if len(argv) != 3:
        sys.stderr.write("usage: python -I -S logship/runtime/init <init.json> <supervisor pid>\n")
        os._exit(EXIT_SETUP_FAILED)
    with open(argv[1]) as config_file:
        config = json.load(config_file)
    shield_setup()
    status = Status(config["status_fifo"])
    try:
        adopt_stdio(config["stdio_fds"])
        setup_and_exec(config, int(argv[2]), status)
    except InitError as err:
        status.send({"error": err.message, "exit_code": err.exit_code})
        os._exit(err.exit_code)
    except Exception as err:  # anything else is a runtime failure, reported with its cause
        status.send({"error": f"container init failed: {describe(err)}", "exit_code": EXIT_SETUP_FAILED})
        os._exit(EXIT_SETUP_FAILED)
