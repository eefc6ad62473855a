"""The user namespace of a rootless daemon: which ids an ordinary user may map, and entering the namespace.

A daemon started by an ordinary user runs as root of a user namespace of its own, as dockerd does under
rootlesskit, but stays in the host's network, mount and pid namespaces: log drivers reach loopback
servers, unix sockets and the journal as any of the user's processes would, and `--network host` is the
host's network. Everything else of the runtime (supervisor, init, exec, image extraction) then works as for
root, inside the namespace: the kernel checks every file the daemon and its containers touch against the
user's real ids, so root in a container is the user on the host and nobody else.

The namespace maps:

    0        -> the user's own uid (gid)
    1 .. N   -> the user's subordinate ranges from /etc/subuid (/etc/subgid), in file order

written by Debian's setuid `newuidmap`/`newgidmap` (package `uidmap`), the only privileged helpers used:
logship has none of its own. A user with no range gets the single line `0 <uid> 1`, which the kernel lets
any process write for itself (with setgroups denied, as the kernel requires for a gid map written that way).

A restarted daemon must control the containers that outlived it, and only a process inside their
namespace may signal their non-root processes: so it joins the namespace of a running container's
supervisor when there is one (`enter(join=...)`), and makes a new one otherwise. The mapping is the same
every time, so files written by earlier namespaces (images, volumes, container layers) keep their owners.

The network work uses this module too: a rootless daemon's network namespaces are made inside this user
namespace (`current()` says whether the daemon is rootless, and with which mapping).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from logship import paths

CLONE_NEWUSER = 0x10000000
SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FULL_RANGE = 4294967295  # the initial namespace's map: "0 0 4294967295"


class UserNamespaceError(Exception):
    """The daemon cannot enter a user namespace; the message says why and what to do."""


@dataclass(frozen=True)
class IdRange:
    """One line of a uid_map or gid_map: ids inside..inside+count-1 are outside..outside+count-1 outside."""

    inside: int
    outside: int
    count: int

    def __str__(self) -> str:
        return f"{self.inside} {self.outside} {self.count}"


@dataclass(frozen=True)
class Mapping:
    """A user namespace's uid and gid maps."""

    uids: tuple[IdRange, ...]
    gids: tuple[IdRange, ...]

    def maps_uid(self, uid: int) -> bool:
        return _maps(self.uids, uid)

    def maps_gid(self, gid: int) -> bool:
        return _maps(self.gids, gid)

    @property
    def single(self) -> bool:
        """Only the user's own ids are mapped (no subordinate range): every id but 0 is unmapped."""
        return sum(r.count for r in self.uids) == 1 or sum(r.count for r in self.gids) == 1

    def describe(self) -> str:
        """`0-65536` style: the ids usable inside, uids then gids when they differ."""
        uids, gids = _span(self.uids), _span(self.gids)
        return uids if uids == gids else f"uids {uids}, gids {gids}"


def _maps(ranges: Iterable[IdRange], value: int) -> bool:
    return any(r.inside <= value < r.inside + r.count for r in ranges)


def _span(ranges: Sequence[IdRange]) -> str:
    """The ids usable inside, adjacent ranges joined: `0` and `1 100000 65536` read as 0-65536."""
    spans: list[list[int]] = []
    for r in sorted(ranges, key=lambda r: r.inside):
        if spans and spans[-1][1] + 1 == r.inside:
            spans[-1][1] = r.inside + r.count - 1
        else:
            spans.append([r.inside, r.inside + r.count - 1])
    return ", ".join(f"{first}" if first == last else f"{first}-{last}" for first, last in spans) or "none"


def subordinate_ranges(path: Path, name: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid or /etc/subgid gives the user, by name or by number, in file
    order. A missing file means none; malformed lines are skipped, as shadow's tools skip them."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    ranges = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (name, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if start >= 0 and count > 0:
            ranges.append((start, count))
    return ranges


def planned_mapping(
    uid: int, gid: int, subuids: Sequence[tuple[int, int]], subgids: Sequence[tuple[int, int]]
) -> Mapping:
    """The maps a rootless daemon asks for: 0 is the user, then the subordinate ranges one after another."""

    def ranges(own: int, sub: Sequence[tuple[int, int]]) -> tuple[IdRange, ...]:
        out, inside = [IdRange(0, own, 1)], 1
        for start, count in sub:
            out.append(IdRange(inside, start, count))
            inside += count
        return tuple(out)

    if not subuids or not subgids:  # both or neither: a uid range without a gid range is of no use
        return Mapping((IdRange(0, uid, 1),), (IdRange(0, gid, 1),))
    return Mapping(ranges(uid, subuids), ranges(gid, subgids))


def read_mapping(pid: int | str = "self") -> Mapping:
    def read(name: str) -> tuple[IdRange, ...]:
        lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
        return tuple(IdRange(*map(int, line.split())) for line in lines if line.strip())

    return Mapping(read("uid_map"), read("gid_map"))


def in_user_namespace() -> bool:
    """True inside any user namespace but the initial one (whose map is `0 0 4294967295`)."""
    try:
        return read_mapping().uids != (IdRange(0, 0, FULL_RANGE),)
    except OSError:
        return False


@dataclass(frozen=True)
class Rootless:
    """What a rootless daemon is: whose, with which mapping, and whether the user has subordinate ranges."""

    user: str
    uid: int  # the user's ids on the host
    gid: int
    mapping: Mapping
    subuids: tuple[tuple[int, int], ...]
    subgids: tuple[tuple[int, int], ...]
    joined: bool  # joined a running container's namespace (a restart) rather than making a new one

    @property
    def has_subordinate_range(self) -> bool:
        return bool(self.subuids and self.subgids)

    def range_note(self) -> str:
        """One line for `info` and error messages."""
        if self.has_subordinate_range:
            return f"ids {self.mapping.describe()} mapped (uid 0 is {self.user}, the rest from {SUBUID} and {SUBGID})"
        return (
            f"no subordinate range for {self.user} in {SUBUID} and {SUBGID}: only uid {self.uid} is mapped, "
            "as uid 0 (add a range with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
            f"{self.user}` and restart the daemon)"
        )


_current: Rootless | None = None


def current() -> Rootless | None:
    """The rootless daemon's namespace, or None when the daemon runs as root (or before `enter`)."""
    return _current


def enter(join: Iterable[int] = ()) -> Rootless:
    """Make this process root of the rootless user namespace: join the namespace of the first running
    process of `join` (container supervisors) that is one of this user's, else make a new one.

    Must be called while the process has one thread only (the kernel refuses setns otherwise): the daemon
    calls it before it starts anything. Raises UserNamespaceError.
    """
    global _current
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        raise UserNamespaceError("root runs containers without a user namespace of its own: nothing to enter")
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    subuids, subgids = subordinate_ranges(SUBUID, name, uid), subordinate_ranges(SUBGID, name, uid)
    wanted = planned_mapping(uid, gid, subuids, subgids)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise UserNamespaceError(f"cannot enter a user namespace: the daemon already runs {threads} threads")
    joined = False
    for pid in join:
        if _join(pid, uid):
            joined = True
            break
    else:
        _enter_new(wanted)
    if os.geteuid() != 0:
        raise UserNamespaceError(f"entered a user namespace but uid {uid} is not root in it (its map has no 0)")
    _current = Rootless(name, uid, gid, read_mapping(), tuple(subuids), tuple(subgids), joined)
    paths.mark_rootless()
    return _current


def _join(pid: int, uid: int) -> bool:
    """setns into the user namespace of `pid` when it is a namespace this user made (0 is this user)."""
    try:
        mapping = read_mapping(pid)
        fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError, TypeError):
        return False
    try:
        if not mapping.uids or mapping.uids[0] != IdRange(0, uid, 1):
            return False
        if os.fstat(fd).st_ino == os.stat("/proc/self/ns/user").st_ino:
            return True  # already there
        _setns(fd)
        return True
    finally:
        os.close(fd)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWUSER)) != 0:
        code = ctypes.get_errno()
        raise UserNamespaceError(f"cannot join the rootless user namespace: setns: {os.strerror(code)}")


def _enter_new(mapping: Mapping) -> None:
    """A helper process unshares a new user namespace; its maps are written from out here (only a process
    outside may write them with newuidmap), then this process joins it and the helper exits."""
    unshare = shutil.which("unshare", path=HOST_PATH)
    if unshare is None:
        raise UserNamespaceError("cannot make a user namespace: the `unshare` program (util-linux) is not installed")
    helper = subprocess.Popen(
        [unshare, "--user", "--", "/bin/sh", "-c", "echo ready && read -r _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
        start_new_session=True,
    )
    assert helper.stdin is not None and helper.stdout is not None and helper.stderr is not None
    try:
        if helper.stdout.readline() != b"ready\n":
            helper.wait()
            problem = helper.stderr.read().decode(errors="replace").strip()
            raise UserNamespaceError(f"cannot make a user namespace: {problem or 'unshare failed'}{_sysctl_hint()}")
        write_mapping(helper.pid, mapping)
        fd = os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            helper.stdin.close()
        try:
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
        helper.stdout.close()
        helper.stderr.close()


def write_mapping(pid: int, mapping: Mapping) -> None:
    """Write the maps of the user namespace `pid` is in (just unshared, no maps yet). A single-id map is
    written directly (the kernel allows a process its own ids, setgroups denied); ranges go through
    newuidmap/newgidmap, which check them against /etc/subuid and /etc/subgid."""
    if mapping.single:
        try:
            Path(f"/proc/{pid}/uid_map").write_text(f"{mapping.uids[0]}\n")
            Path(f"/proc/{pid}/setgroups").write_text("deny\n")
            Path(f"/proc/{pid}/gid_map").write_text(f"{mapping.gids[0]}\n")
        except OSError as err:
            raise UserNamespaceError(f"cannot map the user's own ids in a new user namespace: {err}") from err
        return
    for program, ranges in (("newuidmap", mapping.uids), ("newgidmap", mapping.gids)):
        found = shutil.which(program, path=HOST_PATH)
        if found is None:
            raise UserNamespaceError(
                f"the user has a subordinate range but `{program}` is not installed: "
                "apt-get install uidmap (Debian's newuidmap and newgidmap)"
            )
        args = [str(value) for r in ranges for value in (r.inside, r.outside, r.count)]
        done = subprocess.run([found, str(pid), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise UserNamespaceError(
                f"{program} {pid} {' '.join(args)} failed: {done.stderr.strip() or f'exit code {done.returncode}'}"
                f" (check the user's lines in {SUBUID} and {SUBGID}, and that {found} is setuid root)"
            )


def _sysctl_hint() -> str:
    """Why the kernel may refuse an ordinary user a user namespace, with the setting to change."""
    hints = []
    for setting, bad in (
        ("user/max_user_namespaces", "0"),
        ("kernel/unprivileged_userns_clone", "0"),
        ("kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        with contextlib.suppress(OSError):
            if Path(f"/proc/sys/{setting}").read_text().strip() == bad:
                hints.append(f"sysctl {setting.replace('/', '.')} is {bad}")
    if hints:
        return " (" + "; ".join(hints) + ": ordinary users may not make user namespaces here)"
    return ""
