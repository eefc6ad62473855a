"""Thin wrappers of the system calls init needs that Python's os module lacks; each raises OSError
naming what failed."""

from __future__ import annotations

import ctypes
import os
from typing import NoReturn

from logship.runtime.init.errors import InitError

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

# glibc has no pivot_root wrapper; the syscall number differs per architecture.
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

libc = ctypes.CDLL(None, use_errno=True)


def fail(what: str) -> NoReturn:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    def encode(value: str | None) -> bytes | None:
        return None if value is None else os.fsencode(value)

    if libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)) != 0:
        fail(f"mount {fstype or 'bind'} {source} on {target}")


def umount(target: str, flags: int) -> None:
    if libc.umount2(os.fsencode(target), ctypes.c_int(flags)) != 0:
        fail(f"umount {target}")


def setns(path: str, nstype: int) -> None:
    """Join the namespace a file (a /proc/<pid>/ns/* link or a bind mount of one) stands for."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
            fail(f"setns {path}")
    finally:
        os.close(fd)


def unshare(flags: int) -> None:
    if libc.unshare(ctypes.c_int(flags)) != 0:
        fail("unshare")


def pivot_root(new_root: str, put_old: str) -> None:
    machine = os.uname().machine
    number = PIVOT_ROOT.get(machine)
    if number is None:
        raise InitError(f"pivot_root: unsupported architecture {machine}")
    if libc.syscall(ctypes.c_long(number), os.fsencode(new_root), os.fsencode(put_old)) != 0:
        fail(f"pivot_root {new_root}")


def prctl(option: int, arg: int, *rest: int) -> None:
    args = [ctypes.c_ulong(value) for value in (arg, *rest)]
    if libc.prctl(ctypes.c_int(option), *args) != 0:
        fail(f"prctl {option}")
