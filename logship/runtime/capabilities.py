"""Which Linux capabilities a container keeps: Docker's default set, tweaked by cap-add and cap-drop.

The parsing is Docker's: names are case-insensitive, the `CAP_` prefix is optional, `ALL` stands for
every capability the kernel knows, and an unknown name is rejected with `unknown capability: "CAP_FOO"`.
The result is applied by init (bounding, permitted, effective and inheritable sets); this module only
computes it, so create-time validation and start-time resolution share one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from logship.errors import InvalidParameter

# Capability names in kernel number order (index = capability number), as <linux/capability.h> has them.
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# Docker's default set, in Docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ALL = "ALL"
_CAP_LAST_CAP = Path("/proc/sys/kernel/cap_last_cap")


def known_capabilities() -> list[str]:
    """Every capability name both logship and the running kernel know (Docker's GetAllCapabilities)."""
    try:
        last = int(_CAP_LAST_CAP.read_text())
    except (OSError, ValueError):
        last = len(CAPABILITY_NAMES) - 1
    return list(CAPABILITY_NAMES[: last + 1])


def normalize(names: Sequence[str]) -> list[str]:
    """Upper-case, add the CAP_ prefix, keep `ALL` as is; reject names the kernel does not know."""
    valid = set(known_capabilities())
    normalized = []
    for name in names:
        upper = name.upper()
        if upper == ALL:
            normalized.append(upper)
            continue
        if not upper.startswith("CAP_"):
            upper = "CAP_" + upper
        if upper not in valid:
            raise InvalidParameter(f'unknown capability: "{upper}"')
        normalized.append(upper)
    return normalized


def resolve(cap_add: Sequence[str], cap_drop: Sequence[str]) -> list[str]:
    """The capability names a container gets (Docker's TweakCapabilities, not privileged).

    `ALL` in cap-add wins: every known capability except those dropped. Otherwise `ALL` in cap-drop
    leaves exactly cap-add. Otherwise the defaults minus cap-drop, plus cap-add. Drops are validated
    first, as Docker does, so a bad name in both lists is reported from cap-drop.
    """
    if not cap_add and not cap_drop:
        return list(DEFAULT_CAPABILITIES)
    drops = normalize(cap_drop)
    adds = normalize(cap_add)
    if ALL in adds:
        chosen = [cap for cap in known_capabilities() if cap not in drops]
    elif ALL in drops:
        chosen = adds
    else:
        chosen = [cap for cap in DEFAULT_CAPABILITIES if cap not in drops] + adds
    return list(dict.fromkeys(chosen))  # a cap both default and added appears once


def validate_capabilities(cap_add: Sequence[str], cap_drop: Sequence[str]) -> None:
    """Create-time check: InvalidParameter (HTTP 400) `unknown capability: "CAP_FOO"` for a bad name."""
    resolve(cap_add, cap_drop)


def numbers(names: Sequence[str]) -> list[int]:
    """Kernel numbers of capability names (already normalized, without `ALL`)."""
    return sorted(CAPABILITY_NAMES.index(name) for name in names)


def bounding_set_of_this_process() -> set[int]:
    """Capabilities this daemon can hand on: a process cannot give a container what it does not hold."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return {number for number in range(mask.bit_length()) if mask >> number & 1}
    return set()


def for_container(cap_add: Sequence[str], cap_drop: Sequence[str]) -> list[int]:
    """The capability numbers init applies, limited to what this daemon holds.

    `ALL` quietly means "all the daemon has" (a daemon in a restricted environment still runs
    `--cap-add ALL` containers); a capability named explicitly that the daemon lacks is an error,
    because silently running without it would surprise the user later.
    """
    chosen = resolve(cap_add, cap_drop)
    held = bounding_set_of_this_process()
    explicit = {name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper() for name in cap_add}
    missing = [name for name in chosen if CAPABILITY_NAMES.index(name) not in held]
    named_missing = [name for name in missing if name in explicit or name in DEFAULT_CAPABILITIES]
    if named_missing:
        raise InvalidParameter(
            f"cannot give the container {', '.join(named_missing)}: the logship daemon does not hold "
            "it (its own bounding set lacks it); run the daemon with that capability or drop it"
        )
    return numbers([name for name in chosen if CAPABILITY_NAMES.index(name) in held])


def mask_of(capability_numbers: Sequence[int]) -> int:
    """The bit mask /proc/<pid>/status shows (CapBnd, CapEff, ...) for a set of capability numbers."""
    mask = 0
    for number in capability_numbers:
        mask |= 1 << number
    return mask
