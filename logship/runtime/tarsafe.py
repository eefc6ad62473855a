"""Extract an untrusted image layer (a tar stream) into a root directory without ever writing outside it.

Image archives come from users and registries, so every member is treated as hostile until checked.
The rules, applied member by member while the stream is read:

- names are relative: a leading "/" or any ".." component is refused;
- the path to a member is walked one directory at a time from a descriptor on the root, never following
  a symbolic link (O_NOFOLLOW at every step). A member whose path goes through a link is refused, even
  one that points back inside the root: links are only meant to be followed inside the container, after
  pivot_root, never by the extractor;
- files are created with O_CREAT | O_EXCL | O_NOFOLLOW after any old entry of that name is removed,
  so a link planted by an earlier member cannot redirect a write;
- hard links must name an earlier member of the same archive; device nodes are refused (the runtime
  gives containers their /dev); FIFOs are allowed;
- modes (setuid and setgid included: this is a root filesystem), owners (when running as root),
  mtimes and extended attributes (file capabilities live there) are kept.

Layers apply in order onto the same root: entries replace what earlier layers left, and AUFS-style
whiteouts (`.wh.<name>` removes `<name>`, `.wh..wh..opq` empties its directory) are honoured, as in
Docker's layer format. `apply_archive` applies the same rules to what `cp` copies into a container, where
`.wh.` names are plain files (as in Docker's cp) and owners are the container's root unless asked to keep
them. We never call tarfile's own extraction (or its filters, which Debian 12's Python
may lack); it only parses headers here.

This module holds the rules and the writer that applies them member by member. Beside it: `tarstream`
reads the archive's bytes (compression, the diff id, strict headers), `rootwalk` resolves paths inside the
root without following links, `whiteouts` applies a layer's whiteouts, `tarmeta` gives entries their
owners, modes, extended attributes and times.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from logship.errors import InvalidParameter, SystemError_
from logship.runtime import tarmeta
from logship.runtime.rootwalk import DIR_FLAGS, lstat, open_directory, relative_parts, remove
from logship.runtime.tarstream import COPY_CHUNK, DigestingReader, LayerObserver, StrictTarInfo, decompressed
from logship.runtime.whiteouts import WHITEOUT_PREFIX, apply_whiteout

_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK lets a FIFO be opened for reading without waiting for a writer.
_FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def apply_layer(stream: BinaryIO, root: Path, observer: LayerObserver | None = None) -> str:
    """Extract a tar stream (plain, gzip, bzip2, xz or zstd) into the existing directory `root`, showing it
    to `observer` on the way.

    Returns the layer's diff id: "sha256:" + the digest of the whole uncompressed tar stream, as Docker
    computes it. Raises InvalidParameter naming the first member that breaks a rule (or describing why
    the stream is not a usable archive); whatever was extracted before stays in `root`, so callers
    extract into a staging directory they can throw away.
    """
    reader = DigestingReader(decompressed(stream), observer)
    _extract(reader, _LayerWriter(root), "the image archive", observer)
    # The digest covers every byte, including padding after the end-of-archive blocks.
    reader.drain()
    return reader.digest()


def apply_archive(
    stream: BinaryIO, root: Path, owner: tuple[int, int] | None, no_overwrite_dir_non_dir: bool = False
) -> None:
    """Extract a tar stream (plain or compressed) that `cp` sends into the existing directory `root`:
    `apply_layer`'s rules, without whiteouts; every entry owned by `owner` (uid, gid), or as in the archive
    when None; with `no_overwrite_dir_non_dir`, a directory never replaces a file nor a file a directory."""
    writer = _LayerWriter(root, whiteouts=False, owner=owner, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
    try:
        _extract(DigestingReader(decompressed(stream)), writer, "the archive")
    except InvalidParameter as err:
        raise InvalidParameter(_for_copy(str(err))) from None


def _extract(reader: DigestingReader, writer: _LayerWriter, what: str, observer: LayerObserver | None = None) -> None:
    """Every member of the tar stream through `writer`, which is closed at the end (and to `observer`)."""
    try:
        try:
            with tarfile.open(
                fileobj=reader, mode="r|", tarinfo=StrictTarInfo, encoding="utf-8", errors="surrogateescape"
            ) as archive:
                for member in archive:
                    if observer is not None:
                        observer.member(member)
                    writer.add(member, archive)
        except tarfile.TarError as err:
            raise InvalidParameter(f"{what} is not a valid tar stream: {err}") from None
        writer.restore_directory_times()
    finally:
        writer.close()


def _for_copy(message: str) -> str:
    """The layer rules' messages, worded for an archive copied into a container."""
    for image_words, copy_words in (
        ("the image archive", "the archive"),
        ("the image root", "the destination directory"),
        ("image archives hold paths relative to the image root", "archives hold relative paths"),
        ("in this image", "in the container"),
        ("images may not carry device nodes (the runtime provides /dev)", "device nodes cannot be copied"),
    ):
        message = message.replace(image_words, copy_words)
    return message


class _LayerWriter:
    """Writes members one at a time under a root directory held open as a descriptor."""

    def __init__(
        self,
        root: Path,
        whiteouts: bool = True,
        owner: tuple[int, int] | None = None,
        no_overwrite_dir_non_dir: bool = False,
    ) -> None:
        self._root_fd = os.open(root, DIR_FLAGS)
        self._metadata = tarmeta.Metadata(owner)
        self._whiteouts = whiteouts
        self._no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        # Directory mtimes are set last: creating their children would change them again.
        self._directory_times: list[tuple[tuple[str, ...], int]] = []
        # Paths this layer wrote, which an opaque whiteout in the same layer must keep.
        self._written: set[tuple[str, ...]] = set()

    def close(self) -> None:
        os.close(self._root_fd)

    def add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        parts = relative_parts(member.name, member.name, "its name")
        try:
            if self._whiteouts and parts and parts[-1].startswith(WHITEOUT_PREFIX):
                apply_whiteout(self._root_fd, parts, member.name, self._written)
                return
            _refuse_unsupported_type(member)
            if not parts:
                self._update_root(member)
            else:
                self._write_entry(parts, member, archive)
        except OSError as err:
            raise _extraction_error(member.name, err) from err
        except (OverflowError, ValueError) as err:
            raise InvalidParameter(f"refusing tar member {member.name!r}: bad header value ({err})") from None
        self._written.add(parts)

    def restore_directory_times(self) -> None:
        for parts, mtime_ns in self._directory_times:
            if not parts:
                os.utime(self._root_fd, ns=(mtime_ns, mtime_ns))
                continue
            try:
                parent = open_directory(self._root_fd, parts[:-1], "/".join(parts), create_missing=False)
            except (FileNotFoundError, InvalidParameter):
                continue  # a later member replaced this directory; its own metadata already applies
            try:
                existing = lstat(parts[-1], parent)
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    os.utime(parts[-1], ns=(mtime_ns, mtime_ns), dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)

    # -- members ---------------------------------------------------------------------------------------

    def _update_root(self, member: tarfile.TarInfo) -> None:
        """The "./" entry carries the root directory's own mode and owner."""
        if not member.isdir():
            raise InvalidParameter(
                f"refusing tar member {member.name!r}: the image root must be a directory, not a link or file"
            )
        self._metadata.apply(self._root_fd, member)
        self._directory_times.append(((), tarmeta.mtime_ns(member)))

    def _write_entry(self, parts: tuple[str, ...], member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        parent = open_directory(self._root_fd, parts[:-1], member.name, create_missing=True)
        try:
            name = parts[-1]
            if member.islnk():
                self._write_hard_link(parent, name, parts, member)
                return
            existing = lstat(name, parent)
            if existing is not None and self._no_overwrite_dir_non_dir:
                _refuse_kind_change(existing, member)
            keeps_directory = existing is not None and stat.S_ISDIR(existing.st_mode) and member.isdir()
            if existing is not None and not keeps_directory:
                remove(name, parent, existing)
            if member.isreg():
                self._write_file(parent, name, member, archive)
            elif member.isdir():
                self._write_directory(parent, name, parts, member, create=not keeps_directory)
            elif member.issym():
                os.symlink(member.linkname, name, dir_fd=parent)
                if self._metadata.keep_owners:
                    os.chown(name, *self._metadata.owner_of(member), dir_fd=parent, follow_symlinks=False)
                mtime = tarmeta.mtime_ns(member)
                os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
            else:  # a FIFO: _refuse_unsupported_type let nothing else through
                os.mkfifo(name, 0o600, dir_fd=parent)
                fd = os.open(name, _FIFO_FLAGS, dir_fd=parent)
                try:
                    self._metadata.apply(fd, member)
                    os.utime(fd, ns=(tarmeta.mtime_ns(member), tarmeta.mtime_ns(member)))
                finally:
                    os.close(fd)
        finally:
            os.close(parent)

    def _write_file(self, parent: int, name: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            source = archive.extractfile(member)
            if source is not None:
                with open(fd, "wb", closefd=False) as target:
                    shutil.copyfileobj(source, target, COPY_CHUNK)
            self._metadata.apply(fd, member)
            os.utime(fd, ns=(tarmeta.mtime_ns(member), tarmeta.mtime_ns(member)))
        finally:
            os.close(fd)

    def _write_directory(
        self, parent: int, name: str, parts: tuple[str, ...], member: tarfile.TarInfo, create: bool
    ) -> None:
        if create:
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        try:
            self._metadata.apply(fd, member)
        finally:
            os.close(fd)
        self._directory_times.append((parts, tarmeta.mtime_ns(member)))

    def _write_hard_link(self, parent: int, name: str, parts: tuple[str, ...], member: tarfile.TarInfo) -> None:
        target_parts = relative_parts(member.linkname, member.name, "its hard link target")
        if target_parts == parts:
            return  # a link to itself: the entry is already there
        if not target_parts:
            raise InvalidParameter(f"refusing tar member {member.name!r}: a hard link cannot point at the image root")
        try:
            target_parent = open_directory(self._root_fd, target_parts[:-1], member.name, create_missing=False)
        except FileNotFoundError:
            raise _missing_link_target(member) from None
        try:
            target = lstat(target_parts[-1], target_parent)
            if target is None:
                raise _missing_link_target(member)
            if stat.S_ISDIR(target.st_mode):
                raise InvalidParameter(
                    f"refusing tar member {member.name!r}: its hard link target {member.linkname!r} is a directory"
                )
            existing = lstat(name, parent)
            if existing is not None:
                remove(name, parent, existing)
            # follow_symlinks=False links a symbolic link itself, never the file it points to.
            os.link(target_parts[-1], name, src_dir_fd=target_parent, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(target_parent)


def _refuse_unsupported_type(member: tarfile.TarInfo) -> None:
    if member.ischr() or member.isblk():
        kind = "character" if member.ischr() else "block"
        raise InvalidParameter(
            f"refusing tar member {member.name!r}: it is a {kind} device node; images may not carry device "
            "nodes (the runtime provides /dev), remove it from the archive"
        )
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()):
        raise InvalidParameter(f"refusing tar member {member.name!r}: unsupported tar entry type {member.type!r}")


def _refuse_kind_change(existing: os.stat_result, member: tarfile.TarInfo) -> None:
    """Docker's noOverwriteDirNonDir."""
    if stat.S_ISDIR(existing.st_mode) and not member.isdir():
        raise InvalidParameter(f'cannot overwrite directory "{member.name}" with non-directory "{member.name}"')
    if not stat.S_ISDIR(existing.st_mode) and member.isdir():
        raise InvalidParameter(f'cannot overwrite non-directory "{member.name}" with directory "{member.name}"')


def _missing_link_target(member: tarfile.TarInfo) -> InvalidParameter:
    return InvalidParameter(
        f"refusing tar member {member.name!r}: its hard link target {member.linkname!r} "
        "is not an earlier member of the archive"
    )


def _extraction_error(member: str, err: OSError) -> Exception:
    reason = err.strerror or str(err)
    if err.errno == errno.ENAMETOOLONG:
        return InvalidParameter(f"refusing tar member {member!r}: {reason}")
    return SystemError_(f"cannot extract tar member {member!r}: {reason}")
