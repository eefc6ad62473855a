"""pid 1 of a new container: set the container up, then become the user's command.

Run by the supervisor as `python -I -S init.py init.json <supervisor pid>` in the state directory,
already inside a new pid namespace (the supervisor's children land there). This file is standalone on
purpose: it imports only the standard library, because it runs before and after the switch into the
container's root, where the daemon's packages do not exist. Everything it needs is imported at the top
for the same reason.

In order, it:
1. makes the container's stdin/stdout/stderr (inherited under other numbers) its fds 0, 1 and 2;
2. arms PR_SET_PDEATHSIG, so a container never outlives the supervisor that records its exit code;
3. reports its host pid on status.fifo (the daemon signals the container through that pid);
4. enters new mount, uts, ipc (and, for network "none", net) namespaces; sets the hostname; brings
   `lo` up;
5. mounts an overlay of the image (private upper layer in the state dir), pivot_roots into it, then
   mounts Docker's /proc, /sys, /dev and /etc/{hostname,hosts,resolv.conf}, masks and read-only paths;
6. enters the working directory (and, with a tty, a new session with the terminal), moves into the
   container's cgroups, drops capabilities, sets no_new_privs;
7. execs the command with every signal at its default. The status fd is close-on-exec, so a
   successful exec is the daemon's EOF; a failure is one JSON line `{"error": ..., "exit_code": N}`
   (127 not found, 126 cannot execute, 125 any other setup failure), and init exits with N.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import secrets
import signal
import socket
import stat
import struct
import sys
import termios
from collections.abc import Sequence
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

# glibc has no pivot_root wrapper; the syscall number differs per architecture.
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

EXIT_SETUP_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's defaults: what a container must not read, and what it must not write.
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
HOST_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),
)
ETC_FILES = ("hostname", "hosts", "resolv.conf")  # written by the daemon in the state dir

libc = ctypes.CDLL(None, use_errno=True)


class InitError(Exception):
    """A failure to report to the daemon: the message is shown to the user, the code is the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_SETUP_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --- thin syscall wrappers: raise OSError naming what failed -------------------------------------------


def _fail(what: str) -> NoReturn:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    def encode(value: str | None) -> bytes | None:
        return None if value is None else os.fsencode(value)

    if libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)) != 0:
        _fail(f"mount {fstype or 'bind'} {source} on {target}")


def umount(target: str, flags: int) -> None:
    if libc.umount2(os.fsencode(target), ctypes.c_int(flags)) != 0:
        _fail(f"umount {target}")


def unshare(flags: int) -> None:
    if libc.unshare(ctypes.c_int(flags)) != 0:
        _fail("unshare")


def pivot_root(new_root: str, put_old: str) -> None:
    machine = os.uname().machine
    number = PIVOT_ROOT.get(machine)
    if number is None:
        raise InitError(f"pivot_root: unsupported architecture {machine}")
    if libc.syscall(ctypes.c_long(number), os.fsencode(new_root), os.fsencode(put_old)) != 0:
        _fail(f"pivot_root {new_root}")


def prctl(option: int, arg: int, *rest: int) -> None:
    args = [ctypes.c_ulong(value) for value in (arg, *rest)]
    if libc.prctl(ctypes.c_int(option), *args) != 0:
        _fail(f"prctl {option}")


# --- steps --------------------------------------------------------------------------------------------


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


def reset_signals() -> None:
    """The command starts with every signal at its default and none blocked: Python ignores SIGPIPE and
    SIGXFSZ, sh and shield_setup ignore others, and ignored signals survive exec."""
    for number in signal.valid_signals():
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def mount_root(state_dir: str, image_rootfs: str) -> str:
    """Overlay the image with the container's private layer; return the mount point."""
    merged = os.path.join(state_dir, "merged")
    options = f"lowerdir={image_rootfs},upperdir={state_dir}/diff,workdir={state_dir}/work"
    mount("overlay", merged, "overlay", 0, options)
    return merged


def prepare_dev(root: str) -> str:
    """Mount a fresh tmpfs on <root>/dev and make a hidden directory in it to pivot the old root into.

    The old root stays reachable there until the container's mounts are done (their sources are host
    files), but under a random name the image cannot point a symlink at.
    """
    dev = os.path.join(root, "dev")
    if os.path.islink(dev) or (os.path.lexists(dev) and not os.path.isdir(dev)):
        raise InitError("the image's /dev is not a directory; logship mounts a fresh /dev there")
    os.makedirs(dev, mode=0o755, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    old_root = os.path.join(dev, ".oldroot-" + secrets.token_hex(8))
    os.mkdir(old_root, 0o700)
    return "/dev/" + os.path.basename(old_root)


def ensure_dir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def ensure_file(path: str) -> None:
    if os.path.isdir(path):
        raise InitError(f"cannot mount a file on {path}: the image has a directory there")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def mount_container_filesystems(old_root: str, state_dir: str, tty_path: str | None) -> None:
    """Docker's mounts, done after pivot_root so every target resolves inside the container's root."""
    ensure_dir("/proc")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    ensure_dir("/sys")
    mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in HOST_DEVICES:
        ensure_file(f"/dev/{name}")
        mount(f"{old_root}/dev/{name}", f"/dev/{name}", None, MS_BIND)
    ensure_dir("/dev/pts")
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    ensure_dir("/dev/shm")
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    ensure_dir("/dev/mqueue")
    mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if tty_path:  # as runc does: the container's terminal is also its /dev/console
        ensure_file("/dev/console")
        mount(f"{old_root}{tty_path}", "/dev/console", None, MS_BIND)
    for target, link in DEV_SYMLINKS:
        os.symlink(target, link)
    ensure_dir("/etc")
    for name in ETC_FILES:
        ensure_file(f"/etc/{name}")
        mount(f"{old_root}{state_dir}/{name}", f"/etc/{name}", None, MS_BIND)
    for path in MASKED_PATHS:
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            mount("/dev/null", path, None, MS_BIND)
    for path in READONLY_PATHS:
        if not os.path.lexists(path):
            continue
        mount(path, path, None, MS_BIND | MS_REC)
        mount(path, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def enter_root(state_dir: str, image_rootfs: str, tty_path: str | None) -> None:
    root = mount_root(state_dir, image_rootfs)
    old_root = prepare_dev(root)
    pivot_root(root, root + old_root)
    os.chdir("/")
    mount_container_filesystems(old_root, state_dir, tty_path)
    umount(old_root, MNT_DETACH)
    os.rmdir(old_root)


def enter_workdir(workdir: str) -> None:
    """Docker creates a missing working directory."""
    try:
        try:
            os.chdir(workdir)
        except FileNotFoundError:
            os.makedirs(workdir, mode=0o755)
            os.chdir(workdir)
    except OSError as err:
        raise InitError(f'cannot use working directory "{workdir}": {go_error(err)}') from err


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


def apply_capabilities(keep: Sequence[int], last_cap: int) -> None:
    kept = set(keep)
    for number in range(last_cap + 1):
        if number not in kept:
            prctl(PR_CAPBSET_DROP, number)
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    except OSError as err:
        if err.errno != errno.EINVAL:  # kernels before 4.3 have no ambient set
            raise
    low = sum(1 << number for number in kept if number < 32)
    high = sum(1 << (number - 32) for number in kept if number >= 32)
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    # Two {effective, permitted, inheritable} triples: capabilities 0-31, then 32-63.
    data = (ctypes.c_uint32 * 6)(low, low, low, high, high, high)
    if libc.capset(header, data) != 0:
        _fail("capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


# --- the command --------------------------------------------------------------------------------------


def go_error(err: OSError) -> str:
    """Go prints syscall errors in lower case ("no such file or directory"); Docker's messages do too."""
    text = os.strerror(err.errno) if err.errno else str(err)
    return text[:1].lower() + text[1:]


def is_executable(path: str) -> bool:
    info = os.stat(path)
    return not stat.S_ISDIR(info.st_mode) and bool(info.st_mode & 0o111)


def find_executable(name: str, search_path: str) -> str:
    """Go's exec.LookPath, with the error texts Docker users know."""
    if "/" in name:
        try:
            executable = is_executable(name)
        except OSError as err:
            raise InitError(f'exec: "{name}": stat {name}: {go_error(err)}', EXIT_NOT_FOUND) from err
        if not executable:
            raise InitError(f'exec: "{name}": permission denied', EXIT_CANNOT_EXECUTE)
        return name
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            if is_executable(candidate):
                return candidate
        except OSError:
            continue
    raise InitError(f'exec: "{name}": executable file not found in $PATH', EXIT_NOT_FOUND)


def environment(entries: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if sep and key:  # "KEY" alone means "unset" at this level
            env[key] = value
    return env


def run_command(argv: Sequence[str], env: dict[str, str]) -> NoReturn:
    path = find_executable(argv[0], env.get("PATH", DEFAULT_PATH))
    reset_signals()
    try:
        os.execve(path, list(argv), env)
    except OSError as err:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # reporting must not kill us
        code = EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
        raise InitError(f'exec: "{argv[0]}": {go_error(err)}', code) from err


# --- main ---------------------------------------------------------------------------------------------


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

    network = config["network"]
    unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (CLONE_NEWNET if network == "none" else 0))
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount may propagate to the host
    socket.sethostname(config["hostname"])
    if network == "none":
        bring_loopback_up()
    tty_path = terminal_path() if config["tty"] else None
    enter_root(state_dir, config["image_rootfs"], tty_path)
    enter_workdir(config["workdir"])
    if config["tty"]:
        take_terminal()
    os.umask(0o022)
    close_inherited_fds()
    join_cgroups(procs_fds)
    apply_capabilities(config["capabilities"], last_cap)
    run_command(config["argv"], environment(config["env"]))


def describe(err: Exception) -> str:
    """An error without Python's "[Errno N]" decoration."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return str(err) or type(err).__name__


def main(argv: Sequence[str]) -> NoReturn:
    if len(argv) != 3:
        sys.stderr.write("usage: init.py <init.json> <supervisor pid>\n")
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


if __name__ == "__main__":
    main(sys.argv)
