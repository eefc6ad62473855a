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
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, Self

import zstandard

from logship.errors import InvalidParameter, SystemError_
from logship.runtime import userns

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

# Descriptors used to walk the tree: O_PATH needs no read permission on the directory, and O_NOFOLLOW
# makes the open fail rather than follow a link.
_WALK_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Descriptors we change metadata through (fchmod and fsetxattr refuse O_PATH descriptors).
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK lets a FIFO be opened for reading without waiting for a writer.
_FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC

_COPY_CHUNK = 1 << 20
_XATTR_PAX_PREFIX = "SCHILY.xattr."

# Magic numbers Docker's DetectCompression knows.
_GZIP_MAGIC = b"\x1f\x8b\x08"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# tarfile raises this (undeclared in typeshed) when it meets the zero block that ends an archive.
_END_OF_ARCHIVE: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]


class LayerObserver(Protocol):
    """Sees a layer as it is applied (`tarsplit.TarSplitter` keeps its tar headers, for push)."""

    def write(self, data: bytes, /) -> None:
        """The uncompressed bytes, in order, as they are read."""

    def member(self, member: tarfile.TarInfo, /) -> None:
        """A member, as soon as its header is parsed (before its contents are read)."""


def apply_layer(stream: BinaryIO, root: Path, observer: LayerObserver | None = None) -> str:
    """Extract a tar stream (plain, gzip, bzip2, xz or zstd) into the existing directory `root`, showing it
    to `observer` on the way.

    Returns the layer's diff id: "sha256:" + the digest of the whole uncompressed tar stream, as Docker
    computes it. Raises InvalidParameter naming the first member that breaks a rule (or describing why
    the stream is not a usable archive); whatever was extracted before stays in `root`, so callers
    extract into a staging directory they can throw away.
    """
    reader = _DigestingReader(decompressed(stream), observer)
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
        _extract(_DigestingReader(decompressed(stream)), writer, "the archive")
    except InvalidParameter as err:
        raise InvalidParameter(_for_copy(str(err))) from None


def _extract(reader: _DigestingReader, writer: _LayerWriter, what: str, observer: LayerObserver | None = None) -> None:
    """Every member of the tar stream through `writer`, which is closed at the end (and to `observer`)."""
    try:
        try:
            with tarfile.open(
                fileobj=reader, mode="r|", tarinfo=_StrictTarInfo, encoding="utf-8", errors="surrogateescape"
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


def is_compressed(head: bytes) -> bool:
    """Whether a stream starting with `head` (its first 6 bytes suffice) is compressed in a format
    `decompressed` recognises."""
    return head.startswith((_GZIP_MAGIC, _BZIP2_MAGIC, _XZ_MAGIC, _ZSTD_MAGIC))


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def decompressed(stream: BinaryIO) -> Readable:
    """The uncompressed bytes of `stream`, recognising the compression (gzip, bzip2, xz, zstd) from its
    first bytes; a plain stream is returned as is.
    Corrupt compressed data surfaces on read, as OSError, EOFError, zlib.error, lzma.LZMAError or
    zstandard.ZstdError."""
    head = _read_exactly_up_to(stream, len(_XZ_MAGIC))
    whole = io.BufferedReader(_Prefixed(head, stream))
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=whole, mode="rb")
    if head.startswith(_BZIP2_MAGIC):
        return bz2.BZ2File(whole)
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(whole)
    if head.startswith(_ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().stream_reader(whole, read_across_frames=True)
    return whole


def _read_exactly_up_to(stream: BinaryIO, size: int) -> bytes:
    """Pipes and sockets may hand out fewer bytes than asked; keep reading until `size` or EOF."""
    head = b""
    while len(head) < size:
        chunk = stream.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read to sniff the format, with those bytes put back."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            data, self._head = self._head[: len(view)], self._head[len(view) :]
        else:
            data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


class _DigestingReader(io.RawIOBase):
    """Hands tarfile the uncompressed bytes while hashing them for the diff id."""

    def __init__(self, source: Readable, observer: LayerObserver | None = None) -> None:
        super().__init__()
        self._source = source
        self._sha256 = hashlib.sha256()
        self._observer = observer

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._source.read(size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as err:
            # Decompressors report corrupt or cut-off input this way; tell the user which it was.
            raise InvalidParameter(
                f"cannot read the image archive: {err}; check that it is a complete tar file "
                "(plain, or compressed with gzip, bzip2 or xz)"
            ) from None
        self._sha256.update(data)
        if self._observer is not None:
            self._observer.write(data)
        return data

    def drain(self) -> None:
        while self.read(_COPY_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self._sha256.hexdigest()


class _StrictTarInfo(tarfile.TarInfo):
    """Headers parsed as usual, except that a cut-off or garbled header is an error.

    Python's tarfile quietly ends the archive at such a header once past the first member, which would
    turn a truncated upload into a half image. The zero block that properly ends an archive still ends it.
    """

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile_)
        except _END_OF_ARCHIVE:
            raise
        except tarfile.HeaderError as err:
            if tarfile_.offset == 0:
                if str(err) == "empty header":
                    raise InvalidParameter("the image archive is empty: no tar data was received") from None
                raise InvalidParameter(
                    f"the image archive is not a tar stream ({err}): export a root filesystem with "
                    "`docker export` or `tar -C <rootfs> -c .`"
                ) from None
            raise InvalidParameter(
                f"the image archive is truncated or corrupt: {err} at byte {tarfile_.offset}"
            ) from None


class _LayerWriter:
    """Writes members one at a time under a root directory held open as a descriptor."""

    def __init__(
        self,
        root: Path,
        whiteouts: bool = True,
        owner: tuple[int, int] | None = None,
        no_overwrite_dir_non_dir: bool = False,
    ) -> None:
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._keep_owners = os.geteuid() == 0  # only root may give files to other users
        # Inside a user namespace (a rootless daemon) only the mapped ids can own files.
        self._mapping = userns.read_mapping() if self._keep_owners and userns.in_user_namespace() else None
        self._whiteouts = whiteouts
        self._owner = owner  # (uid, gid) for every entry instead of the archive's
        self._no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        # Directory mtimes are set last: creating their children would change them again.
        self._directory_times: list[tuple[tuple[str, ...], int]] = []
        # Paths this layer wrote, which an opaque whiteout in the same layer must keep.
        self._written: set[tuple[str, ...]] = set()

    def close(self) -> None:
        os.close(self._root_fd)

    def add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        parts = _relative_parts(member.name, member.name, "its name")
        try:
            if self._whiteouts and parts and parts[-1].startswith(WHITEOUT_PREFIX):
                self._apply_whiteout(parts, member.name)
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
                parent = self._open_directory(parts[:-1], "/".join(parts), create_missing=False)
            except (FileNotFoundError, InvalidParameter):
                continue  # a later member replaced this directory; its own metadata already applies
            try:
                existing = _lstat(parts[-1], parent)
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    os.utime(parts[-1], ns=(mtime_ns, mtime_ns), dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)

    # -- walking ---------------------------------------------------------------------------------------

    def _open_directory(self, parts: tuple[str, ...], member: str, create_missing: bool) -> int:
        """An O_PATH descriptor on the directory `parts` below the root, reached without following links.

        Missing directories are created (0755, as Docker does) when `create_missing`; otherwise
        FileNotFoundError. A link or a non-directory on the way is refused.
        """
        fd = os.dup(self._root_fd)
        try:
            for depth, part in enumerate(parts):
                existing = _lstat(part, fd)
                if existing is None:
                    if not create_missing:
                        missing = "/".join(parts[: depth + 1])
                        raise FileNotFoundError(errno.ENOENT, "no such directory", missing)
                    _make_directory(part, fd, 0o755)
                elif stat.S_ISLNK(existing.st_mode):
                    raise InvalidParameter(
                        f"refusing tar member {member!r}: its path goes through the symbolic link "
                        f"{'/'.join(parts[: depth + 1])!r}, and extraction never follows links "
                        "(the archive is malformed or hostile)"
                    )
                elif not stat.S_ISDIR(existing.st_mode):
                    raise InvalidParameter(
                        f"refusing tar member {member!r}: {'/'.join(parts[: depth + 1])!r} "
                        "is not a directory in this image"
                    )
                next_fd = os.open(part, _WALK_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- members ---------------------------------------------------------------------------------------

    def _update_root(self, member: tarfile.TarInfo) -> None:
        """The "./" entry carries the root directory's own mode and owner."""
        if not member.isdir():
            raise InvalidParameter(
                f"refusing tar member {member.name!r}: the image root must be a directory, not a link or file"
            )
        self._set_metadata(self._root_fd, member)
        self._directory_times.append(((), _mtime_ns(member)))

    def _write_entry(self, parts: tuple[str, ...], member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        parent = self._open_directory(parts[:-1], member.name, create_missing=True)
        try:
            name = parts[-1]
            if member.islnk():
                self._write_hard_link(parent, name, parts, member)
                return
            existing = _lstat(name, parent)
            if existing is not None and self._no_overwrite_dir_non_dir:
                _refuse_kind_change(existing, member)
            keeps_directory = existing is not None and stat.S_ISDIR(existing.st_mode) and member.isdir()
            if existing is not None and not keeps_directory:
                _remove(name, parent, existing)
            if member.isreg():
                self._write_file(parent, name, member, archive)
            elif member.isdir():
                self._write_directory(parent, name, parts, member, create=not keeps_directory)
            elif member.issym():
                os.symlink(member.linkname, name, dir_fd=parent)
                if self._keep_owners:
                    os.chown(name, *self._owner_of(member), dir_fd=parent, follow_symlinks=False)
                mtime = _mtime_ns(member)
                os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
            else:  # a FIFO: _refuse_unsupported_type let nothing else through
                os.mkfifo(name, 0o600, dir_fd=parent)
                fd = os.open(name, _FIFO_FLAGS, dir_fd=parent)
                try:
                    self._set_metadata(fd, member)
                    os.utime(fd, ns=(_mtime_ns(member), _mtime_ns(member)))
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
                    shutil.copyfileobj(source, target, _COPY_CHUNK)
            self._set_metadata(fd, member)
            os.utime(fd, ns=(_mtime_ns(member), _mtime_ns(member)))
        finally:
            os.close(fd)

    def _write_directory(
        self, parent: int, name: str, parts: tuple[str, ...], member: tarfile.TarInfo, create: bool
    ) -> None:
        if create:
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        try:
            self._set_metadata(fd, member)
        finally:
            os.close(fd)
        self._directory_times.append((parts, _mtime_ns(member)))

    def _write_hard_link(self, parent: int, name: str, parts: tuple[str, ...], member: tarfile.TarInfo) -> None:
        target_parts = _relative_parts(member.linkname, member.name, "its hard link target")
        if target_parts == parts:
            return  # a link to itself: the entry is already there
        if not target_parts:
            raise InvalidParameter(f"refusing tar member {member.name!r}: a hard link cannot point at the image root")
        try:
            target_parent = self._open_directory(target_parts[:-1], member.name, create_missing=False)
        except FileNotFoundError:
            raise _missing_link_target(member) from None
        try:
            target = _lstat(target_parts[-1], target_parent)
            if target is None:
                raise _missing_link_target(member)
            if stat.S_ISDIR(target.st_mode):
                raise InvalidParameter(
                    f"refusing tar member {member.name!r}: its hard link target {member.linkname!r} is a directory"
                )
            existing = _lstat(name, parent)
            if existing is not None:
                _remove(name, parent, existing)
            # follow_symlinks=False links a symbolic link itself, never the file it points to.
            os.link(target_parts[-1], name, src_dir_fd=target_parent, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(target_parent)

    def _owner_of(self, member: tarfile.TarInfo) -> tuple[int, int]:
        """The owner to give the entry. In a rootless daemon's namespace without a subordinate range only
        0 exists, and everything belongs to it (as Podman's ignore_chown_errors); with a range, an id
        outside it is refused by name rather than failing with EINVAL."""
        if self._owner is not None:
            return self._owner
        mapping = self._mapping
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

    def _set_metadata(self, fd: int, member: tarfile.TarInfo) -> None:
        # chown first: it clears the setuid and setgid bits, and file capabilities, that follow.
        if self._keep_owners:
            os.fchown(fd, *self._owner_of(member))
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if key.startswith(_XATTR_PAX_PREFIX):
                _set_xattr(fd, key[len(_XATTR_PAX_PREFIX) :], value.encode("utf-8", "surrogateescape"))

    # -- whiteouts -------------------------------------------------------------------------------------

    def _apply_whiteout(self, parts: tuple[str, ...], member: str) -> None:
        marker = parts[-1]
        if marker != OPAQUE_WHITEOUT and marker.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS bookkeeping (hard link directories): nothing to apply
        hidden = marker[len(WHITEOUT_PREFIX) :]
        if marker != OPAQUE_WHITEOUT and hidden in ("", ".", ".."):
            raise InvalidParameter(f"refusing tar member {member!r}: it is a whiteout of no valid name")
        try:
            parent = self._open_directory(parts[:-1], member, create_missing=False)
        except FileNotFoundError:
            return  # nothing below a missing directory to hide
        try:
            if marker == OPAQUE_WHITEOUT:
                self._empty_opaque_directory(parent, parts[:-1])
            else:
                existing = _lstat(hidden, parent)
                if existing is not None:
                    _remove(hidden, parent, existing)
        finally:
            os.close(parent)

    def _empty_opaque_directory(self, directory: int, parts: tuple[str, ...]) -> None:
        """Remove what earlier layers left in an opaque directory, keeping what this layer wrote."""
        listing_fd = os.open(".", _DIR_FLAGS, dir_fd=directory)
        try:
            names = os.listdir(listing_fd)
        finally:
            os.close(listing_fd)
        for name in names:
            child = (*parts, name)
            existing = _lstat(name, directory)
            if existing is None:
                continue
            if child not in self._written:
                _remove(name, directory, existing)
            elif stat.S_ISDIR(existing.st_mode):
                inner = os.open(name, _WALK_FLAGS, dir_fd=directory)
                try:
                    self._empty_opaque_directory(inner, child)
                finally:
                    os.close(inner)


def _relative_parts(path: str, member: str, what: str) -> tuple[str, ...]:
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


def _lstat(name: str, directory: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove(name: str, directory: int, existing: os.stat_result) -> None:
    if stat.S_ISDIR(existing.st_mode):
        shutil.rmtree(name, dir_fd=directory)  # descriptor-based: never follows links inside
    else:
        os.unlink(name, dir_fd=directory)


def _make_directory(name: str, parent: int, mode: int) -> None:
    os.mkdir(name, 0o700, dir_fd=parent)
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        os.fchmod(fd, mode)  # explicit, so the daemon's umask does not decide
    finally:
        os.close(fd)


def _set_xattr(fd: int, name: str, value: bytes) -> None:
    try:
        os.setxattr(fd, name, value)
    except OSError as err:
        # As Docker: a filesystem or namespace that refuses an attribute does not fail the import.
        if err.errno not in (errno.ENOTSUP, errno.EPERM):
            raise


def _mtime_ns(member: tarfile.TarInfo) -> int:
    # A pax header keeps nanoseconds as decimal text; tarfile's float would round them.
    exact = member.pax_headers.get("mtime")
    if exact is not None:
        try:
            return int(Decimal(exact) * 1_000_000_000)
        except ArithmeticError:
            pass  # malformed: tarfile's own reading below decides
    return round(member.mtime * 1_000_000_000)
