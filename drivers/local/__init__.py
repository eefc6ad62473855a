"""The local log driver, as the registry sees it (`name`, `validate_options`, `new`), plus `open_local`
for other parts of logship that keep a local-format log at a path of their own (the dual-logging cache).

Split by concern: `options` (log-opts, Docker's texts), `framing` (frames on disk: lengths, CRC,
finding them again after damage), `record` (what a record holds: a batch's lines and metadata),
`codec` (reading back: decode and tail), `driver` (the writer and reader over `LogFile`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from logship.drivers.local.driver import LocalDriver
from logship.drivers.local.options import DEFAULT_ROTATION, rotation_of
from logship.drivers.local.options import validate_options as validate_options
from logship.drivers.options import attributes_of
from logship.drivers.util.logfile import Rotation
from logship.errors import InvalidParameter, SystemError_
from logship.pipeline.info import ContainerInfo

name = "local"
can_read = True  # `logs` of a stopped container opens this driver again just to read
line_records = True  # Docker's format: a record per line (multiline events only with multiline-files=events)
has_fields = False  # a line is stored as it is: parse=json is refused

LOG_DIR = "local-logs"
LOG_FILE = "container.log"

__all__ = ["DEFAULT_ROTATION", "LocalDriver", "log_path", "name", "new", "open_local", "validate_options"]


def log_path(info: ContainerInfo) -> str:
    """Docker's place for the local log, inside the container's directory (not shown as LogPath)."""
    if not info.container_dir:
        raise InvalidParameter("local needs the container's directory (ContainerInfo.container_dir is empty)")
    return os.path.join(info.container_dir, LOG_DIR, LOG_FILE)


async def new(info: ContainerInfo) -> LocalDriver:
    """Parse the option values (Docker's errors), then open the container's local log for appending."""
    rotation = rotation_of(info.config)
    attrs = attributes_of(info)
    return await open_local(log_path(info), rotation, attrs)


async def open_local(
    path: str, rotation: Rotation = DEFAULT_ROTATION, attrs: Mapping[str, str] | None = None
) -> LocalDriver:
    """A local-format log at `path` (its directory is created, mode 0700, if missing), rotated as
    `rotation` says, `attrs` stored with every message. Opening never blocks the event loop."""

    def open_blocking() -> LocalDriver:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        return LocalDriver.open(path, rotation, attrs or {})

    try:
        return await asyncio.to_thread(open_blocking)
    except OSError as err:
        raise SystemError_(f"error opening log file {path}: {err.strerror or err}") from err
