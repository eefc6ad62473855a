"""A blob being downloaded, read by the thread that applies it while its bytes still arrive.

A pull applies a layer as it downloads (the layer at the bottom is usually the biggest, and every layer
above waits for it), so the extraction does not wait for the whole blob. Safety does not depend on that
order: the reader hands out bytes as soon as they are on disk, but ends the stream only once the whole
blob is in and its digest verified. If the download fails (wrong digest, too many bytes, a dropped
connection) the reader raises that error, the layer being built is thrown away, and nothing of it is
stored.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any


class BlobFile:
    """Shared by the download (on the event loop: `attach`, `grew`, `finish`, `fail`) and the applying
    thread (`reader`)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._fd: int | None = None
        self._available = 0
        self._finished = False
        self._error: BaseException | None = None

    # -- the download's side -------------------------------------------------------------------------------

    def attach(self, path: Path, available: int) -> None:
        """The file the blob is written to (opened now: it may be renamed while read), with `available`
        bytes in it already."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with self._condition:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = fd
            self._available = available
            self._condition.notify_all()

    def grew(self, available: int) -> None:
        with self._condition:
            self._available = available
            self._condition.notify_all()

    def finish(self) -> None:
        """The whole blob is there and matches its digest."""
        with self._condition:
            self._finished = True
            self._condition.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._condition:
            if not self._finished:
                self._error = error
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- the reader's side ---------------------------------------------------------------------------------

    def reader(self) -> io.RawIOBase:
        return _Reader(self)

    def _read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`, waiting for them; b"" at the verified end."""
        with self._condition:
            while True:
                if self._error is not None:
                    raise self._error
                if self._fd is not None and offset < self._available:
                    fd, count = self._fd, min(size, self._available - offset)
                    break
                if self._finished:
                    return b""
                self._condition.wait()
        return os.pread(fd, count, offset)


class _Reader(io.RawIOBase):
    def __init__(self, blob: BlobFile) -> None:
        super().__init__()
        self._blob = blob
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._blob._read_at(self._offset, len(view))
        view[: len(data)] = data
        self._offset += len(data)
        return len(data)
