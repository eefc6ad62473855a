"""`logship logs`: a container's log, stdout to stdout and stderr to stderr, as `docker logs` prints it;
several containers at once are shown as `docker compose logs` shows a project (see logship.cli.multilogs).

This module holds the command's options and its work, and imports no click: `logs` is the command run
most often, a short request whose latency is mostly start-up, and importing click costs more (~25 ms)
than the request. So a plain `logship logs ...` is read here (`plain_command`) and runs without click;
anything else (--help, a mistake, options of the `logship` group) goes to the click command that
logship/cli/logs.py builds from the same OPTIONS, so help and error messages are click's own.
"""

from __future__ import annotations

import os
import re
import sys
import time

from logship.client import (
    STREAM_HEADER,
    STREAM_NOTICE,
    Client,
    UnusableTLSFiles,
    multiplexed,
    path_quote,
    resolve_tls,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms); type checkers know the name
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import IO, Any

STREAM_STDOUT, STREAM_STDERR, STREAM_SYSTEMERR = 1, 2, 3  # Docker's frame types


class Option:
    """An option of `logs`: its flags, its help, and a default when it takes a value (a flag has none: it
    is False unless given). `name` is the keyword its value is passed as, click's name for it."""

    __slots__ = ("default", "flags", "help", "name", "show_default")

    def __init__(self, flags: tuple[str, ...], help: str, default: str | None = None, show_default: bool = False):
        self.flags = flags
        self.help = help
        self.default = default
        self.show_default = show_default
        self.name = flags[-1].removeprefix("--").replace("-", "_")

    @property
    def takes_value(self) -> bool:
        return self.default is not None


OPTIONS = (
    Option(("-f", "--follow"), "Follow log output."),
    Option(("-n", "--tail"), "Number of lines to show from the end.", default="all", show_default=True),
    Option(("--since",), "Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m).", default=""),
    Option(("--until",), "Show logs before a timestamp or relative time.", default=""),
    Option(("-t", "--timestamps"), "Show timestamps."),
    Option(("--details",), "Show extra details provided to logs."),
    Option(("--no-color",), "Several containers: produce monochrome output."),
    Option(("--no-log-prefix",), "Several containers: don't print the container name first."),
)


def parse_plain(args: Sequence[str]) -> tuple[tuple[str, ...], dict[str, Any]] | None:
    """The containers and option values of `logship logs ARGS` as click reads them, or None when click is
    to answer instead: --help, an unknown option, a flag with a value, a missing value, no container.

    Click's rules: options and containers in any order; `--name value` or `--name=value`; short flags
    clustered (`-ft`), a short option's value attached (`-n5`, `-tn5`, even `-n=5`: value `=5`) or the next
    argument; an option's value is the next argument whatever it looks like; `-` is a container; after
    `--` everything is; given twice, the last value counts.
    """
    long = {flag: option for option in OPTIONS for flag in option.flags if flag.startswith("--")}
    short = {flag[1]: option for option in OPTIONS for flag in option.flags if not flag.startswith("--")}
    values: dict[str, Any] = {option.name: option.default if option.takes_value else False for option in OPTIONS}
    containers: list[str] = []
    pending = list(reversed(args))  # the next argument last: pop() takes it
    while pending:
        arg = pending.pop()
        if arg == "--":
            containers += reversed(pending)
            break
        if not arg.startswith("-") or arg == "-":
            containers.append(arg)
        elif arg.startswith("--"):
            flag, equals, value = arg.partition("=")
            option = long.get(flag)
            if option is None or (equals and not option.takes_value):
                return None
            if not option.takes_value:
                values[option.name] = True
            elif equals:
                values[option.name] = value
            elif pending:
                values[option.name] = pending.pop()
            else:
                return None
        else:
            for end, letter in enumerate(arg[1:], 2):
                option = short.get(letter)
                if option is None:
                    return None
                if not option.takes_value:
                    values[option.name] = True
                    continue
                if end < len(arg):
                    values[option.name] = arg[end:]
                elif pending:
                    values[option.name] = pending.pop()
                else:
                    return None
                break
    return (tuple(containers), values) if containers else None


def plain_command(args: Sequence[str]) -> Callable[[], None] | None:
    """`logship logs ARGS`, ready to run without click; None when click has to see ARGS: see parse_plain,
    and a bad --since, --until or $LOGSHIP_HOST (click shows those with its usage line) or TLS files that
    cannot be used, or shell completion asked for. Click then does all of it again, as if we were not here."""
    parsed = parse_plain(args)
    # Click's shell completion answers when $_<PROG>_COMPLETE is set; PROG depends on how we were started.
    if parsed is None or any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ):
        return None
    containers, values = parsed
    try:
        command = LogsCommand(containers, **values)
        # The `logship` group's client when none of its options (-H, --tls...) is given.
        client = Client(None, resolve_tls(False, False, None, None, None), start_daemon=True)
    except (ValueError, UnusableTLSFiles):  # InvalidTime is a ValueError, as is a bad host
        return None

    def run() -> None:
        try:
            command.run(client)
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr, flush=True)  # as click does: the shell's prompt starts on a line of its own
            sys.exit(130)
        except Exception as err:
            # Shown as click shows its errors. Only copy_multiplexed raises one, importing click to do so.
            if "click" not in sys.modules:
                raise
            from click import ClickException

            if not isinstance(err, ClickException):
                raise
            err.show()
            sys.exit(err.exit_code)

    return run


class InvalidTime(ValueError):
    """A --since or --until value that is neither a time nor a duration; `str()` says so, as docker does."""


class LogsCommand:
    """One `logs` command: its options, checked (InvalidTime for a bad --since or --until), and `run`."""

    def __init__(
        self,
        containers: Sequence[str],
        *,
        follow: bool,
        tail: str,
        since: str,
        until: str,
        timestamps: bool,
        details: bool,
        no_color: bool,
        no_log_prefix: bool,
    ) -> None:
        self.containers = containers
        self.query = {
            "stdout": "1",
            "stderr": "1",
            "follow": "1" if follow else None,
            "tail": tail if tail not in ("all", "") else None,
            "since": api_timestamp(since, "since") or None,
            "until": api_timestamp(until, "until") or None,
            "timestamps": "1" if timestamps else None,
            "details": "1" if details else None,
            # Lines lost while following (a follower that fell too far behind) are told as they happen, in
            # frames of their own, which go to stderr: a logship extension dockerd ignores.
            "notices": "1" if follow else None,
        }
        self.timestamps = timestamps
        self.no_color = no_color
        self.no_log_prefix = no_log_prefix

    def run(self, client: Client) -> None:
        # Every name is checked before anything is printed: a typo fails the whole command at once.
        inspected = [client.json("GET", f"/containers/{path_quote(name)}/json") for name in self.containers]
        distinct = list({info["Id"]: info for info in inspected}.values())
        if len(distinct) > 1:
            from logship.cli import multilogs  # only here: one container's logs start as fast as before

            display = multilogs.Display(
                timestamps=self.timestamps,
                prefix=not self.no_log_prefix,
                colour=not self.no_color and not os.environ.get("NO_COLOR"),
            )
            sys.exit(multilogs.show_logs(client, distinct, self.query, display))
        info = distinct[0]
        # This CLI demultiplexes by stream and size only: a frame per run of lines rather than per message
        # (a logship extension; dockerd ignores it) saves most of the frames to parse.
        response = client.request("GET", f"/containers/{info['Id']}/logs", {**self.query, "runs": "1"})
        lost = False
        if multiplexed(response, bool(info["Config"].get("Tty"))):
            lost = copy_multiplexed(response, sys.stdout.buffer, sys.stderr.buffer)
        else:
            copy_raw(response, sys.stdout.buffer)
        sys.stdout.flush()
        if lost:  # the notices said what on stderr; a script learns it from the exit code
            sys.exit(1)


_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?(Z|z|[+-]\d{2}:\d{2})?$"
)
_UNIX = re.compile(r"^\d+(\.\d{1,9})?$")


def api_timestamp(value: str, name: str, now: float | None = None) -> str:
    """The docker CLI's conversion of --since/--until into the API's `<seconds>[.<nanoseconds>]`.

    A duration means that long before now; an RFC 3339 date or time without a zone is local time;
    a Unix timestamp passes through. InvalidTime for anything else.
    """
    if not value:
        return ""
    # A time first: it never reads as a duration, and then logship.units is not imported.
    match = _TIMESTAMP.match(value)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        nanos = int((fraction or "0").ljust(9, "0"))
        if zone is None:
            seconds = int(time.mktime((*fields, 0, 0, -1)))
        elif not 1 <= fields[1] <= 12 or not fields[0]:  # calendar.timegm() would raise ValueError
            raise _invalid_time(value, name)
        else:
            seconds = utc_seconds(*fields)
            if zone not in ("Z", "z"):
                offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
                seconds -= offset if zone[0] == "+" else -offset
        return f"{seconds}.{nanos:09d}"
    from logship.units import go_duration_or_none  # only here: plain `logs` starts without it

    duration = go_duration_or_none(value)
    if duration is not None and value != "0":
        return str(int((now if now is not None else time.time()) - duration))
    if "-" in value or not _UNIX.match(value):
        raise _invalid_time(value, name)
    return value


def _invalid_time(value: str, name: str) -> InvalidTime:
    return InvalidTime(f'invalid value for "{name}": failed to parse value as time or duration: "{value}"')


def utc_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """calendar.timegm() of a time with months 1 to 12 (days, hours... may overflow, as there): importing
    calendar (locale, datetime) would cost `logs --since` ~4 ms of start-up. The days since 1970-01-01
    are counted in 400-year eras of 146097 days, with years starting on March 1st so that February's
    leap day comes last (Howard Hinnant's days_from_civil)."""
    march_based = year - (month <= 2)
    era, year_of_era = divmod(march_based, 400)
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    return ((days * 24 + hour) * 60 + minute) * 60 + second


def copy_multiplexed(response: IO[bytes], stdout: IO[bytes], stderr: IO[bytes]) -> bool:
    """Demultiplex Docker's framed stream in large reads. A frame's payload is copied as it arrives (a
    frame can span many reads: logship sends a run of lines as one frame), and consecutive pieces for
    one stream go out in one write. A notice (lines lost while following) goes to stderr as a warning;
    returns whether there was one."""
    read = getattr(response, "read1", response.read)
    pending = b""  # the beginning of a frame header that a read cut off
    stream_type, left = STREAM_STDOUT, 0  # the frame being copied, and how much of its payload is to come
    daemon_error = b""
    notice = b""
    noticed = False
    while chunk := read(1 << 20):
        data = pending + chunk if pending else chunk
        pending = b""
        view = memoryview(data)
        position, end = 0, len(data)
        target: IO[bytes] | None = None
        pieces: list[memoryview] = []
        while position < end:
            if not left:
                if end - position < STREAM_HEADER.size:
                    pending = data[position:]
                    break
                stream_type, left = STREAM_HEADER.unpack_from(data, position)
                position += STREAM_HEADER.size
                continue
            piece = view[position : position + left]
            position += len(piece)
            left -= len(piece)
            if stream_type == STREAM_SYSTEMERR:
                daemon_error += piece
                if not left:
                    # Only here: an error in the stream is rare. Click shows it (see plain_command too).
                    from click import ClickException

                    message = daemon_error.decode(errors="replace").strip()
                    raise ClickException("error from daemon in stream: " + message)
                continue
            if stream_type == STREAM_NOTICE:
                notice += piece
                if not left:
                    _write_all(target, pieces)
                    target, pieces = None, []
                    stdout.flush()  # what came before the gap is out before the warning
                    stderr.write(b"WARNING: " + notice)
                    stderr.flush()
                    notice, noticed = b"", True
                continue
            out = stderr if stream_type == STREAM_STDERR else stdout
            if out is not target:
                _write_all(target, pieces)
                target, pieces = out, []
            pieces.append(piece)
        _write_all(target, pieces)
        stdout.flush()
        stderr.flush()
    return noticed


def _write_all(target: IO[bytes] | None, pieces: list[memoryview]) -> None:
    if target is not None and pieces:
        target.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))


def copy_raw(response: IO[bytes], stdout: IO[bytes]) -> None:
    read = getattr(response, "read1", response.read)
    while chunk := read(1 << 20):
        stdout.write(chunk)
        stdout.flush()
