"""Network namespaces that outlive their processes: an nsfs bind-mounted on a file, as `ip netns` and Podman
keep them.

Why a file rather than a process's namespace: a container's network is set up (netavark) before its first
process runs and torn down after its last one ended, and the namespace that holds logship's bridges must
stay while no daemon runs (a daemon killed and restarted keeps every container's connectivity). A mounted
namespace lives until it is unmounted, whoever runs. `unshare --net=FILE` (util-linux, which the runtime
already needs) creates one; `remove` unmounts it. pasta watches the file and quits when it goes.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from logship.errors import SystemError_

NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs file: which kind of namespace it is
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_libc = ctypes.CDLL(None, use_errno=True)


def tool(name: str) -> str:
    found = shutil.which(name, path=_PATH)
    if found is None:
        raise SystemError_(f"cannot set up networking: the `{name}` program (util-linux) is not installed")
    return found


def is_netns(path: Path) -> bool:
    """The file is a mounted network namespace (not the empty file left by a reboot or a failed create)."""
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


def create(path: Path, prefix: Sequence[str] = ()) -> None:
    """A new network namespace mounted on `path` (its loopback is down: netavark and pasta bring it up).
    `prefix` runs the command inside other namespaces first (rootless mode's user namespace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_netns(path):
        raise SystemError_(f"cannot create network namespace {path}: one is already mounted there")
    path.touch(mode=0o600)
    result = subprocess.run(
        [*prefix, tool("unshare"), f"--net={path}", "true"], capture_output=True, text=True, env={"PATH": _PATH}
    )
    if result.returncode != 0:
        with contextlib.suppress(OSError):
            path.unlink()
        detail = result.stderr.strip() or f"exit status {result.returncode}"
        raise SystemError_(f"cannot create network namespace {path}: {detail}")


def remove(path: Path) -> None:
    """Unmount and delete; nothing there is no error. The namespace itself goes once nothing uses it."""
    while is_netns(path):  # a namespace mounted twice on one file (never by us) would need two unmounts
        if _libc.umount2(os.fsencode(path), ctypes.c_int(MNT_DETACH)) != 0:
            code = ctypes.get_errno()
            raise SystemError_(f"cannot unmount network namespace {path}: {os.strerror(code)}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def enter(path: Path) -> list[str]:
    """The command prefix that runs a program inside the namespace (and only its network: the host's files)."""
    return [tool("nsenter"), f"--net={path}", "--"]
