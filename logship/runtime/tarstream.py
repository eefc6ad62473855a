"""The bytes of a tar archive as the extractor reads them: compression recognised from its first bytes,
the diff id hashed on the way, and headers parsed strictly.

Apart from the extraction rules (`logship.runtime.tarsafe`) because image load and push read compressed
streams too, without extracting them; nothing here touches the filesystem.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile
import zlib
from typing import TYPE_CHECKING, BinaryIO, Protocol, Self

import zstandard

from logship.errors import InvalidParameter

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

COPY_CHUNK = 1 << 20

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


class DigestingReader(io.RawIOBase):
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
        while self.read(COPY_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self._sha256.hexdigest()


class StrictTarInfo(tarfile.TarInfo):
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
