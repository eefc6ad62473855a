"""The process that reads and writes a container's files for `cp` (the archive API), inside its root.

It chroots into the container's root filesystem before touching any path, so a path the user gives, and
every symbolic link on the way, resolves inside the container as it would for the container's own
processes: an absolute link or a `..` can climb no higher than the container's `/` (dockerd resolves such
paths "in scope" the same way). A running container's root is `/proc/<pid 1>/root`; a stopped one's is
its overlay, which this process mounts in a private mount namespace of its own (`unshare --mount`), so the
mount never shows on the host and goes away with the process.

Run by the daemon (`logship.runtime.archive`) as

    [unshare --mount --propagation private --] python -I -m logship.runtime.archiveworker \\
        (--root DIR | --overlay LOWER UPPER WORK MERGED) (stat|get|put) PATH [options]

and talks on stdout: a first line of JSON, `{"stat": {...}}` or `{"error": ..., "status": N}`; then for
`get` the tar stream; for `put`, after that first line, the tar is read from stdin and a last line says
`{"done": true}` or what went wrong. Everything it needs is imported before the chroot.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from logship.errors import InvalidParameter, LogshipError
from logship.runtime.tarsafe import apply_archive

MS_NOSUID = 2
MS_NODEV = 4
CHUNK = 1 << 20

# Go's os.FileMode bits above the permissions, which the docker CLI decodes from the path stat.
GO_MODE_BITS = (
    (stat.S_ISDIR, 1 << 31),
    (stat.S_ISLNK, 1 << 27),
    (stat.S_ISBLK, 1 << 26),
    (stat.S_ISFIFO, 1 << 25),
    (stat.S_ISSOCK, 1 << 24),
    (stat.S_ISCHR, (1 << 26) | (1 << 21)),
)


class Refused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def say(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(json.dumps(message).encode() + b"\n")
    sys.stdout.buffer.flush()


def go_mode(info: os.stat_result) -> int:
    mode = info.st_mode & 0o777
    for test, bit in GO_MODE_BITS:
        if test(info.st_mode):
            mode |= bit
    if info.st_mode & stat.S_ISUID:
        mode |= 1 << 23
    if info.st_mode & stat.S_ISGID:
        mode |= 1 << 22
    if info.st_mode & stat.S_ISVTX:
        mode |= 1 << 20
    return mode


def rfc3339_nano(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{nanos:09d}".rstrip("0").rstrip(".") + "Z"


def absolute(path: str) -> str:
    """The path from the container's `/`, keeping a trailing "/" or "/." (they mean: follow the last link)."""
    joined = os.path.normpath("/" + path.lstrip("/"))  # normpath keeps a leading "//"
    if path.endswith("/.") or path == ".":
        return joined.rstrip("/") + "/."
    if path.endswith("/") and joined != "/":
        return joined + "/"
    return joined


def resolve(path: str) -> str:
    """dockerd's GetResourcePath for a path we stat or copy: every link on the way is followed (inside the
    root: we are chrooted), the last component only with a trailing "/" or "/."."""
    if path.endswith(("/", "/.")):
        return os.path.realpath(path)
    parent, base = os.path.split(path)
    return os.path.join(os.path.realpath(parent), base) if base else os.path.realpath(path)


def path_stat(path: str, container: str) -> tuple[str, dict[str, Any]]:
    resolved = resolve(path)
    try:
        info = os.lstat(resolved)
    except (FileNotFoundError, NotADirectoryError):
        raise Refused(f"Could not find the file {path.rstrip('/') or '/'} in container {container}", 404) from None
    name = "." if path.endswith("/.") else (os.path.basename(path.rstrip("/")) or "/")
    link_target = os.path.realpath(resolved) if stat.S_ISLNK(info.st_mode) else ""
    return (
        resolved,
        {
            "name": name,
            "size": info.st_size,
            "mode": go_mode(info),
            "mtime": rfc3339_nano(info.st_mtime_ns),
            "linkTarget": link_target,
        },
    )


def write_tar(source: str, name: str, out: BinaryIO) -> None:
    """The tar of `source` with its top entry named `name`, streamed: files are read a chunk at a time.
    Directories are walked without following links and without leaving the file system they start on
    (a running container's /proc, /sys and /dev are mounts of their own, as they are not in dockerd's view)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as archive:
        add_entry(archive, source, name)
        info = os.lstat(source)
        if not stat.S_ISDIR(info.st_mode):
            return
        device = info.st_dev
        for directory, subdirs, files in os.walk(source, followlinks=False):
            relative = os.path.relpath(directory, source)
            keep = []
            for sub in sorted(subdirs):
                full = os.path.join(directory, sub)
                add_entry(archive, full, os.path.normpath(os.path.join(name, relative, sub)))
                try:
                    sub_info = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISDIR(sub_info.st_mode) and sub_info.st_dev == device:
                    keep.append(sub)
            subdirs[:] = keep
            for file in sorted(files):
                add_entry(archive, os.path.join(directory, file), os.path.normpath(os.path.join(name, relative, file)))


def add_entry(archive: tarfile.TarFile, path: str, name: str) -> None:
    try:
        info = archive.gettarinfo(path, arcname=name)
    except OSError:
        return  # gone meanwhile
    if info is None:  # a socket: tar has no type for it (dockerd skips them too)
        return
    if info.isdir() and not info.name.endswith("/"):
        info.name += "/"
    if info.isreg():
        try:
            with open(path, "rb") as file:
                archive.addfile(info, file)
        except OSError:
            return
    else:
        archive.addfile(info)


def enter_root(args: argparse.Namespace) -> None:
    if args.overlay:
        lower, upper, work, merged = args.overlay
        for directory in (upper, work, merged):
            Path(directory).mkdir(parents=True, exist_ok=True)
        mount_overlay(lower, upper, work, merged)
        root = merged
    else:
        root = args.root
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(fd)
    os.chroot(".")
    os.close(fd)
    os.chdir("/")


def mount_overlay(lower: str, upper: str, work: str, merged: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    if libc.mount(b"overlay", merged.encode(), b"overlay", ctypes.c_ulong(MS_NOSUID | MS_NODEV), options) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mounting the container's file system failed: {os.strerror(code)}")


def main(argv: list[str]) -> NoReturn:
    parser = argparse.ArgumentParser(prog="archiveworker")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--root")
    where.add_argument("--overlay", nargs=4)
    parser.add_argument("--container", default="")
    parser.add_argument("--owner", default="")  # "uid:gid" for what put writes; "" keeps the archive's
    parser.add_argument("--no-overwrite-dir-non-dir", action="store_true")
    parser.add_argument("action", choices=("stat", "get", "put"))
    parser.add_argument("path")
    args = parser.parse_args(argv)
    try:
        enter_root(args)
        path = absolute(args.path)
        if args.action == "put":
            put(path, args)
        resolved, path_info = path_stat(path, args.container)
        say({"stat": path_info})
        if args.action == "get":
            write_tar(resolved, path_info["name"], sys.stdout.buffer)
            sys.stdout.buffer.flush()
    except Refused as err:
        say({"error": err.message, "status": err.status})
        os._exit(1)
    except OSError as err:
        say({"error": f"{err.strerror or err}: {args.path}", "status": 500})
        os._exit(1)
    os._exit(0)


def put(path: str, args: argparse.Namespace) -> NoReturn:
    resolved = os.path.realpath(path)  # an extraction point is followed to the end, as dockerd does
    try:
        info = os.stat(resolved)
    except (FileNotFoundError, NotADirectoryError):
        raise Refused(f"Could not find the file {args.path} in container {args.container}", 404) from None
    if not stat.S_ISDIR(info.st_mode):
        raise Refused("extraction point is not a directory", 400)
    say({"stat": {"name": os.path.basename(path) or "/", "mode": go_mode(info)}})
    owner = None
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        owner = (int(uid), int(gid or uid))
    try:
        apply_archive(sys.stdin.buffer, Path(resolved), owner, args.no_overwrite_dir_non_dir)
    except InvalidParameter as err:
        say({"error": str(err), "status": 400})
        os._exit(1)
    except LogshipError as err:
        say({"error": str(err), "status": 500})
        os._exit(1)
    say({"done": True})
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
