"""An image archive opened for reading: the outer tar of a `docker load` upload, indexed for random
access, with the checked ways to read what is in it.

The archive is hostile until checked; this module is where nothing of it reaches the disk unchecked, so
that the readers of each format (`dockersave`, `ocilayout`) ask it for documents and layers by the paths
or digests their manifests give and need not take care of that themselves:

- the outer tar is never extracted. The upload is a seekable file; each layer is read from its place in
  it. Paths that manifests name must be relative, without "..", and links between members of the outer
  tar are followed only through the archive's own table of members, never outside the archive;
- documents are read into memory only up to a size, and checked against their digest when one is known;
- every layer's stored bytes are hashed while they are read and must match their digest, and its
  uncompressed content must match the config's `rootfs.diff_ids`, which the image ID (the digest of the
  config) vouches for;
- layers are applied in order by `tarsafe.apply_layer` (relative names, no links followed, no device
  nodes, whiteouts honoured) into a staging directory the store throws away if anything fails.

Opening blocks (a compressed upload is decompressed first): run it in a worker thread.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import lzma
import os
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

import zstandard

from logship.errors import InvalidParameter
from logship.runtime.layers import Blob, LayerApplier
from logship.runtime.tarsplit import apply_and_split
from logship.runtime.tarstream import Readable, decompressed, is_compressed

# Called with (layer ID: the first 12 hex digits of its diff ID, bytes read so far, bytes in all).
LayerProgress = Callable[[str, int, int], None]

# Manifests, indexes and configs are read into memory; real ones are kilobytes.
_MAX_DOCUMENT_SIZE = 16 << 20
_MAX_LINK_HOPS = 16
_COPY_CHUNK = 1 << 20
_SNIFF_SIZE = 6  # enough bytes to recognise every compression format
# A layer's progress is reported about every 1% of it, and at least every 512 KiB read.
_PROGRESS_MIN_STEP = 512 << 10


@dataclass(frozen=True)
class ArchivedLayer:
    path: str  # where the layer is in the archive, for messages
    member: tarfile.TarInfo  # the regular file holding it (links already resolved)
    digest: str | None  # "sha256:<hex>" its stored bytes must hash to, when the archive names one
    diff_id: str  # "sha256:<hex>" its uncompressed tar must hash to, from the image config


@dataclass(frozen=True)
class ArchivedImage:
    config: bytes  # kept byte for byte: the image ID is its digest
    repo_tags: tuple[str, ...]  # normalised familiar names, "busybox:latest"; empty for an untagged image
    layers: tuple[ArchivedLayer, ...]
    source: str  # where in the archive it is described, for messages

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


def open_archive(upload: BinaryIO, scratch_dir: Path) -> ImageArchive:
    """The archive in the seekable file `upload`, which it takes over (closing it when the archive is
    closed, or at once on failure). A compressed upload is first decompressed into a temporary file
    under `scratch_dir`: reading images needs random access, which compressed streams do not give."""
    try:
        upload.seek(0)
        head = upload.read(_SNIFF_SIZE)
        upload.seek(0)
        if not is_compressed(head):
            return ImageArchive(upload)
        plain = tempfile.TemporaryFile(dir=scratch_dir)  # noqa: SIM115 - the archive owns it from here
        try:
            _copy_decompressed(decompressed(upload), plain)
            upload.close()
            return ImageArchive(plain)
        except BaseException:
            plain.close()
            raise
    except BaseException:
        upload.close()
        raise


def _copy_decompressed(stream: Readable, target: BinaryIO) -> None:
    try:
        while chunk := stream.read(_COPY_CHUNK):
            target.write(chunk)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as err:
        raise InvalidParameter(
            f"cannot decompress the image archive: {err}; check that it is complete "
            "(`docker save` output, plain or compressed with gzip, bzip2, xz or zstd)"
        ) from None
    target.flush()
    target.seek(0)


class ImageArchive:
    """An uncompressed image archive opened for random access. Close it (or use `with`) when done."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._size = os.fstat(file.fileno()).st_size
        tar: tarfile.TarFile | None = None
        members: list[tarfile.TarInfo] = []  # filled one by one: what was read names the cut when truncated
        try:
            tar = tarfile.open(  # noqa: SIM115 - closed by close()
                fileobj=file, mode="r:", encoding="utf-8", errors="surrogateescape"
            )
            members.extend(tar)
        except tarfile.TarError as err:
            if self._size == 0:
                raise InvalidParameter("the image archive is empty: no data was received") from None
            cut = [m for m in members if m.offset_data + m.size > self._size]
            if cut:
                raise InvalidParameter(
                    f"the image archive is truncated: {cut[-1].name!r} should hold {cut[-1].size} bytes but the "
                    "archive ends before; check that the upload or the `docker save` output is complete"
                ) from None
            raise InvalidParameter(
                f"the image archive is not a tar file ({err}): `load` takes the output of `docker save` "
                "or an OCI image layout in a tar, plain or compressed with gzip, bzip2 or xz"
            ) from None
        self._tar = tar
        # Later members of the same name replace earlier ones, as when a tar is extracted.
        self._members = {member_key(member.name): member for member in members}

    def close(self) -> None:
        self._tar.close()
        self._file.close()

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def has(self, name: str) -> bool:
        """Whether the archive holds a member of this name (as `member_key` writes it)."""
        return name in self._members

    # -- layers ----------------------------------------------------------------------------------------

    def layer_appliers(self, image: ArchivedImage, progress: LayerProgress | None = None) -> list[LayerApplier]:
        """One function per layer of the image that applies it onto the layers below it (`LayerStore.add`),
        checking it against its digests and keeping its uncompressed tar as the layer's blob."""
        return [
            functools.partial(
                self._apply_layer,
                layer,
                f"layer {number} of {len(image.layers)} ({layer.path}) of {image.source}",
                progress,
            )
            for number, layer in enumerate(image.layers, 1)
        ]

    def _apply_layer(
        self, layer: ArchivedLayer, what: str, progress: LayerProgress | None, root: Path, directory: Path
    ) -> tuple[str, Blob | None]:
        reader = _VerifyingReader(self._read_member(layer.member), layer, progress)
        try:
            diff_id = apply_and_split(io.BufferedReader(reader, _COPY_CHUNK), root, directory)
            reader.finish()
        except InvalidParameter as err:
            raise InvalidParameter(f"cannot load {what}: {err}") from None
        if diff_id != layer.diff_id:
            raise InvalidParameter(
                f"cannot load {what}: its content has the digest {diff_id}, but the image config's "
                f"rootfs.diff_ids says {layer.diff_id}; the archive is corrupt or was altered"
            )
        return diff_id, None

    # -- documents and members -------------------------------------------------------------------------

    def read_json(self, path: str, what: str) -> Any:
        """The JSON document at `path` (`what` names it in errors)."""
        return parse_json(self.read_document(path, what, None), what)

    def read_document(self, path: str, what: str, digest: str | None) -> bytes:
        """The small file at `path` (a manifest, index or config), checked against `digest` when given."""
        member = self.regular_member(path, what)
        if member.size > _MAX_DOCUMENT_SIZE:
            raise InvalidParameter(f"{path} ({what}) is {member.size} bytes, too large for a JSON document")
        data = self._read_member(member).read()
        if digest is not None:
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise _digest_mismatch(path, digest, actual)
        return data

    def _read_member(self, member: tarfile.TarInfo) -> IO[bytes]:
        reader = self._tar.extractfile(member)
        assert reader is not None  # a regular file: regular_member saw to it
        return reader

    def regular_member(self, path: str, what: str) -> tarfile.TarInfo:
        """The regular file `path` names in the archive, following links between members of the archive
        (as `docker save` links a layer two images share), never out of it."""
        name = _archive_path(path, what)
        for _ in range(_MAX_LINK_HOPS):
            member = self._members.get(name)
            if member is None:
                raise InvalidParameter(f"{what} is {path!r}, which the archive does not contain")
            if member.isreg():
                if member.offset_data + member.size > self._size:
                    raise InvalidParameter(
                        f"the image archive is truncated: {path!r} ({what}) should hold {member.size} bytes "
                        "but the archive ends before"
                    )
                return member
            if member.issym():
                target = posixpath.join(posixpath.dirname(name), member.linkname)
            elif member.islnk():
                target = member.linkname
            else:
                raise InvalidParameter(f"{what} is {path!r}, which is not a file in the archive")
            target = posixpath.normpath(target)
            if target.startswith("/") or target == ".." or target.startswith("../"):
                raise InvalidParameter(
                    f"refusing {what} {path!r}: it links to {member.linkname!r}, outside the archive"
                )
            name = member_key(target)
        raise InvalidParameter(f"refusing {what} {path!r}: more than {_MAX_LINK_HOPS} links to follow")


class _VerifyingReader(io.RawIOBase):
    """A layer's stored bytes, hashed on the way to compare with its digest, with progress reports."""

    def __init__(self, source: IO[bytes], layer: ArchivedLayer, progress: LayerProgress | None) -> None:
        super().__init__()
        self._source = source
        self._layer = layer
        self._sha256 = hashlib.sha256()
        self._progress = progress
        self._layer_id = layer.diff_id.removeprefix("sha256:")[:12]
        self._total = layer.member.size
        self._read = 0
        self._reported = 0
        self._step = max(_PROGRESS_MIN_STEP, self._total // 100)
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        view[: len(data)] = data
        self._sha256.update(data)
        self._read += len(data)
        if not data:
            self._check()
        self._report(at_end=not data)
        return len(data)

    def finish(self) -> None:
        """Read what the tar reader left (padding after the archive's end) and check the digest."""
        while self.readinto(bytearray(_COPY_CHUNK)):
            pass

    def _check(self) -> None:
        if self._finished:
            return
        self._finished = True
        actual = "sha256:" + self._sha256.hexdigest()
        if self._layer.digest is not None and actual != self._layer.digest:
            raise _digest_mismatch(self._layer.path, self._layer.digest, actual)

    def _report(self, at_end: bool) -> None:
        if self._progress is None:
            return
        if (at_end and self._reported < self._read) or self._read - self._reported >= self._step:
            self._reported = self._read
            self._progress(self._layer_id, self._read, self._total)


# ---------------------------------------------------------------------------------------------------------
# Checking paths and contents.
# ---------------------------------------------------------------------------------------------------------


def member_key(name: str) -> str:
    """Archive member names as manifests name them: "./blobs/x" and "blobs/x/" are "blobs/x"."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _archive_path(path: str, what: str) -> str:
    if path.startswith("/"):
        raise InvalidParameter(f"refusing {what} {path!r}: it is an absolute path; archive paths are relative")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"refusing {what} {path!r}: it contains '..', which would climb out of the archive")
    if not parts:
        raise InvalidParameter(f"{what} is empty: it must name a file in the archive")
    return "/".join(parts)


def _digest_mismatch(path: str, expected: str, actual: str) -> InvalidParameter:
    return InvalidParameter(
        f"the blob {path} does not match its digest: expected {expected}, got {actual}; "
        "the archive is corrupt or was altered"
    )


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise InvalidParameter(f"{what} is not valid JSON: {err}") from None
