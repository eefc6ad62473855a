"""Docker's seccomp profiles, read as they are, compiled into the BPF program a container's init loads.

A profile is Docker's JSON (`defaultAction`, `defaultErrnoRet`, `archMap` or `architectures`, `syscalls`
with `names`, `action`, `args`, `errnoRet`, `includes`/`excludes` on `caps`, `arches` and
`minKernel`), so users' own profiles work unchanged. The rules are selected as moby selects them (a rule
whose `includes.caps` the container lacks is left out, one whose `excludes.caps` it has is left out too)
and compiled by libseccomp through `pyseccomp` (ctypes bindings: Debian's python3-seccomp is built for
Debian's own Python and cannot be imported by a virtualenv on another interpreter). libseccomp writes the
BPF program; logship never writes BPF itself.

Compiling happens in the daemon, not in init: init runs with `python -I -S` and sees no site-packages,
and a compiled program is cached per (profile, capabilities), so the default profile costs its
compilation once per daemon. init loads the bytes with prctl(PR_SET_SECCOMP) or seccomp(2).

`seccomp-default.json` beside this module is Docker's default profile (moby/profiles v0.2.3,
Apache-2.0, as moby vendored it in late 2025).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from logship.errors import InvalidParameter

DEFAULT_PROFILE = Path(__file__).with_name("seccomp-default.json")
EPERM = 1

# Filter flags a profile may ask for (<linux/seccomp.h>); TSYNC is meaningless for a one-thread init.
FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
# Go's names (moby compares `arches` with runtime.GOARCH) for the machine names uname gives.
GO_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
    "loongarch64": "loong64",
}
# The libseccomp architecture each machine runs natively.
NATIVE_SCMP_ARCH = {
    "x86_64": "SCMP_ARCH_X86_64",
    "aarch64": "SCMP_ARCH_AARCH64",
    "armv7l": "SCMP_ARCH_ARM",
    "i686": "SCMP_ARCH_X86",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
}
_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
_ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
)
_PROFILE_KEYS = {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags", "listenerPath"}
_RULE_KEYS = {"name", "names", "action", "args", "errnoRet", "includes", "excludes", "comment"}


class SeccompProfileError(InvalidParameter):
    """A profile logship cannot apply: the message names the field and what to change."""


@functools.cache
def default_profile_text() -> str:
    return DEFAULT_PROFILE.read_text()


def check_profile(text: str) -> dict[str, Any]:
    """Parse a profile and check its shape, with messages that name the field (Docker's decoding errors
    name only a Go type). Returns the parsed profile."""
    try:
        profile = json.loads(text)
    except ValueError as err:
        raise SeccompProfileError(f"Decoding seccomp profile failed: {err}") from None
    if not isinstance(profile, dict):
        raise SeccompProfileError("Decoding seccomp profile failed: the profile must be a JSON object")
    unknown = sorted(set(profile) - _PROFILE_KEYS)
    if unknown:
        raise SeccompProfileError(
            f"seccomp profile: unknown field {unknown[0]!r} (known: {', '.join(sorted(_PROFILE_KEYS))})"
        )
    if profile.get("listenerPath") or "SCMP_ACT_NOTIFY" in text:
        raise SeccompProfileError(
            "seccomp profile: SCMP_ACT_NOTIFY and listenerPath (user-space notification) are not supported by logship"
        )
    _check_action("defaultAction", profile.get("defaultAction"))
    if profile.get("architectures") and profile.get("archMap"):
        raise SeccompProfileError(
            "'architectures' and 'archMap' were specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    for flag in profile.get("flags") or []:
        if flag not in FILTER_FLAGS:
            raise SeccompProfileError(f"seccomp profile: unknown flag {flag!r} (known: {', '.join(FILTER_FLAGS)})")
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise SeccompProfileError("seccomp profile: 'syscalls' must be a list of rules")
    for number, rule in enumerate(syscalls):
        where = f"seccomp profile: syscalls[{number}]"
        if not isinstance(rule, dict):
            raise SeccompProfileError(f"{where} must be an object")
        unknown = sorted(set(rule) - _RULE_KEYS)
        if unknown:
            raise SeccompProfileError(f"{where}: unknown field {unknown[0]!r}")
        if rule.get("name") and rule.get("names"):
            raise SeccompProfileError(
                "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
            )
        _check_action(f"{where}.action", rule.get("action"))
        for arg in rule.get("args") or []:
            if not isinstance(arg, dict) or arg.get("op") not in _OPS:
                raise SeccompProfileError(f"{where}: an argument's 'op' must be one of {', '.join(_OPS)}, got {arg!r}")
            if not (isinstance(arg.get("index"), int) and 0 <= arg["index"] <= 5):
                raise SeccompProfileError(f"{where}: an argument's 'index' must be 0 to 5, got {arg.get('index')!r}")
    return profile


def _check_action(where: str, action: object) -> None:
    if action not in _ACTIONS:
        raise SeccompProfileError(f"{where}: {action!r} is not a seccomp action (use one of {', '.join(_ACTIONS)})")


def compile_profile(text: str, capabilities: Iterable[str]) -> tuple[bytes, int]:
    """The BPF program of `text` for a container with these capabilities (names such as CAP_SYS_ADMIN),
    and the filter flags to load it with. Cached: the same profile and set compile once."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return _compiled(digest, text, frozenset(capabilities))


@functools.lru_cache(maxsize=32)
def _compiled(digest: str, text: str, capabilities: frozenset[str]) -> tuple[bytes, int]:
    del digest  # the cache key: `text` is compared only on a digest collision
    profile = check_profile(text)
    flags = 0
    for flag in profile.get("flags") or []:
        flags |= FILTER_FLAGS[flag]
    return _build(profile, capabilities), flags & ~FILTER_FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]


def _build(profile: dict[str, Any], capabilities: frozenset[str]) -> bytes:
    import pyseccomp  # local: loading libseccomp costs a few ms, only paid by a daemon that starts containers

    machine = platform.machine()
    default = _action(pyseccomp, profile["defaultAction"], profile.get("defaultErrnoRet"))
    bpf_filter = pyseccomp.SyscallFilter(default)
    for arch in _architectures(profile, machine):
        value = getattr(pyseccomp.Arch, arch.removeprefix("SCMP_ARCH_"), None)
        if value is None or arch == NATIVE_SCMP_ARCH.get(machine):
            continue  # unknown to this libseccomp, or the native one the filter has already
        try:
            bpf_filter.add_arch(value)
        except OSError as err:
            raise SeccompProfileError(f"seccomp profile: architecture {arch}: {err.strerror}") from None
    for rule in _selected_rules(profile.get("syscalls") or [], capabilities, GO_ARCH.get(machine, machine)):
        action = _action(pyseccomp, rule["action"], rule.get("errnoRet"))
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default (and it would change nothing)
        for name in _names(rule):
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            if number == -1:
                continue  # a call this libseccomp does not know on any of our architectures: as runc, skip it
            for conditions in _condition_sets(pyseccomp, rule.get("args") or []):
                try:
                    bpf_filter.add_rule(action, number, *conditions)
                except OSError as err:
                    raise SeccompProfileError(
                        f"seccomp profile: the rule for {name!r} cannot be added: {err.strerror}"
                    ) from None
    with tempfile.TemporaryFile() as file:
        bpf_filter.export_bpf(file)
        file.seek(0)
        return file.read()


def _action(pyseccomp: Any, name: str, errno_ret: int | None) -> int:
    if name == "SCMP_ACT_ERRNO":
        return int(pyseccomp.ERRNO(EPERM if errno_ret is None else errno_ret))
    if name == "SCMP_ACT_TRACE":
        return int(pyseccomp.TRACE(EPERM if errno_ret is None else errno_ret))
    table = {
        "SCMP_ACT_KILL": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
        "SCMP_ACT_TRAP": pyseccomp.TRAP,
        "SCMP_ACT_ALLOW": pyseccomp.ALLOW,
        "SCMP_ACT_LOG": pyseccomp.LOG,
    }
    return int(table[name])


def _architectures(profile: dict[str, Any], machine: str) -> list[str]:
    """moby's rule: the `architectures` list as given, or the archMap entry of the native architecture
    with its sub-architectures (x86_64 also filters x86 and x32 calls)."""
    if profile.get("architectures"):
        return list(profile["architectures"])
    native = NATIVE_SCMP_ARCH.get(machine)
    arches: list[str] = []
    for entry in profile.get("archMap") or []:
        if native is not None and entry.get("architecture") == native:
            arches += [native, *(entry.get("subArchitectures") or [])]
    return arches


def _selected_rules(rules: Sequence[dict[str, Any]], capabilities: frozenset[str], arch: str) -> list[dict[str, Any]]:
    """The rules that apply to this container, chosen as moby chooses them."""
    kernel = _kernel_version()
    selected = []
    for rule in rules:
        excludes = rule.get("excludes") or {}
        includes = rule.get("includes") or {}
        if arch in (excludes.get("arches") or []):
            continue
        if any(cap in capabilities for cap in excludes.get("caps") or []):
            continue
        if excludes.get("minKernel") and kernel >= _version(excludes["minKernel"]):
            continue
        if includes.get("arches") and arch not in includes["arches"]:
            continue
        if not all(cap in capabilities for cap in includes.get("caps") or []):
            continue
        if includes.get("minKernel") and kernel < _version(includes["minKernel"]):
            continue
        selected.append(rule)
    return selected


def _names(rule: dict[str, Any]) -> list[str]:
    return list(rule.get("names") or []) + ([rule["name"]] if rule.get("name") else [])


def _condition_sets(pyseccomp: Any, args: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """One rule with all conditions, or, when an argument index appears more than once, one rule per
    condition (runc's rule: conditions on one argument are alternatives)."""
    conditions = [
        pyseccomp.Arg(
            arg["index"], _OPS.index(arg["op"]) + 1, int(arg.get("value") or 0), int(arg.get("valueTwo") or 0)
        )
        for arg in args
    ]
    indexes = [arg["index"] for arg in args]
    if len(set(indexes)) < len(indexes):
        return [[condition] for condition in conditions]
    return [conditions]


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


@functools.cache
def _kernel_version() -> tuple[int, ...]:
    return _version(os.uname().release.split("-")[0])
