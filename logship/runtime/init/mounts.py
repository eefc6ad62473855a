"""The user's mounts (binds, volumes, tmpfs) and a read-only root, done inside the container's root.

Sources are host paths: each is opened (O_PATH) before pivot_root, while the host's tree is still
the root, so host symlinks in a source resolve on the host as the user meant. Targets are resolved
after pivot_root one component at a time (`open_target`), with missing components created on the way:
a symlink in the image (`/data -> /../../etc`) or in a mounted directory resolves inside the
container's root, never on the host, and /proc's magic links are followed as text, not as the kernel
would follow them. The mount is then made on /proc/self/fd/N of the opened target, so nothing can swap
the path between the check and the mount (runc's approach since CVE-2021-30465).

A volume mounted for the first time while empty gets a copy of what the image has at its target
(Docker's copy-up, `nocopy` turns it off), with the target's owner and mode.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from logship.runtime.init.errors import InitError
from logship.runtime.init.syscalls import (
    MS_BIND,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
)

O_PATH = 0o10000000
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


class Mount:
    """One entry of init.json's "mounts", in the order to mount them (parents before children). A plain
    class: dataclasses would cost init's every start a few milliseconds of imports."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.type: str = item["type"]  # bind | volume | tmpfs
        self.target: str = item["target"]
        self.source: str = item.get("source", "")  # host path (bind, volume)
        self.readonly = bool(item.get("readonly"))
        self.flags = int(item.get("flags", 0))  # tmpfs mount flags
        self.data: str = item.get("data", "")  # tmpfs options (size=, mode=)
        self.copy_up = bool(item.get("copy_up"))  # volume: fill it from the image when empty
        self.source_fd = -1  # opened before pivot_root


def open_sources(mounts: list[Mount]) -> None:
    """Before pivot_root: every bind and volume source, as the host sees it."""
    for item in mounts:
        if item.type in ("bind", "volume"):
            try:
                item.source_fd = os.open(item.source, O_PATH | os.O_CLOEXEC)
            except OSError as err:
                raise InitError(
                    f"error while mounting {item.source} on {item.target}: {err.strerror}: {item.source}"
                ) from err


def open_target(target: str, directory: bool) -> int:
    """An O_PATH fd of `target` resolved inside "/", creating what is missing (directories on the way,
    and the last component as a directory or an empty file).

    One component at a time, each opened with O_NOFOLLOW relative to the directory found so far: a
    symlink is read and its text followed inside the root ('..' stops at the root, an absolute link
    starts again from it), so neither an image's symlink nor a /proc magic link leads outside."""
    root = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    pending = [part for part in target.split("/") if part and part != "."]
    done: list[str] = []
    current = os.dup(root)
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == "..":
                if done:
                    done.pop()
                os.close(current)
                current = _reopen(root, done)
                continue
            last = not pending
            try:
                fd = os.open(part, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            except FileNotFoundError:
                if last and not directory:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                    os.close(os.open(part, flags, 0o644, dir_fd=current))
                else:
                    os.mkdir(part, 0o755, dir_fd=current)
                fd = os.open(part, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise InitError(f"cannot mount on {target}: too many levels of symbolic links")
                link = os.readlink(part, dir_fd=current)
                if link.startswith("/"):
                    done = []
                    os.close(current)
                    current = os.dup(root)
                pending[:0] = [piece for piece in link.split("/") if piece and piece != "."]
                continue
            if not last and not stat.S_ISDIR(mode):
                os.close(fd)
                raise InitError(
                    f"cannot mount on {target}: /{'/'.join([*done, part])} in the container is not a directory"
                )
            os.close(current)
            current = fd
            done.append(part)
            if done == ["proc"]:  # runc's rule (CVE-2019-16884): /proc is the kernel's, not a mount point
                raise InitError(f'"{target}" cannot be mounted because it is inside /proc')
        return current
    except BaseException:
        os.close(current)
        raise
    finally:
        os.close(root)


def _reopen(root: int, parts: list[str]) -> int:
    """The directory `parts` below root again (after '..'); every part was resolved without links."""
    fd = os.dup(root)
    for part in parts:
        next_fd = os.open(part, O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        os.close(fd)
        fd = next_fd
    return fd


def mount_all(mounts: list[Mount]) -> None:
    for item in mounts:
        try:
            _mount_one(item)
        except OSError as err:
            what = item.source or item.type
            raise InitError(f"error while mounting {what} on {item.target}: {err.strerror}") from err


def _mount_one(item: Mount) -> None:
    if item.type == "tmpfs":
        target = open_target(item.target, directory=True)
        try:
            mount("tmpfs", f"/proc/self/fd/{target}", "tmpfs", item.flags, item.data or None)
        finally:
            os.close(target)
        return
    source_is_dir = stat.S_ISDIR(os.fstat(item.source_fd).st_mode)
    target = open_target(item.target, directory=source_is_dir)
    try:
        target_is_dir = stat.S_ISDIR(os.fstat(target).st_mode)
        if source_is_dir != target_is_dir:
            kind = "a directory" if source_is_dir else "a file"
            raise InitError(
                f"cannot mount {kind} ({item.source}) on {item.target}: the container has the other kind there"
            )
        if item.copy_up and target_is_dir:
            _copy_up(target, item.source_fd)
        path = f"/proc/self/fd/{target}"
        # Private already: "/" was made rprivate after unshare, so the bind (of a private source) is too.
        mount(f"/proc/self/fd/{item.source_fd}", path, None, MS_BIND | MS_REC)
        if item.readonly:
            # The remount applies to the new bind mount (reached through the same fd's path again).
            remount = open_target(item.target, directory=True)
            try:
                mount(None, f"/proc/self/fd/{remount}", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(remount))
            finally:
                os.close(remount)
    finally:
        os.close(target)
        os.close(item.source_fd)
        item.source_fd = -1


def _locked_flags(fd: int) -> int:
    """nosuid/nodev/noexec of the mount: a read-only remount must keep them."""
    flags = os.fstatvfs(fd).f_flag
    return flags & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME | os.ST_RELATIME)


def _copy_up(target_fd: int, volume_fd: int) -> None:
    """Docker's first-use copy: what the image has at the target goes into an empty volume, owners,
    modes and times kept, symlinks copied as symlinks (never followed)."""
    volume = f"/proc/self/fd/{volume_fd}"
    if os.listdir(volume):
        return
    image_dir = f"/proc/self/fd/{target_fd}"
    info = os.stat(image_dir)
    os.chown(volume, info.st_uid, info.st_gid)
    os.chmod(volume, stat.S_IMODE(info.st_mode))
    _copy_tree(image_dir, volume)


def _copy_tree(source: str, destination: str) -> None:
    for entry in os.scandir(source):
        target = os.path.join(destination, entry.name)
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(entry.path), target)
        elif stat.S_ISDIR(info.st_mode):
            os.mkdir(target, 0o700)
            _copy_tree(entry.path, target)
        elif stat.S_ISREG(info.st_mode):
            _copy_file(entry.path, target)
        elif stat.S_ISFIFO(info.st_mode):
            os.mkfifo(target, 0o600)
        else:
            continue  # sockets and device nodes are not copied
        os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(info.st_mode):
            os.chmod(target, stat.S_IMODE(info.st_mode))
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_file(source: str, target: str) -> None:
    with open(source, "rb") as reader, open(target, "xb") as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)


def make_readonly(path: str) -> None:
    """Remount the mount at `path` read-only, keeping its nosuid/nodev/noexec (which a user namespace locks)."""
    fd = os.open(path, O_PATH | os.O_CLOEXEC)
    try:
        flags = _locked_flags(fd)
    finally:
        os.close(fd)
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


def make_root_readonly() -> None:
    """--read-only: the root mount only; tmpfs, volumes, binds, /dev and /proc keep their own modes."""
    make_readonly("/")
