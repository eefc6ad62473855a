"""Network namespaces that outlive the processes that use them, named by a file.

Why: a container's network is set up (netavark) before its first process runs and torn down after its last
one ended, and the namespace that holds logship's bridges must stay while no daemon runs (a daemon killed and
restarted keeps every container's connectivity). So a namespace is kept by one of two means, and named by a
file under the daemon's data root either way:

- as root: the namespace itself mounted on the file (an nsfs bind mount, as `ip netns` and Podman keep
  them), made by `unshare --net=FILE` (util-linux, which the runtime already needs). It lives until it is
  unmounted, whoever runs.
- where the daemon may not mount in the host's mount namespace (a rootless daemon is root of its own user
  namespace only): a holder process, `unshare --net sleep infinity` in a session of its own, whose pid and
  start time the file records. The namespace is then `/proc/<pid>/ns/net`, and lives until the holder is
  killed. Its namespace belongs to the daemon's user namespace, so the daemon may configure it.

`path(file)` gives what to open or hand to netavark, pasta, nsenter and the container's init, whichever way
it is kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
from pathlib import Path

from logship.errors import SystemError_

NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs file: which kind of namespace it is
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOLDER_ENV = "LOGSHIP_NETNS_HOLDER"  # "1": keep namespaces with holder processes even as root (tests)

_libc = ctypes.CDLL(None, use_errno=True)


def tool(name: str) -> str:
    found = shutil.which(name, path=_PATH)
    if found is None:
        raise SystemError_(f"cannot set up networking: the `{name}` program (util-linux) is not installed")
    return found


def can_mount() -> bool:
    """Root of the initial user namespace may mount here; root of any other may not (rootless)."""
    if os.environ.get(HOLDER_ENV) == "1" or os.geteuid() != 0:
        return False
    try:
        first = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return True
    return first[:3] == ["0", "0", "4294967295"]


def is_nsfs(path: Path) -> bool:
    """The file is a network namespace (a mounted one, or a /proc/<pid>/ns/net)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


def _holder(file: Path) -> int:
    """The pid of the holder the file names, if that process still runs: else 0."""
    try:
        pid_text, start_text = file.read_text().split()
        pid, start = int(pid_text), int(start_text)
    except (OSError, ValueError):
        return 0
    return pid if _start_time(pid) == start else 0


def _start_time(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return -1


def path(file: Path) -> Path:
    """What names the namespace for open(), setns(), nsenter, netavark and pasta."""
    pid = _holder(file)
    return Path(f"/proc/{pid}/ns/net") if pid else file


def exists(file: Path) -> bool:
    return is_nsfs(path(file))


def create(file: Path) -> None:
    """A new network namespace named by `file` (its loopback is down: netavark and pasta bring it up)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    if exists(file):
        raise SystemError_(f"cannot create network namespace {file}: one is already there")
    if can_mount():
        _create_mounted(file)
    else:
        _create_held(file)


def _create_mounted(file: Path) -> None:
    file.touch(mode=0o600)
    result = subprocess.run(
        [tool("unshare"), f"--net={file}", "true"], capture_output=True, text=True, env={"PATH": _PATH}
    )
    if result.returncode != 0:
        with contextlib.suppress(OSError):
            file.unlink()
        detail = result.stderr.strip() or f"exit status {result.returncode}"
        raise SystemError_(f"cannot create network namespace {file}: {detail}")


def _create_held(file: Path) -> None:
    # Without capabilities: pasta, which drops its own, may then open the holder's /proc/<pid>/ns/net (the
    # kernel's ptrace check wants the target's capabilities to be a subset of the opener's).
    no_capabilities = [tool("setpriv"), "--bounding-set", "-all", "--inh-caps", "-all"]
    try:
        holder = subprocess.Popen(
            [tool("unshare"), "--net", "--", *no_capabilities, tool("sleep"), "infinity"],
            cwd=file.parent,  # where a test harness looks for what a data root left running
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": _PATH},
            start_new_session=True,  # the daemon's process group and terminal signals stay away
        )
    except OSError as err:
        raise SystemError_(f"cannot create network namespace {file}: {err}") from err
    own = os.readlink("/proc/self/ns/net")
    for _ in range(500):  # unshare has entered the namespace once the holder's differs from ours
        if holder.poll() is not None:
            detail = holder.stderr.read().decode(errors="replace").strip() if holder.stderr else ""
            raise SystemError_(f"cannot create network namespace {file}: {detail or 'unshare exited'}")
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{holder.pid}/ns/net") != own:
                break
        os.sched_yield()
    if holder.stderr:
        holder.stderr.close()
    temporary = file.with_name(file.name + ".tmp")
    temporary.write_text(f"{holder.pid} {_start_time(holder.pid)}\n")
    os.replace(temporary, file)


def remove(file: Path) -> None:
    """Unmount the namespace, or kill its holder, and delete the file; nothing there is no error. The
    namespace itself goes once nothing uses it."""
    pid = _holder(file)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # our child when this daemon made it
    while is_nsfs(file):  # a namespace mounted twice on one file (never by us) needs two unmounts
        if _libc.umount2(os.fsencode(file), ctypes.c_int(MNT_DETACH)) != 0:
            code = ctypes.get_errno()
            raise SystemError_(f"cannot unmount network namespace {file}: {os.strerror(code)}")
    with contextlib.suppress(FileNotFoundError):
        file.unlink()


def enter(file: Path) -> list[str]:
    """The command prefix that runs a program inside the namespace (and only its network: the host's files)."""
    return [tool("nsenter"), f"--net={path(file)}", "--"]
