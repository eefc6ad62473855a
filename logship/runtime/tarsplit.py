"""A layer's tar, kept without its files' contents, and put back together byte for byte for `push`.

An image's identity is the digest of its config, which names each layer by the digest of its exact
uncompressed tar (the diff ID); pushing an image means producing those exact bytes again. Keeping the
tar beside the extracted files would store every layer twice; instead, as Docker's tar-split does, the
layer store keeps the tar with the contents of its regular files cut out (headers, PAX records, padding
and the end-of-archive blocks: a few hundred bytes per file, gzip-compressed), plus where each cut was and
which file fills it. The files themselves are in the layer's stack (`layers`), which is never changed in
place, so reading them back gives the original tar, whose digest is checked before anything is sent.

`TarSplitter` receives the uncompressed bytes as `tarsafe.apply_layer` reads them, and each member as
tarfile parses it; tarfile reads at most a block ahead of the member it is on, so only the bytes past the
last member it announced are kept waiting.

A layer that cannot be rebuilt that way (the same file written twice in one layer, GNU sparse files, a
whiteout with contents) is recorded as such, and `push` says so rather than send something else.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from logship.errors import InvalidParameter
from logship.runtime.tarsafe import apply_layer
from logship.runtime.tarstream import Readable

SKELETON = "tar-split.gz"
INDEX = "tar-split.json"
_CHUNK = 1 << 20
_WALK_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class TarSplitter:
    """Writes a layer's skeleton into `directory` while the layer is applied; `close()` writes the index."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._out = gzip.open(directory / SKELETON, "wb", compresslevel=1)  # noqa: SIM115 - closed by close()
        self._pending = bytearray()
        self._pending_start = 0  # stream offset of _pending[0]
        self._known_until = 0  # every byte before this offset is known to be a file's content or not
        self._cuts: list[tuple[int, int]] = []  # (start, end) of contents not yet passed
        self._files: list[tuple[int, int, str]] = []  # (offset, size, name) of every cut
        self._names: set[str] = set()
        self._problem = ""

    # -- what apply_layer reads ------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        start = self._pending_start
        if not self._pending and self._cuts and self._cuts[0][0] <= start:
            # Most bytes are files' contents inside a known cut: skip them without copying.
            end = min(self._cuts[0][1], self._known_until)
            if start + len(data) <= end:
                self._pending_start += len(data)
                if self._pending_start >= self._cuts[0][1]:
                    self._cuts.pop(0)
                return
        self._pending += data
        self._flush()

    def member(self, member: tarfile.TarInfo) -> None:
        """A member tarfile has just parsed (before its contents are read)."""
        if member.issparse():
            self._problem = f"{member.name!r} is a GNU sparse file"
        end = member.offset_data
        if member.isreg() and member.size:
            end += member.size
            name = "/".join(part for part in member.name.split("/") if part not in ("", "."))
            if name in self._names:
                self._problem = f"{member.name!r} is written twice in the layer"
            if name.rsplit("/", 1)[-1].startswith(".wh."):
                self._problem = f"the whiteout {member.name!r} has contents"
            self._names.add(name)
            self._cuts.append((member.offset_data, end))
            self._files.append((member.offset_data, member.size, name))
        self._known_until = max(self._known_until, end)
        self._flush()

    def close(self, complete: bool) -> None:
        """`complete`: the whole stream was read, so everything still waiting is skeleton."""
        if complete:
            self._known_until = self._pending_start + len(self._pending)
            self._flush()
        self._out.close()
        if complete:
            index = {"files": self._files, "problem": self._problem}
            (self._directory / INDEX).write_text(json.dumps(index))

    def _flush(self) -> None:
        while self._pending and self._pending_start < self._known_until:
            start = self._pending_start
            inside = bool(self._cuts) and self._cuts[0][0] <= start
            limit = self._cuts[0][1] if inside else self._cuts[0][0] if self._cuts else self._known_until
            take = min(limit, self._known_until, start + len(self._pending)) - start
            if take <= 0:
                return
            if inside and start + take >= self._cuts[0][1]:
                self._cuts.pop(0)
            keep = not inside
            if keep:
                self._out.write(self._pending[:take])
            del self._pending[:take]
            self._pending_start += take


def apply_and_split(stream: BinaryIO, rootfs: Path, directory: Path) -> str:
    """`tarsafe.apply_layer` into `rootfs`, keeping the tar's skeleton in `directory`; the diff ID."""
    splitter = TarSplitter(directory)
    complete = False
    try:
        diff_id = apply_layer(stream, rootfs, splitter)
        complete = True
    finally:
        splitter.close(complete)
    return diff_id


def has_split(directory: Path) -> bool:
    return (directory / INDEX).is_file()


def layer_tar(directory: Path, rootfs: Path, diff_id: str) -> Iterator[bytes]:
    """The layer's original uncompressed tar, its skeleton in `directory` filled from `rootfs`; raises
    InvalidParameter if it cannot be rebuilt or does not hash to `diff_id` (checked after the last chunk:
    the caller must not have committed what it sent before then)."""
    index = json.loads((directory / INDEX).read_text())
    if index.get("problem"):
        raise InvalidParameter(f"the layer {diff_id} cannot be rebuilt for pushing: {index['problem']}")
    sha256 = hashlib.sha256()
    position = 0
    root = os.open(rootfs, _WALK_FLAGS)
    try:
        with gzip.open(directory / SKELETON, "rb") as skeleton:
            for offset, size, name in index["files"]:
                for chunk in _copy(skeleton, offset - position, diff_id):
                    sha256.update(chunk)
                    yield chunk
                for chunk in _file_contents(root, name, size, diff_id):
                    sha256.update(chunk)
                    yield chunk
                position = offset + size
            while chunk := skeleton.read(_CHUNK):
                sha256.update(chunk)
                yield chunk
    finally:
        os.close(root)
    if "sha256:" + sha256.hexdigest() != diff_id:
        raise InvalidParameter(
            f"the layer {diff_id} rebuilt from the layer store has another digest: its files were changed on disk"
        )


def _copy(source: Readable, count: int, diff_id: str) -> Iterator[bytes]:
    while count > 0:
        chunk = source.read(min(count, _CHUNK))
        if not chunk:
            raise InvalidParameter(
                f"the saved tar headers of the layer {diff_id} end early: the layer store is damaged"
            )
        count -= len(chunk)
        yield chunk


def _file_contents(root: int, name: str, size: int, diff_id: str) -> Iterator[bytes]:
    """A file of the layer's stack, reached without following any link (the layer may hold links that
    point anywhere; only the container follows them)."""
    parts = name.split("/")
    directory = os.dup(root)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _WALK_FLAGS, dir_fd=directory)
            os.close(directory)
            directory = inner
        fd = os.open(parts[-1], _READ_FLAGS, dir_fd=directory)
    except OSError as err:
        raise InvalidParameter(
            f"cannot rebuild the layer {diff_id}: its file {name!r} is gone ({err.strerror})"
        ) from None
    finally:
        os.close(directory)
    with open(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_size != size:
            raise InvalidParameter(f"cannot rebuild the layer {diff_id}: its file {name!r} changed on disk")
        yield from _copy(file, size, diff_id)
