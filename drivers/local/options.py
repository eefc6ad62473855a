"""local's log-opts: which keys it takes (checked at create) and their values (parsed at start), with
the texts of Docker's `local` driver, which differ from json-file's: `unknown log opt 'K' for log
driver local`, and value errors that name the option and quote the value.

Defaults, as Docker's: max-size 20 MiB (20*1024*1024), max-file 5, compress true. A max-size of 0
means no rotation (logship's choice; json-file refuses 0 outright).
"""

from __future__ import annotations

from collections.abc import Mapping

from logship.drivers.options import ATTRIBUTE_OPTIONS, FOLLOW_BACKLOG, follow_backlog_of, go_atoi, parse_bool
from logship.drivers.util.followers import DEFAULT_FOLLOW_BACKLOG
from logship.drivers.util.logfile import Rotation
from logship.errors import InvalidParameter
from logship.units import SizeError, from_human_size

DRIVER = "local"
ACCEPTED = frozenset({"max-file", "max-size", "compress", FOLLOW_BACKLOG}) | ATTRIBUTE_OPTIONS

DEFAULT_MAX_SIZE = 20 * 1024 * 1024
DEFAULT_MAX_FILES = 5
DEFAULT_ROTATION = Rotation(max_size=DEFAULT_MAX_SIZE, max_files=DEFAULT_MAX_FILES, compress=True)


def validate_options(opts: Mapping[str, str]) -> None:
    for key in opts:
        if key not in ACCEPTED:
            raise InvalidParameter(f"unknown log opt '{key}' for log driver {DRIVER}")


def rotation_of(opts: Mapping[str, str]) -> Rotation:
    """max-size, max-file and compress, parsed and then checked in Docker's order, with its errors; then
    logship's follow-backlog."""
    max_size = DEFAULT_MAX_SIZE
    if "max-size" in opts:
        value = opts["max-size"]
        try:
            max_size = from_human_size(value)
        except SizeError as err:
            raise InvalidParameter(f"invalid value for max-size: {value}: {err}") from None
    max_files = DEFAULT_MAX_FILES
    if "max-file" in opts:
        value = opts["max-file"]
        try:
            max_files = go_atoi(value)
        except ValueError as err:
            raise InvalidParameter(f"invalid value for max-file: {value}: {err}") from None
    compress = True
    if "compress" in opts:
        try:
            compress = parse_bool(opts["compress"])
        except ValueError as err:
            raise InvalidParameter(f"invalid boolean value for compress: {err}") from None
    if max_size < 0:
        raise InvalidParameter("max-size must not be negative")
    if max_files < 0:
        raise InvalidParameter("max-file must not be negative")
    if compress and max_files <= 1:
        raise InvalidParameter("compression cannot be enabled when max file count is 1")
    follow_backlog = follow_backlog_of(opts, DEFAULT_FOLLOW_BACKLOG)
    return Rotation(
        max_size=max_size or -1, max_files=max(max_files, 1), compress=compress, follow_backlog=follow_backlog
    )
