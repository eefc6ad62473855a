"""Validation of log-opts that every driver shares, in Docker's order (`ValidateLogOpts`):
the mode, then max-buffer-size, then the driver's own options."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from logship.drivers import registry
from logship.errors import InvalidParameter
from logship.units import SizeError, ram_in_bytes

BLOCKING = "blocking"
NON_BLOCKING = "non-blocking"
DEFAULT_MAX_BUFFER_SIZE = 1_000_000  # Docker's ring buffer default: 1e6 bytes of line data

# Options the pipeline handles for every driver; drivers never see them in validate_options.
COMMON_OPTIONS = frozenset(
    {
        "mode",
        "max-buffer-size",
        "cache-disabled",
        "cache-max-file",
        "cache-max-size",
        "cache-compress",
        "cache-labels",
        "cache-labels-regex",
        "cache-env",
        "cache-env-regex",
        "cache-tag",
    }
)

# The metadata options json-file, local, journald and fluentd all accept.
ATTRIBUTE_OPTIONS = frozenset({"tag", "labels", "labels-regex", "env", "env-regex"})


def mode_of(opts: Mapping[str, str]) -> str:
    return opts.get("mode") or BLOCKING


def max_buffer_size_of(opts: Mapping[str, str]) -> int:
    value = opts.get("max-buffer-size")
    return ram_in_bytes(value) if value else DEFAULT_MAX_BUFFER_SIZE


def validate(driver: str, opts: Mapping[str, str]) -> None:
    """Raise InvalidParameter with Docker's text for the first problem found."""
    if driver == "none":
        return
    mode = opts.get("mode", "")
    if mode not in ("", BLOCKING, NON_BLOCKING):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != NON_BLOCKING:
            raise InvalidParameter("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        try:
            ram_in_bytes(opts["max-buffer-size"])
        except SizeError as err:
            raise InvalidParameter(f"error parsing option max-buffer-size: {err}") from None
    if "cache-disabled" in opts:
        try:
            parse_bool(opts["cache-disabled"])
        except ValueError:
            raise InvalidParameter(f"invalid value for option cache-disabled: {opts['cache-disabled']}") from None
    factory = registry.get(driver)
    factory.validate_options({k: v for k, v in opts.items() if k not in COMMON_OPTIONS})


def reject_unknown(driver: str, opts: Mapping[str, str], accepted: Iterable[str]) -> None:
    """Docker's per-driver key check: `unknown log opt 'K' for <driver> log driver`."""
    allowed = set(accepted)
    for key in opts:
        if key not in allowed:
            raise InvalidParameter(f"unknown log opt '{key}' for {driver} log driver")


def parse_bool(value: str) -> bool:
    """Go's strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
