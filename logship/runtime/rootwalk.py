"""Paths inside a root directory held open as a descriptor, reached one component at a time without
ever following a symbolic link, and the few operations the extractor makes on them.

Apart from the tar rules (`logship.runtime.tarsafe`) and whiteouts (`logship.runtime.whiteouts`), which
both resolve member paths this way: this module is the one place that decides a path stays inside the
root.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from logship.errors import InvalidParameter

# Descriptors used to walk the tree: O_PATH needs no read permission on the directory, and O_NOFOLLOW
# makes the open fail rather than follow a link.
WALK_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Descriptors we change metadata through (fchmod and fsetxattr refuse O_PATH descriptors).
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def relative_parts(path: str, member: str, what: str) -> tuple[str, ...]:
    """The components of an archive path, refusing absolute paths and any "..": the root's own
    entry ("." or "./") has no components."""
    if path.startswith("/"):
        raise InvalidParameter(
            f"refusing tar member {member!r}: {what} {path!r} is an absolute path; "
            "image archives hold paths relative to the image root"
        )
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    if ".." in parts:
        raise InvalidParameter(
            f"refusing tar member {member!r}: {what} {path!r} contains '..', which would climb out of the image root"
        )
    return parts


def open_directory(root_fd: int, parts: tuple[str, ...], member: str, create_missing: bool) -> int:
    """An O_PATH descriptor on the directory `parts` below the root `root_fd`, reached without following links.

    Missing directories are created (0755, as Docker does) when `create_missing`; otherwise
    FileNotFoundError. A link or a non-directory on the way is refused.
    """
    fd = os.dup(root_fd)
    try:
        for depth, part in enumerate(parts):
            existing = lstat(part, fd)
            if existing is None:
                if not create_missing:
                    missing = "/".join(parts[: depth + 1])
                    raise FileNotFoundError(errno.ENOENT, "no such directory", missing)
                make_directory(part, fd, 0o755)
            elif stat.S_ISLNK(existing.st_mode):
                raise InvalidParameter(
                    f"refusing tar member {member!r}: its path goes through the symbolic link "
                    f"{'/'.join(parts[: depth + 1])!r}, and extraction never follows links "
                    "(the archive is malformed or hostile)"
                )
            elif not stat.S_ISDIR(existing.st_mode):
                raise InvalidParameter(
                    f"refusing tar member {member!r}: {'/'.join(parts[: depth + 1])!r} is not a directory in this image"
                )
            next_fd = os.open(part, WALK_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


def lstat(name: str, directory: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None


def remove(name: str, directory: int, existing: os.stat_result) -> None:
    if stat.S_ISDIR(existing.st_mode):
        shutil.rmtree(name, dir_fd=directory)  # descriptor-based: never follows links inside
    else:
        os.unlink(name, dir_fd=directory)


def make_directory(name: str, parent: int, mode: int) -> None:
    os.mkdir(name, 0o700, dir_fd=parent)
    fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    try:
        os.fchmod(fd, mode)  # explicit, so the daemon's umask does not decide
    finally:
        os.close(fd)
