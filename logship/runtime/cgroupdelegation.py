"""Where a rootless daemon may put its containers' cgroups: a cgroup v2 subtree delegated to its user.

Only root may make cgroups in the host's hierarchies. An ordinary user can limit memory, pids and CPU only
in a cgroup v2 directory that was delegated to them (made theirs, as systemd does for a user service with
`Delegate=yes`): logship uses the daemon's own cgroup when its user owns it. The kernel lets a cgroup give
controllers to its children only while no process sits in it, so the daemon first moves itself into a
leaf of it (`logshipd`), then enables the controllers the subtree is offered; its containers' cgroups go
to `logship/<id>` beside that leaf (logship.runtime.cgroups makes them). Without such a subtree containers
run without a cgroup of their own, and a limit is refused when the container is created, saying why and
what would make it possible.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from logship.runtime import cgroups

DAEMON_LEAF = "logshipd"
_SELF_CGROUP = Path("/proc/self/cgroup")
_SETUP_HINT = (
    "run the daemon in a cgroup v2 subtree its user owns, e.g. `systemd-run --user --scope -p Delegate=yes "
    "logship daemon` on a systemd machine with cgroup v2"
)


@dataclass(frozen=True)
class Delegation:
    """The delegated subtree (None when there is none), the controllers it offers, and what is missing."""

    directory: Path | None
    controllers: frozenset[str] = field(default_factory=frozenset)
    problem: str = ""  # why there is no subtree, or why it offers no controller; "" when all is well

    def hierarchy(self) -> cgroups.Hierarchy:
        """The hierarchy logship.runtime.cgroups makes the containers' cgroups in."""
        if self.directory is None:
            return cgroups.Hierarchy(2, {}, None, refusal=self.problem)
        offered = {
            name: self.directory for name in (*cgroups.CONTROLLERS, *cgroups.ACCOUNTING) if name in self.controllers
        }
        return cgroups.Hierarchy(2, offered, self.directory, refusal=self.problem)

    def summary(self) -> str:
        """One line for `logship info`."""
        if self.directory is None:
            return f"none ({self.problem})"
        limits = [name for name in cgroups.CONTROLLERS if name in self.controllers]
        offered = f"controllers {', '.join(limits)}" if limits else "no memory, pids or cpu controller"
        return f"{self.directory} ({offered})"


def own_cgroup(text: str) -> str | None:
    """The cgroup v2 path in /proc/self/cgroup's text (the `0::/path` line), or None."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def discover(mountinfo: Path = Path("/proc/self/mountinfo"), self_cgroup: Path = _SELF_CGROUP) -> Delegation:
    """Find the daemon's delegated subtree, without changing anything."""
    root = cgroups.v2_mount_point(mountinfo)
    if root is None:
        return Delegation(
            None,
            problem="this machine has no cgroup v2 hierarchy, and the cgroup v1 hierarchies are root's; "
            "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1), then " + _SETUP_HINT,
        )
    path = own_cgroup(self_cgroup.read_text())
    if path is None:
        return Delegation(None, problem=f"{self_cgroup} names no cgroup v2 path for the daemon; " + _SETUP_HINT)
    directory = root / path.lstrip("/")
    if directory.name == DAEMON_LEAF:  # a daemon started again in the leaf an earlier one moved to
        directory = directory.parent
    if not all(os.access(target, os.W_OK) for target in (directory, directory / "cgroup.procs")) or not os.access(
        directory / "cgroup.subtree_control", os.W_OK
    ):
        if not _hybrid(root):
            try:
                owner = f"it belongs to uid {directory.stat().st_uid}"
            except OSError as err:
                owner = f"it cannot be read: {err.strerror}"
            return Delegation(
                None, problem=f"the daemon's cgroup {directory} is not delegated to its user ({owner}); " + _SETUP_HINT
            )
        return Delegation(None, problem=_hybrid(root) + ", then " + _SETUP_HINT)
    controllers = frozenset(_controllers(directory))
    return Delegation(directory, controllers, _missing(root, directory, controllers))


def settle(delegation: Delegation) -> Delegation:
    """Move this process into the subtree's leaf and enable the offered controllers for the containers'
    cgroups. What fails becomes the delegation's problem (limits are then refused, saying so)."""
    directory = delegation.directory
    if directory is None:
        return delegation
    leaf = directory / DAEMON_LEAF
    try:
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as err:
        return Delegation(None, problem=f"cannot move the daemon into {leaf}: {err.strerror}; " + _SETUP_HINT)
    wanted = [name for name in (*cgroups.CONTROLLERS, *cgroups.ACCOUNTING) if name in delegation.controllers]
    enabled = set()
    for name in wanted:
        with contextlib.suppress(OSError):
            (directory / "cgroup.subtree_control").write_text(f"+{name}")
    with contextlib.suppress(OSError):
        enabled = set((directory / "cgroup.subtree_control").read_text().split())
    if any(name not in enabled for name in wanted):
        others = _other_processes(directory)
        reason = (
            f"other processes sit in it (pids {', '.join(others[:5])}), so the kernel lets no controller down to "
            "the containers; start the daemon in a cgroup of its own"
            if others
            else f"writing {directory / 'cgroup.subtree_control'} failed"
        )
        available = frozenset(name for name in delegation.controllers if name in enabled)
        return Delegation(
            directory, available, f"the delegated cgroup {directory} cannot hand controllers on: {reason}"
        )
    return delegation


def _hybrid(root: Path) -> str:
    """The reason when the v2 hierarchy has none of our controllers (a hybrid host: they are v1's), or ""."""
    if set(cgroups.CONTROLLERS) & _controllers(root):
        return ""
    return (
        f"this machine's cgroup v2 hierarchy ({root}) has none of the memory, pids and cpu controllers "
        "(they are in the cgroup v1 hierarchies, which are root's): boot with cgroup v2 alone "
        "(systemd.unified_cgroup_hierarchy=1)"
    )


def _missing(root: Path, directory: Path, controllers: frozenset[str]) -> str:
    absent = [name for name in cgroups.CONTROLLERS if name not in controllers]
    if not absent:
        return ""
    offered = " ".join(sorted(controllers)) or "none"
    return (
        f"the delegated cgroup {directory} is not offered the {', '.join(absent)} controller"
        f"{'s' if len(absent) > 1 else ''} (its cgroup.controllers: {offered}); "
        + (_hybrid(root) or "delegate them to the user (systemd: Delegate=memory pids cpu)")
    )


def _controllers(directory: Path) -> set[str]:
    try:
        return set((directory / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def _other_processes(directory: Path) -> list[str]:
    try:
        return [pid for pid in (directory / "cgroup.procs").read_text().split() if pid != str(os.getpid())]
    except OSError:
        return []
