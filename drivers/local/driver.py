"""The local driver: logship's compact framed records in `<container dir>/local-logs/container.log`,
rotated and compressed by `LogFile` and read back by `logreader`, like json-file.

A crash can leave the file ending in a torn frame. The driver cuts that tail off when it opens the
file, before anything is appended, so the torn bytes never end up in the middle of the file and the
next frame is written at a frame boundary. That is safe because only one instance writes a file: the
daemon opens a second one only to read the logs of a container that is not running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import AsyncIterator, Mapping

from logship.drivers.base import Run
from logship.drivers.local import framing
from logship.drivers.local.codec import LOCAL_RECORDS
from logship.drivers.local.record import RecordEncoder, count_messages
from logship.drivers.util.diskfull import append_batch
from logship.drivers.util.logfile import LogFile, LogFileError, Rotation
from logship.drivers.util.logreader import read_log, read_log_text
from logship.pipeline.message import Batch, Message
from logship.pipeline.readconfig import ReadConfig

log = logging.getLogger("logship.drivers.local")


class LocalDriver:
    name = "local"

    def __init__(self, file: LogFile, encoder: RecordEncoder) -> None:
        self._file = file
        self._encoder = encoder

    @classmethod
    def open(cls, path: str, rotation: Rotation, attrs: Mapping[str, str]) -> LocalDriver:
        """Open (or create) the log for appending, after cutting off a torn last frame. Blocking: call
        it off the event loop."""
        cut_torn_tail(path)
        return cls(LogFile(path, rotation, framing.next_frame, count_messages, log), RecordEncoder(attrs))

    @property
    def path(self) -> str:
        return self._file.path

    async def log(self, batch: Batch) -> None:
        await append_batch(self._file, batch, self._encode, log)

    def _encode(self, batch: Batch) -> bytes:
        try:
            return self._encoder.encode(batch)
        except (framing.RecordTooLarge, struct.error) as err:  # struct: a field beyond its format's range
            raise LogFileError(f"error writing log entry: {err}") from None

    async def close(self) -> None:
        try:
            await asyncio.to_thread(self._file.close)
        finally:
            self._file.changed.notify()

    def read_logs(self, config: ReadConfig) -> AsyncIterator[list[Message]]:
        return read_log(self._file, LOCAL_RECORDS, config, log)

    def read_text(self, config: ReadConfig) -> AsyncIterator[list[Run]]:
        return read_log_text(self._file, LOCAL_RECORDS, config, log)


def cut_torn_tail(path: str) -> int:
    """Truncate the file at `path` after its last intact frame; returns how many bytes went (0 when the
    file ends with a whole frame or does not exist)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        keep = framing.intact_length(lambda offset, length: os.pread(fd, length, offset), size)
        if keep < size:
            os.ftruncate(fd, keep)
            log.warning(
                "%s ended in %d bytes that are not a whole record (a write cut short by a crash); "
                "they were removed before appending",
                path,
                size - keep,
            )
        return size - keep
    finally:
        os.close(fd)
