"""The last steps before exec: resource limits, identity, capabilities, no_new_privs and seccomp.

The order is runc's, and it matters:
1. `--ulimit`s are set while init is still root (only root may raise a hard limit).
2. Without no_new_privs the seccomp filter is loaded here, while init still has CAP_SYS_ADMIN (the
   kernel allows a filter without no_new_privs only to CAP_SYS_ADMIN); the profile must then allow what
   follows (setgroups, setuid, capset, prctl, execve: Docker's default profile does).
3. Capabilities outside the container's set leave the bounding set; the user and groups are switched
   with PR_SET_KEEPCAPS, so a non-root user keeps the permitted set until capset trims it to the
   container's (execve then clears a non-root user's effective set, as in Docker).
4. With no_new_privs, it is set and the filter loaded last, after every privileged step.

The program is compiled by the daemon (logship.runtime.seccomp, libseccomp); init only hands the kernel
its bytes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from collections.abc import Sequence
from typing import Any

from logship.runtime.init import identity as identities
from logship.runtime.init.syscalls import fail, libc, prctl

PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# RLIMIT_* numbers (the same on every Linux architecture; Python's resource module lacks some).
ULIMITS = {
    "cpu": 0,
    "fsize": 1,
    "data": 2,
    "stack": 3,
    "core": 4,
    "rss": 5,
    "nproc": 6,
    "nofile": 7,
    "memlock": 8,
    "locks": 10,
    "sigpending": 11,
    "msgqueue": 12,
    "nice": 13,
    "rtprio": 14,
    "rttime": 15,
}


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def set_ulimits(ulimits: Sequence[dict[str, Any]]) -> None:
    for item in ulimits:
        soft, hard = (resource.RLIM_INFINITY if value < 0 else value for value in (item["Soft"], item["Hard"]))
        try:
            resource.setrlimit(ULIMITS[item["Name"]], (soft, hard))
        except (ValueError, OSError) as err:
            hint = ""
            if identities.in_user_namespace():  # (Python says EPERM as ValueError "not allowed to raise ...")
                hint = " (a rootless daemon cannot raise a hard limit above its user's own: see `ulimit -H`)"
            raise OSError(
                errno.EINVAL, f"cannot set ulimit {item['Name']}={item['Soft']}:{item['Hard']}: {err}{hint}"
            ) from err


def load_seccomp(program: bytes, flags: int) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    if flags:
        number = SECCOMP_SYSCALL.get(os.uname().machine)
        if number is None:
            raise OSError(errno.ENOSYS, "seccomp filter flags are not supported on this architecture")
        if (
            libc.syscall(
                ctypes.c_long(number), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags), ctypes.byref(fprog)
            )
            != 0
        ):
            fail("seccomp")
    else:
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def read_seccomp(config: dict[str, Any]) -> bytes:
    """The compiled filter (b"" for none), read before pivot_root: the state directory is the host's."""
    seccomp = config.get("seccomp")
    if not seccomp:
        return b""
    with open(seccomp["program"], "rb") as file:
        return file.read()


def confine(config: dict[str, Any], program: bytes, keep: Sequence[int], last_cap: int) -> identities.Identity:
    """Steps 1-4 above, for the user of the container's /etc/passwd (returned: its home is $HOME)."""
    set_ulimits(config.get("ulimits") or [])
    who = identities.resolve(config.get("user") or "", config.get("group_add") or [])
    identities.check_mapped(who, config.get("user") or "")
    flags = int((config.get("seccomp") or {}).get("flags", 0))
    no_new_privs = config.get("no_new_privs", True)
    if program and not no_new_privs:
        load_seccomp(program, flags)
    apply_capabilities(keep, last_cap, who)
    if no_new_privs:
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if program:
            load_seccomp(program, flags)
    return who


def apply_capabilities(keep: Sequence[int], last_cap: int, who: identities.Identity) -> None:
    kept = set(keep)
    for number in range(last_cap + 1):
        if number not in kept:
            prctl(PR_CAPBSET_DROP, number)
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    except OSError as err:
        if err.errno != errno.EINVAL:  # kernels before 4.3 have no ambient set
            raise
    prctl(PR_SET_KEEPCAPS, 1)
    identities.become(who)
    prctl(PR_SET_KEEPCAPS, 0)
    low = sum(1 << number for number in kept if number < 32)
    high = sum(1 << (number - 32) for number in kept if number >= 32)
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    # Two {effective, permitted, inheritable} triples: capabilities 0-31, then 32-63.
    data = (ctypes.c_uint32 * 6)(low, low, low, high, high, high)
    if libc.capset(header, data) != 0:
        fail("capset")
