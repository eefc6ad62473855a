"""What an extracted entry keeps from its tar header: its owner (mapped for a rootless daemon, or the one
`cp` asks for), its mode with setuid and setgid, its extended attributes (file capabilities live there)
and its mtime to the nanosecond.

Apart from the extraction rules (`logship.runtime.tarsafe`), which decide where an entry goes: this
decides what it looks like once there, the one part that depends on who runs the daemon.
"""

from __future__ import annotations

import errno
import os
import tarfile
from decimal import Decimal

from logship.errors import InvalidParameter
from logship.runtime import userns

_XATTR_PAX_PREFIX = "SCHILY.xattr."


class Metadata:
    """Gives entries their header's metadata, as far as the daemon's user may."""

    def __init__(self, owner: tuple[int, int] | None = None) -> None:
        self.keep_owners = os.geteuid() == 0  # only root may give files to other users
        # Inside a user namespace (a rootless daemon) only the mapped ids can own files.
        self.mapping = userns.read_mapping() if self.keep_owners and userns.in_user_namespace() else None
        self.owner = owner  # (uid, gid) for every entry instead of the archive's

    def owner_of(self, member: tarfile.TarInfo) -> tuple[int, int]:
        """The owner to give the entry. In a rootless daemon's namespace without a subordinate range only
        0 exists, and everything belongs to it (as Podman's ignore_chown_errors); with a range, an id
        outside it is refused by name rather than failing with EINVAL."""
        if self.owner is not None:
            return self.owner
        mapping = self.mapping
        if mapping is not None:
            if mapping.single:
                return 0, 0
            if not mapping.maps_uid(member.uid) or not mapping.maps_gid(member.gid):
                raise InvalidParameter(
                    f"refusing tar member {member.name!r}: it belongs to uid {member.uid}, gid {member.gid}, "
                    f"which this rootless daemon's user namespace does not map (ids {mapping.describe()}); "
                    "give the daemon's user a larger subordinate range in /etc/subuid and /etc/subgid"
                )
        return member.uid, member.gid

    def apply(self, fd: int, member: tarfile.TarInfo) -> None:
        """The owner, mode and extended attributes of `member` on the entry open as `fd`."""
        # chown first: it clears the setuid and setgid bits, and file capabilities, that follow.
        if self.keep_owners:
            os.fchown(fd, *self.owner_of(member))
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if key.startswith(_XATTR_PAX_PREFIX):
                _set_xattr(fd, key[len(_XATTR_PAX_PREFIX) :], value.encode("utf-8", "surrogateescape"))


def _set_xattr(fd: int, name: str, value: bytes) -> None:
    try:
        os.setxattr(fd, name, value)
    except OSError as err:
        # As Docker: a filesystem or namespace that refuses an attribute does not fail the import.
        if err.errno not in (errno.ENOTSUP, errno.EPERM):
            raise


def mtime_ns(member: tarfile.TarInfo) -> int:
    # A pax header keeps nanoseconds as decimal text; tarfile's float would round them.
    exact = member.pax_headers.get("mtime")
    if exact is not None:
        try:
            return int(Decimal(exact) * 1_000_000_000)
        except ArithmeticError:
            pass  # malformed: tarfile's own reading below decides
    return round(member.mtime * 1_000_000_000)
