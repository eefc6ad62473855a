"""Who the command runs as: `--user` and `--group-add` resolved in the container's own /etc/passwd and
/etc/group, as runc resolves them for Docker.

- `user[:group]`, each a name or a number. A number need not be in the files (uid 1000 with no entry
  runs as uid 1000, gid 0); a name must be (`unable to find user app: no matching entries in passwd
  file`).
- A user found by name or number gets its passwd gid and home, and, unless a group was given, the groups
  of /etc/group that list it as a member.
- The primary gid is also a supplementary group (Docker since 20.10.24/23.0.3, GHSA-hmfx-3pcx-653p), and
  `--group-add` entries (names looked up in /etc/group, numbers as they are) come after.

The files are read after pivot_root, so a symlinked /etc/passwd resolves inside the container.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from logship.runtime.init.errors import InitError

MAX_ID = 2147483647
ALL_IDS = 4294967295  # the count of the host namespace's single map line


class Identity:
    def __init__(self, uid: int, gid: int, groups: list[int], home: str) -> None:
        self.uid, self.gid, self.groups, self.home = uid, gid, groups, home


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise InitError(f"cannot read the container's {path}: {err.strerror}") from err
    return [line.split(":") for line in lines if line and not line.lstrip().startswith("#")]


def _number(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InitError(f"user and group ids must be in range 0-{MAX_ID}, got {text}")
    return value


def resolve(spec: str, group_add: Sequence[str]) -> Identity:
    user_arg, _, group_arg = spec.partition(":")
    uid_arg = _number(user_arg)
    identity = Identity(uid=0, gid=0, groups=[], home="/")
    matched_name = ""
    for fields in _entries("/etc/passwd"):
        if len(fields) < 7:
            continue
        uid, gid = _number(fields[2]), _number(fields[3])
        if uid is None or gid is None:
            continue
        if (
            (user_arg == "" and uid == 0)
            or (uid_arg is not None and uid == uid_arg)
            or (uid_arg is None and fields[0] == user_arg)
        ):
            identity = Identity(uid=uid, gid=gid, groups=[], home=fields[5] or "/")
            matched_name = fields[0]
            break
    else:
        if user_arg and uid_arg is None:
            raise InitError(f"unable to find user {user_arg}: no matching entries in passwd file")
        if uid_arg is not None:
            identity.uid = uid_arg
    groups = _entries("/etc/group") if (group_arg or matched_name or group_add) else []
    if group_arg:
        gid_arg = _number(group_arg)
        for fields in groups:
            if len(fields) >= 3 and (fields[0] == group_arg or (gid_arg is not None and _number(fields[2]) == gid_arg)):
                identity.gid = _number(fields[2]) or 0
                break
        else:
            if gid_arg is None:
                raise InitError(f"unable to find group {group_arg}: no matching entries in group file")
            identity.gid = gid_arg
    elif matched_name:
        for fields in groups:
            if len(fields) >= 4 and matched_name in fields[3].split(","):
                gid = _number(fields[2])
                if gid is not None:
                    identity.groups.append(gid)
    extra = []
    for name in group_add:
        gid = _number(name)
        for fields in groups:
            if len(fields) >= 3 and (fields[0] == name or (gid is not None and _number(fields[2]) == gid)):
                gid = _number(fields[2])
                break
        else:
            if gid is None:
                raise InitError(f"Unable to find group {name}: no matching entries in group file")
        extra.append(gid if gid is not None else 0)
    identity.groups = list(dict.fromkeys([identity.gid, *identity.groups, *extra]))
    return identity


def _mapped(path: str) -> list[tuple[int, int]]:
    """(first, count) of the ids a /proc/self/{uid,gid}_map makes usable in this user namespace."""
    with open(path) as file:
        lines = [(int(fields[0]), int(fields[2])) for fields in (line.split() for line in file) if len(fields) == 3]
    merged: list[tuple[int, int]] = []
    for first, count in sorted(lines):  # 0 -> the user and 1.. -> the range read as one span: 0-65536
        if merged and merged[-1][0] + merged[-1][1] == first:
            merged[-1] = (merged[-1][0], merged[-1][1] + count)
        else:
            merged.append((first, count))
    return merged


def in_user_namespace() -> bool:
    """True in any user namespace but the host's (whose map is `0 0 4294967295`): a rootless daemon's."""
    try:
        return _mapped("/proc/self/uid_map") != [(0, ALL_IDS)]
    except OSError:
        return False


def check_mapped(identity: Identity, spec: str) -> None:
    """In a rootless daemon's user namespace only the mapped ids exist: say which, rather than EINVAL."""
    for kind, ids, path in (
        ("uid", [identity.uid], "/proc/self/uid_map"),
        ("gid", identity.groups, "/proc/self/gid_map"),
    ):
        ranges = _mapped(path)
        if ranges == [(0, ALL_IDS)]:
            continue  # the host's own namespace: every id exists
        for value in ids:
            if any(first <= value < first + count for first, count in ranges):
                continue
            usable = ", ".join(str(first) if count == 1 else f"{first}-{first + count - 1}" for first, count in ranges)
            what = f"user {spec!r}" if spec else "the user"
            hint = (
                "the daemon's user has no subordinate range (/etc/subuid, /etc/subgid), so only its own id is "
                "mapped, as 0: run the container as root (-u 0), or give the user a range (usermod "
                "--add-subuids 100000-165535 --add-subgids 100000-165535 USER) and restart the daemon"
                if ranges and sum(count for _, count in ranges) == 1
                else "give the daemon's user a larger subordinate range in /etc/subuid and /etc/subgid "
                "and restart the daemon"
            )
            raise InitError(
                f"{what} needs {kind} {value}, which this rootless daemon's user namespace does not map "
                f"(it maps {kind}s {usable}): {hint}"
            )


def become(identity: Identity) -> None:
    """Switch to the identity; called by root with CAP_SETUID/CAP_SETGID, capabilities kept across it
    (PR_SET_KEEPCAPS) so that the bounding set applies as configured.

    A user namespace whose gid map the daemon wrote itself (no subordinate range) has setgroups denied
    by the kernel; its only group is 0, so there is nothing to set."""
    try:
        os.setgroups(identity.groups)
    except PermissionError:
        if not _setgroups_denied() or identity.groups != [identity.gid]:
            raise
    os.setresgid(identity.gid, identity.gid, identity.gid)
    os.setresuid(identity.uid, identity.uid, identity.uid)


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as file:
            return file.read().strip() == "deny"
    except OSError:
        return False
