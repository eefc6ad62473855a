"""json-file's log-opts: which keys it takes (checked at create) and their values (parsed at start).

Docker splits it the same way: an unknown key fails `docker create`, a bad value only fails the
start, with the texts of `jsonfilelog.New`.
"""

from __future__ import annotations

from collections.abc import Mapping

from logship.drivers.options import (
    ATTRIBUTE_OPTIONS,
    FOLLOW_BACKLOG,
    follow_backlog_of,
    go_atoi,
    parse_bool,
    reject_unknown,
)
from logship.drivers.util.followers import DEFAULT_FOLLOW_BACKLOG
from logship.drivers.util.logfile import Rotation
from logship.errors import InvalidParameter
from logship.units import SizeError, from_human_size

DRIVER = "json-file"
ACCEPTED = frozenset({"max-file", "max-size", "compress", FOLLOW_BACKLOG}) | ATTRIBUTE_OPTIONS


def validate_options(opts: Mapping[str, str]) -> None:
    reject_unknown(DRIVER, opts, ACCEPTED)


def rotation_of(opts: Mapping[str, str]) -> Rotation:
    """max-size, max-file and compress, checked in Docker's order with Docker's errors; then logship's
    follow-backlog."""
    max_size = -1
    if "max-size" in opts:
        try:
            max_size = from_human_size(opts["max-size"])
        except SizeError as err:
            raise InvalidParameter(str(err)) from None
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_files = 1
    if "max-file" in opts:
        try:
            max_files = go_atoi(opts["max-file"])
        except ValueError as err:
            raise InvalidParameter(str(err)) from None
        if max_files < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        try:
            compress = parse_bool(opts["compress"])
        except ValueError as err:
            raise InvalidParameter(str(err)) from None
        if compress and (max_files < 2 or max_size == -1):
            raise InvalidParameter("compress cannot be true when max-file is less than 2 or max-size is not set")
    follow_backlog = follow_backlog_of(opts, DEFAULT_FOLLOW_BACKLOG)
    return Rotation(max_size=max_size, max_files=max_files, compress=compress, follow_backlog=follow_backlog)
