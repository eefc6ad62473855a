"""A container's cgroup: created by the daemon before start, joined by init, removed after exit.

Docker's semantics for the three limits logship supports:
- memory: v1 `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` = 2x when swap accounting
  exists), v2 `memory.max` (and `memory.swap.max` = the same amount again);
- cpus (nano-CPUs): a CFS quota of `nano_cpus * 100000 / 1e9` microseconds per 100000 µs period;
- pids-limit: `pids.max`.

The cgroup lives at `logship/<container id>` under each controller's root. cgroup v2 is used when the
unified hierarchy carries the controllers; otherwise (v1 or hybrid hosts) the v1 hierarchies are.
Asking for a limit the machine cannot enforce is an error naming the file and the flag; without limits
a missing or read-only cgroup filesystem is tolerated (the container just runs unlimited).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from logship.errors import InvalidParameter
from logship.runtime import devicecgroup

CPU_PERIOD_US = 100_000
MIN_MEMORY = 6 * 1024 * 1024  # Docker's linuxMinMemory
CONTROLLERS = ("memory", "pids", "cpu")
# Controllers joined for their counters only (`stats`): CPU time and block I/O; none is ever required.
# v1 names them cpuacct and blkio, v2 io (v2's cpu.stat needs no controller).
ACCOUNTING = ("cpuacct", "blkio", "io")
PARENT = "logship"
_MOUNTINFO = Path("/proc/self/mountinfo")


class CgroupError(Exception):
    """A requested limit cannot be applied; the message names the file and the flag."""


@dataclass(frozen=True)
class Limits:
    memory: int = 0  # bytes; 0 means unlimited
    pids_limit: int = 0  # <= 0 means unlimited, as in Docker
    nano_cpus: int = 0  # 1e9 is one CPU; 0 means unlimited

    def needs(self, controller: str) -> str:
        """The CLI flag that needs `controller`, or "" when no requested limit does."""
        if controller == "memory" and self.memory > 0:
            return "--memory"
        if controller == "pids" and self.pids_limit > 0:
            return "--pids-limit"
        if controller == "cpu" and self.nano_cpus > 0:
            return "--cpus"
        return ""


class Setting(NamedTuple):
    controller: str
    filename: str
    value: str
    flag: str


def validate_limits(limits: Limits, cpu_count: int | None = None) -> None:
    """Docker's create-time checks, with Docker's messages."""
    if limits.memory < 0:
        raise InvalidParameter("invalid memory limit: it cannot be negative")
    if 0 < limits.memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    cpus = cpu_count or os.cpu_count() or 1
    if limits.nano_cpus < 0 or limits.nano_cpus > cpus * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")


def settings_for(version: int, limits: Limits, with_swap: bool) -> list[Setting]:
    """Which file gets which value, in the order they must be written. Pure, so it is easy to check."""
    out: list[Setting] = []
    if limits.memory > 0:
        if version == 1:
            out.append(Setting("memory", "memory.limit_in_bytes", str(limits.memory), "--memory"))
            if with_swap:  # memsw counts memory + swap, so 2x leaves as much swap as memory
                out.append(Setting("memory", "memory.memsw.limit_in_bytes", str(2 * limits.memory), "--memory"))
        else:
            out.append(Setting("memory", "memory.max", str(limits.memory), "--memory"))
            if with_swap:  # v2 counts swap alone
                out.append(Setting("memory", "memory.swap.max", str(limits.memory), "--memory"))
    if limits.nano_cpus > 0:
        quota = limits.nano_cpus * CPU_PERIOD_US // 1_000_000_000
        if version == 1:
            out.append(Setting("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US), "--cpus"))
            out.append(Setting("cpu", "cpu.cfs_quota_us", str(quota), "--cpus"))
        else:
            out.append(Setting("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}", "--cpus"))
    if limits.pids_limit > 0:
        out.append(Setting("pids", "pids.max", str(limits.pids_limit), "--pids-limit"))
    return out


@dataclass(frozen=True)
class Hierarchy:
    """Where the cgroup filesystems are: one v2 root, or one mount point per v1 controller."""

    version: int
    roots: Mapping[str, Path]  # controller -> mount point (v2: every controller -> the one root)
    unified_root: Path | None = None  # v2 only: the mount point (a rootless daemon's: its delegated subtree)
    # Why a controller missing from `roots` cannot be had (a rootless daemon's: see cgroupdelegation); with
    # no unified_root either, containers get no cgroup of their own.
    refusal: str = ""


_configured: Hierarchy | None = None


def configure(hierarchy: Hierarchy | None) -> None:
    """Use `hierarchy` for every container this process starts, instead of the one the mount table shows
    (a rootless daemon: its delegated subtree, or none)."""
    global _configured
    _configured = hierarchy


def configured() -> Hierarchy | None:
    return _configured


def refusal(limits: Limits, hierarchy: Hierarchy | None = None) -> str:
    """Why `hierarchy` (by default the configured one) cannot apply `limits`: "" when it can, or when none
    is configured (the start itself tells then). Checked when a container is created."""
    hierarchy = hierarchy or _configured
    if hierarchy is None:
        return ""
    flags = [limits.needs(name) for name in CONTROLLERS if limits.needs(name) and name not in hierarchy.roots]
    if not flags:
        return ""
    return f"cannot apply {', '.join(flags)}: {hierarchy.refusal}; or run without {', '.join(flags)}"


def v2_mount_point(mountinfo: Path = _MOUNTINFO) -> Path | None:
    for line in mountinfo.read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) >= 5 and tail and tail[0] == "cgroup2":
            return Path(_unescape(fields[4]))
    return None


def discover(mountinfo: Path = _MOUNTINFO) -> Hierarchy:
    """Read the mount table: v2 if the unified hierarchy carries memory/pids/cpu, else v1."""
    if _configured is not None:
        return _configured
    v1: dict[str, Path] = {}
    v2_root: Path | None = None
    for line in mountinfo.read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount_point = Path(_unescape(fields[4]))
        if tail[0] == "cgroup2" and v2_root is None:
            v2_root = mount_point
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in CONTROLLERS or option in ACCOUNTING or option == devicecgroup.CONTROLLER:
                    v1.setdefault(option, mount_point)
    if v2_root is not None:
        ours = _v2_controllers(v2_root) & set(CONTROLLERS)
        # Hybrid hosts mount an (almost) empty cgroup2 beside the v1 hierarchies: use v1 there.
        if v2_root == Path("/sys/fs/cgroup") or (ours and not v1):
            return v2_hierarchy(v2_root)
    return Hierarchy(1, v1)


def v2_hierarchy(root: Path) -> Hierarchy:
    """A cgroup v2 hierarchy at `root`, with whichever of our controllers it offers."""
    offered = _v2_controllers(root)
    return Hierarchy(2, {name: root for name in (*CONTROLLERS, *ACCOUNTING) if name in offered}, root)


@dataclass
class Cgroup:
    """The directories of one container's cgroup. Plain data: saved in the state dir for reattach."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)  # controller (or "unified") -> directory

    def unique_dirs(self) -> list[Path]:
        # Co-mounted v1 controllers (cpu,cpuacct) and v2 share one directory.
        return [Path(path) for path in dict.fromkeys(self.dirs.values())]

    def procs_files(self) -> list[str]:
        """The files init writes "0" to, to move itself (and so the container) in."""
        return [str(path / "cgroup.procs") for path in self.unique_dirs()]

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup (0 when unknown)."""
        memory_dir = self.dirs.get("memory")
        if memory_dir is None:
            return 0
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (Path(memory_dir) / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def read(self, controller: str, filename: str) -> str:
        return (Path(self.dirs[controller]) / filename).read_text().strip()

    def remove(self) -> list[Path]:
        """rmdir every directory; returns those still busy (the kernel may lag behind an exit)."""
        busy = []
        for path in self.unique_dirs():
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise
                busy.append(path)
        return busy

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "dirs": dict(self.dirs)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Cgroup:
        dirs = data.get("dirs")
        version = data.get("version")
        if not isinstance(dirs, dict) or not isinstance(version, int):
            raise ValueError(f"not a saved cgroup: {data!r}")
        return cls(version, {str(key): str(value) for key, value in dirs.items()})


def create(container_id: str, limits: Limits, hierarchy: Hierarchy | None = None, privileged: bool = False) -> Cgroup:
    """Make `logship/<id>` in each hierarchy, write the limits and, on v1, the device policy (see
    devicecgroup; none for `privileged`). Raises CgroupError."""
    hierarchy = hierarchy if hierarchy is not None else discover()
    if hierarchy.version == 2 and hierarchy.unified_root is None:  # a rootless daemon without a subtree
        problem = refusal(limits, hierarchy)
        if problem:
            raise CgroupError(problem)
        return Cgroup(2)
    if hierarchy.version == 2:
        cgroup = _create_v2(container_id, limits, hierarchy)
    else:
        cgroup = _create_v1(container_id, limits, hierarchy, privileged)
    try:
        _write_limits(cgroup, limits)
    except CgroupError:
        cgroup.remove()
        raise
    return cgroup


def _create_v1(container_id: str, limits: Limits, hierarchy: Hierarchy, privileged: bool) -> Cgroup:
    cgroup = Cgroup(1)
    devices = hierarchy.roots.get(devicecgroup.CONTROLLER)
    if devices is not None:
        directory = devices / PARENT / container_id
        try:
            _make_fresh(directory)
        except OSError:
            pass  # not ours to change (a daemon without root on the host): the container runs as before
        else:
            cgroup.dirs[devicecgroup.CONTROLLER] = str(directory)
            try:
                devicecgroup.confine(directory, privileged)
            except devicecgroup.DeviceCgroupError as err:
                cgroup.remove()
                raise CgroupError(str(err)) from err
    for controller in (*CONTROLLERS, *ACCOUNTING):
        flag = limits.needs(controller)
        root = hierarchy.roots.get(controller)
        if root is None:
            if flag:
                cgroup.remove()
                raise CgroupError(
                    f"cannot apply {flag}: the cgroup v1 '{controller}' controller is not mounted "
                    f"(no cgroup filesystem with it in {_MOUNTINFO}); mount it or run without {flag}"
                )
            continue
        directory = root / PARENT / container_id
        try:
            _make_fresh(directory)
        except OSError as err:
            if flag:
                cgroup.remove()
                raise CgroupError(f"cannot apply {flag}: creating cgroup {directory} failed: {err.strerror}") from err
            continue  # no limit asked for: run without this controller
        cgroup.dirs[controller] = str(directory)
    return cgroup


def _create_v2(container_id: str, limits: Limits, hierarchy: Hierarchy) -> Cgroup:
    root = hierarchy.unified_root
    assert root is not None, "a v2 hierarchy always has its root"
    wanted = [name for name in (*CONTROLLERS, *ACCOUNTING) if name in hierarchy.roots]
    parent = root / PARENT
    directory = parent / container_id
    try:
        parent.mkdir(exist_ok=True)
        # Controllers reach a child only when every ancestor delegates them.
        for level in (root, parent):
            for name in wanted:
                _enable_controller(level, name)
        _make_fresh(directory)
    except OSError as err:
        flags = [flag for flag in map(limits.needs, CONTROLLERS) if flag]
        if flags:
            raise CgroupError(
                f"cannot apply {', '.join(flags)}: creating cgroup {directory} failed: {err.strerror}"
            ) from err
        return Cgroup(2)
    cgroup = Cgroup(2, {"unified": str(directory)})
    for controller in CONTROLLERS:
        flag = limits.needs(controller)
        if flag and controller not in hierarchy.roots:
            cgroup.remove()
            raise CgroupError(
                refusal(limits, hierarchy)
                if hierarchy.refusal
                else f"cannot apply {flag}: the cgroup v2 hierarchy at {root} does not offer the "
                f"'{controller}' controller (see {root / 'cgroup.controllers'}); run without {flag}"
            )
        if controller in hierarchy.roots:
            cgroup.dirs[controller] = str(directory)
    for controller in ACCOUNTING:
        if controller in hierarchy.roots:
            cgroup.dirs[controller] = str(directory)
    return cgroup


def _make_fresh(directory: Path) -> None:
    """A new directory, so no limit of an earlier run of the same container lingers.

    An earlier run's directory that is still busy means that run is still going: EBUSY says so.
    """
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir()


def _enable_controller(level: Path, name: str) -> None:
    control = level / "cgroup.subtree_control"
    if name in control.read_text().split():
        return
    try:
        control.write_text(f"+{name}")
    except OSError:
        pass  # reported later, by the limit that needs it, with the file it could not write


def _write_limits(cgroup: Cgroup, limits: Limits) -> None:
    memory_dir = cgroup.dirs.get("memory")
    swap_file = "memory.memsw.limit_in_bytes" if cgroup.version == 1 else "memory.swap.max"
    with_swap = memory_dir is not None and (Path(memory_dir) / swap_file).exists()
    for setting in settings_for(cgroup.version, limits, with_swap):
        path = Path(cgroup.dirs[setting.controller]) / setting.filename
        try:
            path.write_text(setting.value)
        except OSError as err:
            raise CgroupError(
                f"cannot apply {setting.flag}: writing {setting.value} to {path} failed: {err.strerror}"
            ) from err


def _v2_controllers(root: Path) -> set[str]:
    try:
        return set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1 : i + 4].isdigit():
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)
