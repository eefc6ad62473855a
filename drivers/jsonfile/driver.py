"""The json-file driver: Docker's default, one JSON object per line in `<id>-json.log`, rotated files
beside it, and `logs` served by reading them back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from logship.drivers.base import Run
from logship.drivers.jsonfile.decode import JSON_LINES
from logship.drivers.jsonfile.encode import BatchEncoder
from logship.drivers.util.diskfull import append_batch
from logship.drivers.util.logfile import LogFile, Rotation
from logship.drivers.util.logreader import read_log, read_log_text
from logship.pipeline.message import Batch, Message
from logship.pipeline.readconfig import ReadConfig

log = logging.getLogger("logship.drivers.jsonfile")


def next_record(blob: bytes, index: int) -> int:
    """Where the first record starting at or after `index` begins: just after a newline."""
    if index <= 0:
        return 0
    if index >= len(blob):
        return len(blob)
    newline = blob.find(b"\n", index - 1)
    return len(blob) if newline < 0 else newline + 1


def count_records(blob: bytes, start: int, end: int) -> int:
    """Messages in the whole records of blob[start:end]: one per record, each ending with the record's only
    raw newline (newlines in a line are escaped)."""
    return blob.count(b"\n", start, end)


class JSONFileDriver:
    name = "json-file"

    def __init__(self, file: LogFile, encoder: BatchEncoder) -> None:
        self._file = file
        self._encoder = encoder

    @classmethod
    def open(cls, path: str, rotation: Rotation, attrs: dict[str, str]) -> JSONFileDriver:
        """Open (or create) the log for appending. Blocking: call it off the event loop."""
        return cls(LogFile(path, rotation, next_record, count_records, log), BatchEncoder(attrs))

    @property
    def path(self) -> str:
        return self._file.path

    async def log(self, batch: Batch) -> None:
        await append_batch(self._file, batch, self._encoder.encode, log)

    async def close(self) -> None:
        try:
            await asyncio.to_thread(self._file.close)
        finally:
            self._file.changed.notify()

    def read_logs(self, config: ReadConfig) -> AsyncIterator[list[Message]]:
        return read_log(self._file, JSON_LINES, config, log)

    def read_text(self, config: ReadConfig) -> AsyncIterator[list[Run]]:
        return read_log_text(self._file, JSON_LINES, config, log)
