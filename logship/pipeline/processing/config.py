"""The processing log-opts, per container or as daemon.json defaults, checked at create.

    multiline=java|python|go       a preset for stack traces and tracebacks as those runtimes print them
    multiline-start=<regex>        lines that do not match join the event before them
    multiline-timeout=<duration>   an event ends when its next line was read this much later (default 1s)
    multiline-max-bytes=<size>     an event ends at this size (default 256k; also bounds parse=json)
    multiline-files=lines|events   json-file, local and the dual-logging cache: a record per line (default)
                                   or per event
    parse=json                     a line that is a JSON object becomes fields (drivers that have fields)
    parse-key=<name>               ... under this key (fluentd), or prefixed with it (gelf, journald)
    redact=<regex>[,<regex>...]    matches are replaced before any driver sees the line
    redact-replacement=<text>      what replaces them (default [REDACTED])
    drop=<regex>, keep=<regex>     which lines go on: keep's matches, less drop's

Regexes are Python's (`re`, on bytes), as `awslogs-multiline-pattern` already is; a line matches when the
regex matches anywhere in it (Go's `Match`, which Docker's awslogs uses): anchor with ^ to match at the start.
Everything is off by default, and `config_of` is None then: nothing is built, nothing runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from logship.errors import InvalidParameter
from logship.units import SizeError, go_duration_or_none, ram_in_bytes

MULTILINE = "multiline"
MULTILINE_START = "multiline-start"
MULTILINE_TIMEOUT = "multiline-timeout"
MULTILINE_MAX_BYTES = "multiline-max-bytes"
MULTILINE_FILES = "multiline-files"
PARSE = "parse"
PARSE_KEY = "parse-key"
REDACT = "redact"
REDACT_REPLACEMENT = "redact-replacement"
DROP = "drop"
KEEP = "keep"

OPTIONS = frozenset(
    {
        MULTILINE,
        MULTILINE_START,
        MULTILINE_TIMEOUT,
        MULTILINE_MAX_BYTES,
        MULTILINE_FILES,
        PARSE,
        PARSE_KEY,
        REDACT,
        REDACT_REPLACEMENT,
        DROP,
        KEEP,
    }
)

PRESETS = ("java", "python", "go")
DEFAULT_TIMEOUT_NS = 1_000_000_000
DEFAULT_MAX_BYTES = 256 << 10
MIN_MAX_BYTES = 1 << 10
MAX_MAX_BYTES = 16 << 20
MAX_TIMEOUT_S = 3600.0
DEFAULT_REPLACEMENT = b"[REDACTED]"
CACHE = "cache"  # the dual-logging cache (local format) keeps a record per line too
AWSLOGS_MULTILINE = ("awslogs-multiline-pattern", "awslogs-datetime-format")


@dataclass(frozen=True)
class ProcessingConfig:
    multiline: str = ""  # a preset, or "" (then multiline_start, or no joining)
    multiline_start: bytes = b""
    timeout_ns: int = DEFAULT_TIMEOUT_NS
    max_bytes: int = DEFAULT_MAX_BYTES
    files_events: bool = False  # multiline-files=events
    parse_json: bool = False
    parse_key: str = ""
    redact: tuple[bytes, ...] = ()
    replacement: bytes = DEFAULT_REPLACEMENT
    drop: bytes = b""
    keep: bytes = b""

    @property
    def filters_lines(self) -> bool:
        """Whether the lines stage runs (for every driver)."""
        return bool(self.redact or self.drop or self.keep)

    @property
    def joins(self) -> bool:
        return bool(self.multiline or self.multiline_start)

    def for_records(self, line_records: bool) -> ProcessingConfig | None:
        """What a driver gets: drivers with a record per line (json-file, local, the cache) get the lines
        stage only, unless multiline-files=events; they never parse (they have no fields). None: nothing."""
        config = self
        if line_records:
            config = ProcessingConfig(
                multiline=self.multiline if self.files_events else "",
                multiline_start=self.multiline_start if self.files_events else b"",
                timeout_ns=self.timeout_ns,
                max_bytes=self.max_bytes,
                redact=self.redact,
                replacement=self.replacement,
                drop=self.drop,
                keep=self.keep,
            )
        if not (config.filters_lines or config.joins or config.parse_json):
            return None
        return config


def config_of(opts: Mapping[str, str]) -> ProcessingConfig | None:
    """The container's processing, None when none of it is on (the options were checked at create)."""
    if not any(key in opts for key in OPTIONS):
        return None
    timeout = go_duration_or_none(opts.get(MULTILINE_TIMEOUT, "")) if opts.get(MULTILINE_TIMEOUT) else None
    config = ProcessingConfig(
        multiline=opts.get(MULTILINE, ""),
        multiline_start=opts.get(MULTILINE_START, "").encode(),
        timeout_ns=int(timeout * 1e9) if timeout else DEFAULT_TIMEOUT_NS,
        max_bytes=ram_in_bytes(opts[MULTILINE_MAX_BYTES]) if opts.get(MULTILINE_MAX_BYTES) else DEFAULT_MAX_BYTES,
        files_events=opts.get(MULTILINE_FILES, "lines") == "events",
        parse_json=opts.get(PARSE, "") == "json",
        parse_key=opts.get(PARSE_KEY, ""),
        redact=tuple(pattern.encode() for pattern in split_patterns(opts.get(REDACT, ""))),
        replacement=opts.get(REDACT_REPLACEMENT, DEFAULT_REPLACEMENT.decode()).encode(),
        drop=opts.get(DROP, "").encode(),
        keep=opts.get(KEEP, "").encode(),
    )
    if not (config.filters_lines or config.joins or config.parse_json):
        return None
    return config


def split_patterns(value: str) -> list[str]:
    """`redact`'s list: regexes separated by commas. A comma inside (), [] or {} belongs to its regex
    (`\\d{3,4}`), and `\\,` is a comma too."""
    patterns: list[str] = []
    current: list[str] = []
    depth = 0
    escaped = False
    in_class = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\":
            current.append(char)
            escaped = True
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "({":
            depth += 1
        elif char in ")}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            patterns.append("".join(current))
            current = []
            continue
        current.append(char)
    patterns.append("".join(current))
    return [pattern for pattern in patterns if pattern]


def _compile(option: str, pattern: str) -> re.Pattern[bytes]:
    try:
        compiled = re.compile(pattern.encode())
    except re.error as err:
        raise InvalidParameter(
            f"invalid {option} regex '{pattern}': {err} (Python regular expression syntax, as in "
            "awslogs-multiline-pattern)"
        ) from None
    return compiled


def validate(driver: str, opts: Mapping[str, str], has_fields: bool, line_records: bool) -> None:
    """Raise InvalidParameter naming the option and what to do, for the first problem found."""
    preset = opts.get(MULTILINE)
    start = opts.get(MULTILINE_START)
    if preset is not None and preset not in PRESETS:
        raise InvalidParameter(
            f"invalid multiline '{preset}': use java, python or go, or give your own regex with multiline-start"
        )
    if preset is not None and start is not None:
        raise InvalidParameter("multiline and multiline-start cannot be used together: give one of them")
    if start is not None:
        if not start:
            raise InvalidParameter("multiline-start needs a regex that matches the first line of each event")
        if _compile(MULTILINE_START, start).search(b"") is not None:
            raise InvalidParameter(
                f"invalid multiline-start '{start}': it matches an empty line, so every line would start an "
                "event; give a regex that matches only the first line of an event, such as ^\\d{4}-"
            )
    joins = preset is not None or start is not None
    if joins:
        for option in AWSLOGS_MULTILINE:
            if option in opts:
                raise InvalidParameter(
                    f"{MULTILINE if preset is not None else MULTILINE_START} and {option} cannot be used together: "
                    f"{option} groups lines for awslogs as Docker does; give one of them"
                )
    for option in (MULTILINE_TIMEOUT, MULTILINE_FILES):
        if option in opts and not joins:
            raise InvalidParameter(f"{option} needs multiline=java|python|go or multiline-start=<regex>")
    if MULTILINE_TIMEOUT in opts:
        seconds = go_duration_or_none(opts[MULTILINE_TIMEOUT])
        if seconds is None or not 0 < seconds <= MAX_TIMEOUT_S:
            raise InvalidParameter(
                f"invalid multiline-timeout '{opts[MULTILINE_TIMEOUT]}': give a duration above 0 and at most 1h, "
                "such as 1s or 500ms"
            )
    if MULTILINE_MAX_BYTES in opts:
        if not joins and opts.get(PARSE) != "json":
            raise InvalidParameter(
                "multiline-max-bytes needs multiline=java|python|go, multiline-start=<regex> or parse=json"
            )
        try:
            size = ram_in_bytes(opts[MULTILINE_MAX_BYTES])
        except SizeError as err:
            raise InvalidParameter(f"error parsing option multiline-max-bytes: {err} (a size such as 256k)") from None
        if not MIN_MAX_BYTES <= size <= MAX_MAX_BYTES:
            raise InvalidParameter(
                f"invalid multiline-max-bytes '{opts[MULTILINE_MAX_BYTES]}': give a size from 1k to 16m"
            )
    files = opts.get(MULTILINE_FILES)
    if files is not None and files not in ("lines", "events"):
        raise InvalidParameter(
            f"invalid multiline-files '{files}': use lines (a record per line, as Docker) or events (a record "
            "per multiline event)"
        )
    if joins and line_records and files != "events":
        raise InvalidParameter(
            f"{MULTILINE if preset is not None else MULTILINE_START} has no effect on {driver}, which keeps a "
            "record per line as Docker's format does: add multiline-files=events to store an event per record"
        )
    parse = opts.get(PARSE)
    if parse is not None:
        if parse != "json":
            raise InvalidParameter(f"invalid parse '{parse}': the only parser is json (parse=json)")
        if not has_fields:
            raise InvalidParameter(
                f"parse=json: the {driver} log driver sends or stores each line as it is, with no fields to put JSON "
                "keys in; remove the option, or use a driver with fields (fluentd, gelf, journald, awslogs)"
            )
    if PARSE_KEY in opts:
        if parse is None:
            raise InvalidParameter("parse-key needs parse=json")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", opts[PARSE_KEY]):
            raise InvalidParameter(
                f"invalid parse-key '{opts[PARSE_KEY]}': use letters, digits, '_', '.' or '-' (such as json)"
            )
    if REDACT in opts:
        patterns = split_patterns(opts[REDACT])
        if not patterns:
            raise InvalidParameter("redact needs at least one regex (redact=<regex>[,<regex>...])")
        for pattern in patterns:
            if _compile(REDACT, pattern).search(b"") is not None:
                raise InvalidParameter(
                    f"invalid redact regex '{pattern}': it matches empty text, so it would insert the replacement "
                    "everywhere; give a regex that matches the secret itself, such as password=\\S+"
                )
    if REDACT_REPLACEMENT in opts:
        if REDACT not in opts:
            raise InvalidParameter("redact-replacement needs redact=<regex>")
        if "\n" in opts[REDACT_REPLACEMENT] or "\r" in opts[REDACT_REPLACEMENT]:
            raise InvalidParameter("invalid redact-replacement: it must not contain a line break")
    for option in (DROP, KEEP):
        if option in opts:
            if not opts[option]:
                raise InvalidParameter(f"{option} needs a regex (the lines to {option})")
            _compile(option, opts[option])


def line_records_of(driver: str, factory: object) -> bool:
    """Whether a driver keeps a record per line (json-file, local, the cache: see `DriverFactory`)."""
    return driver == CACHE or bool(getattr(factory, "line_records", False))


def has_fields(factory: object) -> bool:
    """Whether a driver puts parse=json's keys in fields of its own (see `DriverFactory`). A driver says so:
    one that does not know about `Batch.fields` would drop them silently, so parse=json is refused for it."""
    return bool(getattr(factory, "has_fields", False))
