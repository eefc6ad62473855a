"""Validation of log-opts that every driver shares, in Docker's order (`ValidateLogOpts`):
the mode, then max-buffer-size, then the driver's own options."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from logship.drivers import registry
from logship.errors import InvalidParameter, LogshipError
from logship.pipeline.info import ContainerInfo
from logship.pipeline.processing import config as processing
from logship.pipeline.ratelimit import RateLimit
from logship.pipeline.tagtemplate import render_tag
from logship.units import SizeError, go_duration_or_none, ram_in_bytes

log = logging.getLogger("logship.drivers")

BLOCKING = "blocking"
NON_BLOCKING = "non-blocking"
DEFAULT_MAX_BUFFER_SIZE = 1_000_000  # Docker's ring buffer default: 1e6 bytes of line data
# A disk-buffered driver's budget (see logship.pipeline.diskbuffer): an outage of about an hour for a
# container logging 150 KB/s, or a few minutes at full speed; "0" turns the disk buffer off.
DEFAULT_BUFFER_MAX_SIZE = 512 << 20
# How long a container's undelivered lines are kept after its end, then given up (counted as failed).
DEFAULT_BUFFER_MAX_AGE_S = 24 * 3600.0

# Options the pipeline handles for every driver; drivers never see them in validate_options.
COMMON_OPTIONS = frozenset(
    {
        "mode",
        "max-buffer-size",
        "cache-disabled",
        "cache-max-file",
        "cache-max-size",
        "cache-compress",
        "cache-follow-backlog",
        "cache-labels",
        "cache-labels-regex",
        "cache-env",
        "cache-env-regex",
        "cache-tag",
        "buffer-max-size",
        "buffer-max-age",
        "rate-limit",
        "rate-burst",
    }
    | processing.OPTIONS
)

# The metadata options json-file, local, journald and fluentd all accept.
ATTRIBUTE_OPTIONS = frozenset({"tag", "labels", "labels-regex", "env", "env-regex"})


def mode_of(opts: Mapping[str, str]) -> str:
    return opts.get("mode") or BLOCKING


def max_buffer_size_of(opts: Mapping[str, str]) -> int:
    value = opts.get("max-buffer-size")
    return ram_in_bytes(value) if value else DEFAULT_MAX_BUFFER_SIZE


def buffer_max_size_of(opts: Mapping[str, str]) -> int:
    """A disk-buffered driver's budget in bytes (0: no disk buffer, the driver goes in step as in Docker)."""
    value = opts.get("buffer-max-size")
    return ram_in_bytes(value) if value else DEFAULT_BUFFER_MAX_SIZE


def buffer_max_age_of(opts: Mapping[str, str]) -> float:
    """Seconds a container's undelivered lines are kept after its end (0: no limit)."""
    value = opts.get("buffer-max-age")
    if not value:
        return DEFAULT_BUFFER_MAX_AGE_S
    seconds = go_duration_or_none(value)
    return seconds if seconds is not None else DEFAULT_BUFFER_MAX_AGE_S


def rate_limit_of(opts: Mapping[str, str]) -> RateLimit | None:
    """The container's rate limit (`rate-limit` lines per second, `rate-burst` lines, by default one second's
    worth), None when unset."""
    value = opts.get("rate-limit")
    if not value:
        return None
    rate = float(value)
    burst = int(opts["rate-burst"]) if opts.get("rate-burst") else max(1, int(rate))
    return RateLimit(rate, burst)


def _validate_rate(opts: Mapping[str, str]) -> None:
    if "rate-limit" in opts:
        try:
            rate = float(opts["rate-limit"])
        except ValueError:
            rate = -1.0
        if not rate > 0 or rate == float("inf"):
            raise InvalidParameter(
                f"invalid rate-limit '{opts['rate-limit']}': give the lines per second a container may log "
                "(a number above 0, such as 10000)"
            )
    if "rate-burst" in opts:
        if "rate-limit" not in opts:
            raise InvalidParameter("rate-burst needs rate-limit: give both, e.g. rate-limit=1000 rate-burst=5000")
        burst = opts["rate-burst"]
        if not burst.isdigit() or int(burst) < 1:
            raise InvalidParameter(
                f"invalid rate-burst '{burst}': give how many lines may come at once (a whole number above 0)"
            )


def _validate_buffer(driver: str, opts: Mapping[str, str]) -> None:
    given = [key for key in ("buffer-max-size", "buffer-max-age") if key in opts]
    if not given:
        return
    if not registry.uses_disk_buffer(driver):
        raise InvalidParameter(
            f"logger: {given[0]} is only supported by log drivers that ship off the host and buffer on disk "
            f"(fluentd, awslogs, ...), not by {driver}: remove the option"
        )
    if "buffer-max-size" in opts:
        try:
            ram_in_bytes(opts["buffer-max-size"])
        except SizeError as err:
            raise InvalidParameter(
                f"error parsing option buffer-max-size: {err} (a size such as 512m or 2g; 0 turns the disk buffer off)"
            ) from None
    if "buffer-max-age" in opts:
        seconds = go_duration_or_none(opts["buffer-max-age"])
        if seconds is None or seconds < 0:
            raise InvalidParameter(
                f"error parsing option buffer-max-age: invalid duration '{opts['buffer-max-age']}' "
                "(a duration such as 24h or 90m; 0 keeps undelivered lines until they are delivered)"
            )


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
    _validate_buffer(driver, opts)
    _validate_rate(opts)
    from logship.drivers import cache

    cache.validate(opts)
    factory = registry.get(driver)
    processing.validate(driver, opts, processing.has_fields(factory), processing.line_records_of(driver, factory))
    try:
        factory.validate_options({k: v for k, v in opts.items() if k not in COMMON_OPTIONS})
    except LogshipError:
        raise
    except Exception as err:  # a third-party driver's bug must not become a 500 or take the daemon down
        log.exception("log driver %s failed to check its options", driver)
        problem = f"{type(err).__name__}: {err}"
        raise InvalidParameter(f"log driver {driver} failed to check its options: {problem}") from None


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


_GO_INT = re.compile(r"[+-]?[0-9]+")


def go_atoi(text: str) -> int:
    """Go's strconv.Atoi; ValueError with its texts."""
    if not _GO_INT.fullmatch(text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f'strconv.Atoi: parsing "{text}": value out of range')
    return value


# The file drivers' (json-file, local, the dual-logging cache's) bound on what a follower that fell behind
# may hold of the files max-file deletes (see drivers/util/followers.py). Not Docker's: Docker keeps nothing.
FOLLOW_BACKLOG = "follow-backlog"


def follow_backlog_of(opts: Mapping[str, str], default: int) -> int:
    """`follow-backlog` in bytes, binary units as max-buffer-size (`256m` = 256 MiB); 0 keeps nothing."""
    value = opts.get(FOLLOW_BACKLOG)
    if value is None:
        return default
    try:
        return ram_in_bytes(value)
    except SizeError as err:
        raise InvalidParameter(
            f"invalid value for {FOLLOW_BACKLOG}: {value}: {err} (give a size such as 256m, or 0 to keep nothing "
            "for followers)"
        ) from None


def check_attribute_patterns(opts: Mapping[str, str]) -> None:
    """labels-regex and env-regex must compile (Docker fails `New` with the regexp's error)."""
    for option in ("labels-regex", "env-regex"):
        pattern = opts.get(option)
        if pattern:
            try:
                re.compile(pattern)
            except re.error as err:
                raise InvalidParameter(f"invalid {option} '{pattern}': {err}") from None


def attributes_of(info: ContainerInfo) -> dict[str, str]:
    """The extra attributes file drivers store in every record: labels/env selections, and `tag` only if
    set (json-file and local have no default tag)."""
    check_attribute_patterns(info.config)
    attrs = info.extra_attributes()
    template = info.config.get("tag", "")
    if template:
        tag = render_tag(template, info)
        if tag:
            attrs["tag"] = tag
    return attrs
