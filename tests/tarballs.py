"""Tar archives built member by member for the image tests (`docker export` and `docker save` forms,
hostile ones included), with fixed times so that their digests do not change between runs."""

from __future__ import annotations

import hashlib
import io
import tarfile
from typing import Any

MTIME = 1_700_000_000

Entry = tuple[tarfile.TarInfo, bytes]


def member(name: str, kind: bytes, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def file(name: str, data: bytes = b"", **fields: Any) -> Entry:
    return member(name, tarfile.REGTYPE, size=len(data), **fields), data


def directory(name: str, **fields: Any) -> Entry:
    return member(name, tarfile.DIRTYPE, **fields), b""


def symlink(name: str, target: str) -> Entry:
    return member(name, tarfile.SYMTYPE, linkname=target, mode=0o777), b""


def hardlink(name: str, target: str) -> Entry:
    return member(name, tarfile.LNKTYPE, linkname=target), b""


def device(name: str, kind: bytes = tarfile.CHRTYPE) -> Entry:
    return member(name, kind, devmajor=1, devminor=3), b""


def tar_of(*entries: Entry) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def hexdigest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(data: bytes) -> str:
    return "sha256:" + hexdigest(data)
