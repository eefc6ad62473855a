"""awslogs' log-opts, checked at create time with Docker's texts, and the region a container uses.

Unlike Docker, a missing region is an error at create (not an EC2 metadata lookup at start that hangs
off EC2): the option, else the daemon's AWS_REGION, else AWS_DEFAULT_REGION.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from logship.drivers.options import parse_bool, reject_unknown
from logship.errors import InvalidParameter

DRIVER = "awslogs"
ACCEPTED = frozenset(
    {
        "awslogs-region",
        "awslogs-endpoint",
        "awslogs-group",
        "awslogs-stream",
        "awslogs-create-group",
        "awslogs-create-stream",
        "awslogs-datetime-format",
        "awslogs-multiline-pattern",
        "awslogs-credentials-endpoint",
        "awslogs-force-flush-interval-seconds",
        "awslogs-max-buffered-events",
        "awslogs-format",
        "tag",  # awslogs takes no labels/env: Docker rejects them too
    }
)
EMF_FORMAT = "json/emf"
DEFAULT_FLUSH_INTERVAL_S = 5
DEFAULT_MAX_BUFFERED_EVENTS = 4096

# Docker's strftime → regex table for awslogs-datetime-format; other characters stay as they are
# (they are regex syntax, as in Docker) and an unknown %x sequence matches nothing (empty).
STRFTIME_TO_REGEX = {
    "%a": r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)",
    "%A": r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
    "%w": r"[0-6]",
    "%d": r"(?:0[1-9]|[1,2][0-9]|3[0,1])",
    "%b": r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)",
    "%B": r"(?:January|February|March|April|May|June|July|August|September|October|November|December)",
    "%m": r"(?:0[1-9]|1[0-2])",
    "%Y": r"\d{4}",
    "%y": r"\d{2}",
    "%H": r"(?:[0,1][0-9]|2[0-3])",
    "%I": r"(?:0[0-9]|1[0-2])",
    "%p": r"[A,P]M",
    "%M": r"[0-5][0-9]",
    "%S": r"[0-5][0-9]",
    "%f": r"\d{6}",
    "%z": r"[+-]\d{4}",
    "%Z": r"[A-Z]{1,4}T",
    "%j": r"(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])",
    "%L": r"\.\d{3}",
}


@dataclass(frozen=True)
class Config:
    region: str
    group: str
    stream_override: str  # awslogs-stream, "" when the stream comes from the tag or the container id
    endpoint: str = ""
    create_group: bool = False
    create_stream: bool = True
    multiline: re.Pattern[bytes] | None = None
    credentials_endpoint: str = ""
    flush_interval_s: int = DEFAULT_FLUSH_INTERVAL_S
    max_buffered_events: int = DEFAULT_MAX_BUFFERED_EVENTS
    emf: bool = False


def _flag(opts: Mapping[str, str], key: str, default: bool) -> bool:
    if key not in opts:
        return default
    try:
        return parse_bool(opts[key])
    except ValueError as err:
        raise InvalidParameter(f"must specify valid value for log opt '{key}': {err}") from None


def _positive(opts: Mapping[str, str], key: str, default: int) -> int:
    if key not in opts:
        return default
    text = opts[key]
    if not text.isdigit() or int(text) <= 0:
        raise InvalidParameter(f"must specify a positive integer for log opt '{key}': {text}")
    return int(text)


def datetime_format_regex(strftime: str) -> str:
    return re.sub(r"%.", lambda m: STRFTIME_TO_REGEX.get(m.group(0), ""), strftime)


def region_of(opts: Mapping[str, str], environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    region = opts.get("awslogs-region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
    if not region:
        raise InvalidParameter(
            "cannot determine the region for the awslogs driver: set --log-opt awslogs-region=<region> "
            "(or AWS_REGION in the logship daemon's environment)"
        )
    return region


def parse_config(opts: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Config:
    group = opts.get("awslogs-group", "")
    if not group:
        raise InvalidParameter("must specify a value for log opt 'awslogs-group'")
    log_format = opts.get("awslogs-format", "")
    if log_format and log_format != EMF_FORMAT:
        raise InvalidParameter(f"unsupported log format '{log_format}'")
    datetime_format = opts.get("awslogs-datetime-format", "")
    pattern = opts.get("awslogs-multiline-pattern", "")
    if datetime_format and pattern:
        raise InvalidParameter(
            "you cannot configure log opt 'awslogs-datetime-format' and 'awslogs-multiline-pattern' at the same time"
        )
    if log_format and (datetime_format or pattern):
        raise InvalidParameter(
            "you cannot configure log opt 'awslogs-datetime-format' or 'awslogs-multiline-pattern' when log opt "
            "'awslogs-format' is set to 'json/emf'"
        )
    multiline = None
    source = datetime_format_regex(datetime_format) if datetime_format else pattern
    if source:
        try:
            multiline = re.compile(source.encode())
        except re.error as err:
            raise InvalidParameter(f"awslogs could not parse multiline pattern key {source!r}: {err}") from None
    return Config(
        region=region_of(opts, environ),
        group=group,
        stream_override=opts.get("awslogs-stream", ""),
        endpoint=opts.get("awslogs-endpoint", ""),
        create_group=_flag(opts, "awslogs-create-group", False),
        create_stream=_flag(opts, "awslogs-create-stream", True),
        multiline=multiline,
        credentials_endpoint=opts.get("awslogs-credentials-endpoint", ""),
        flush_interval_s=_positive(opts, "awslogs-force-flush-interval-seconds", DEFAULT_FLUSH_INTERVAL_S),
        max_buffered_events=_positive(opts, "awslogs-max-buffered-events", DEFAULT_MAX_BUFFERED_EVENTS),
        emf=log_format == EMF_FORMAT,
    )


def validate_options(opts: Mapping[str, str]) -> None:
    reject_unknown(DRIVER, opts, ACCEPTED)
    parse_config(opts)
