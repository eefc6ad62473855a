"""Gzip files whose header carries an extra field, as Docker writes its compressed rotated logs.

Docker puts the time of a rotated file's last entry into the gzip header's FEXTRA field, as the raw
JSON `{"lastTime":"<RFC3339Nano>"}` (not split into RFC 1952 subfields), so a reader can skip a whole
file that ends before `--since` without decompressing it. Python's `gzip` module reads such files but
cannot write the field, so the header is written here by hand and the body is deflated with zlib.
Header bytes otherwise match Go's `gzip.Writer`: mtime 0, XFL 0, OS 255 (unknown).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

_MAGIC = b"\x1f\x8b"
_DEFLATE = 8
_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16
_OS_UNKNOWN = 255
_CHUNK = 1 << 20


def header(extra: bytes) -> bytes:
    """A gzip member header with FLG.FEXTRA set and `extra` as the field's contents."""
    if len(extra) > 0xFFFF:
        raise ValueError(f"gzip extra field too long: {len(extra)} bytes (the format allows 65535)")
    return _MAGIC + struct.pack("<BBIBBH", _DEFLATE, _FEXTRA, 0, 0, _OS_UNKNOWN, len(extra)) + extra


def compress(source: BinaryIO, target: BinaryIO, extra: bytes, level: int = 6) -> None:
    """Write `source` (read to its end) to `target` as one gzip member carrying `extra`."""
    target.write(header(extra))
    deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = 0
    size = 0
    while chunk := source.read(_CHUNK):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
        target.write(deflate.compress(chunk))
    target.write(deflate.flush())
    target.write(struct.pack("<II", crc, size & 0xFFFFFFFF))


def read_extra(source: BinaryIO) -> bytes | None:
    """The FEXTRA contents of the gzip header at the start of `source`, or None if it has none.

    Reads only the header. Raises ValueError if `source` does not start with a gzip header.
    """
    fixed = source.read(10)
    if len(fixed) < 10 or fixed[:2] != _MAGIC or fixed[2] != _DEFLATE:
        raise ValueError("not a gzip file")
    if not fixed[3] & _FEXTRA:
        return None
    length_bytes = source.read(2)
    if len(length_bytes) < 2:
        raise ValueError("truncated gzip header")
    (length,) = struct.unpack("<H", length_bytes)
    extra = source.read(length)
    if len(extra) < length:
        raise ValueError("truncated gzip header")
    return extra


def decompress(source: BinaryIO, target: BinaryIO) -> None:
    """Inflate the gzip stream in `source` into `target`; ValueError if it is corrupt or truncated."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: expect and check a gzip header and trailer
    try:
        while chunk := source.read(_CHUNK):
            target.write(inflate.decompress(chunk))
            # Concatenated members are valid gzip; start over on what follows the first one.
            while inflate.eof and inflate.unused_data:
                rest = inflate.unused_data
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                target.write(inflate.decompress(rest))
        target.write(inflate.flush())
    except zlib.error as err:
        raise ValueError(f"corrupt gzip data: {err}") from None
    if not inflate.eof:
        raise ValueError("truncated gzip data")
