"""The json-file log driver, as the registry sees it: `name`, `validate_options`, `new`."""

from __future__ import annotations

import asyncio

from logship.drivers.jsonfile.driver import JSONFileDriver
from logship.drivers.jsonfile.options import rotation_of
from logship.drivers.jsonfile.options import validate_options as validate_options
from logship.drivers.options import attributes_of
from logship.errors import InvalidParameter, SystemError_
from logship.pipeline.info import ContainerInfo

name = "json-file"
can_read = True  # `logs` of a stopped container opens this driver again just to read
line_records = True  # Docker's format: a record per line (multiline events only with multiline-files=events)
has_fields = False  # a line is stored as it is: parse=json is refused

__all__ = ["JSONFileDriver", "name", "new", "validate_options"]


async def new(info: ContainerInfo) -> JSONFileDriver:
    """Parse the option values (Docker's errors), then open `info.log_path` for appending.

    Nothing else happens here: a stopped container's logs are read through a fresh instance.
    """
    rotation = rotation_of(info.config)
    attrs = attributes_of(info)
    if not info.log_path:
        raise InvalidParameter("json-file needs the container's log path (ContainerInfo.log_path is empty)")
    try:
        return await asyncio.to_thread(JSONFileDriver.open, info.log_path, rotation, attrs)
    except OSError as err:
        raise SystemError_(f"error opening log file {info.log_path}: {err.strerror or err}") from err
