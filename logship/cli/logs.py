"""`logship logs`: a container's log, stdout to stdout and stderr to stderr, as `docker logs` prints it.

Several containers at once are shown as `docker compose logs` shows a project: see `multilogs`.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import IO

import click

from logship.cli.common import get_client
from logship.client import STREAM_HEADER, path_quote

STREAM_STDOUT, STREAM_STDERR, STREAM_SYSTEMERR = 1, 2, 3  # Docker's frame types

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?(Z|z|[+-]\d{2}:\d{2})?$"
)
_UNIX = re.compile(r"^\d+(\.\d{1,9})?$")


def api_timestamp(value: str, name: str, now: float | None = None) -> str:
    """The docker CLI's conversion of --since/--until into the API's `<seconds>[.<nanoseconds>]`.

    A duration means that long before now; an RFC 3339 date or time without a zone is local time;
    a Unix timestamp passes through.
    """
    if not value:
        return ""
    from logship.units import go_duration_or_none  # only here: plain `logs` starts without it

    duration = go_duration_or_none(value)
    if duration is not None and value != "0":
        return str(int((now if now is not None else time.time()) - duration))
    match = _TIMESTAMP.match(value)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        nanos = int((fraction or "0").ljust(9, "0"))
        if zone is None:
            seconds = int(time.mktime((*fields, 0, 0, -1)))
        else:
            import calendar  # only here: it imports locale, which plain `logs` does without

            seconds = calendar.timegm((*fields, 0, 0, 0))
            if zone not in ("Z", "z"):
                offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
                seconds -= offset if zone[0] == "+" else -offset
        return f"{seconds}.{nanos:09d}"
    if "-" in value or not _UNIX.match(value):
        raise click.UsageError(f'invalid value for "{name}": failed to parse value as time or duration: "{value}"')
    return value


def copy_multiplexed(response: IO[bytes], stdout: IO[bytes], stderr: IO[bytes]) -> None:
    """Demultiplex Docker's framed stream in large reads. A frame's payload is copied as it arrives (a
    frame can span many reads: logship sends a run of lines as one frame), and consecutive pieces for
    one stream go out in one write."""
    read = getattr(response, "read1", response.read)
    pending = b""  # the beginning of a frame header that a read cut off
    stream_type, left = STREAM_STDOUT, 0  # the frame being copied, and how much of its payload is to come
    daemon_error = b""
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
                    message = daemon_error.decode(errors="replace").strip()
                    raise click.ClickException("error from daemon in stream: " + message)
                continue
            out = stderr if stream_type == STREAM_STDERR else stdout
            if out is not target:
                _write_all(target, pieces)
                target, pieces = out, []
            pieces.append(piece)
        _write_all(target, pieces)
        stdout.flush()
        stderr.flush()


def _write_all(target: IO[bytes] | None, pieces: list[memoryview]) -> None:
    if target is not None and pieces:
        target.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))


def copy_raw(response: IO[bytes], stdout: IO[bytes]) -> None:
    read = getattr(response, "read1", response.read)
    while chunk := read(1 << 20):
        stdout.write(chunk)
        stdout.flush()


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", show_default=True, help="Number of lines to show from the end.")
@click.option("--since", default="", help="Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m).")
@click.option("--until", default="", help="Show logs before a timestamp or relative time.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.option("--no-color", is_flag=True, help="Several containers: produce monochrome output.")
@click.option("--no-log-prefix", is_flag=True, help="Several containers: don't print the container name first.")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
def logs(
    follow: bool,
    tail: str,
    since: str,
    until: str,
    timestamps: bool,
    details: bool,
    no_color: bool,
    no_log_prefix: bool,
    containers: tuple[str, ...],
) -> None:
    """Fetch the logs of a container, or of several merged by time, each line prefixed with its name."""
    query = {
        "stdout": "1",
        "stderr": "1",
        "follow": "1" if follow else None,
        "tail": tail if tail not in ("all", "") else None,
        "since": api_timestamp(since, "since") or None,
        "until": api_timestamp(until, "until") or None,
        "timestamps": "1" if timestamps else None,
        "details": "1" if details else None,
    }
    client = get_client()
    # Every name is checked before anything is printed: a typo fails the whole command at once.
    inspected = [client.json("GET", f"/containers/{path_quote(container)}/json") for container in containers]
    distinct = list({info["Id"]: info for info in inspected}.values())
    if len(distinct) > 1:
        from logship.cli import multilogs  # only here: one container's logs start as fast as before

        display = multilogs.Display(
            timestamps=timestamps,
            prefix=not no_log_prefix,
            colour=not no_color and not os.environ.get("NO_COLOR"),
        )
        sys.exit(multilogs.show_logs(client, distinct, query, display))
    info = distinct[0]
    response = client.request("GET", f"/containers/{info['Id']}/logs", query)
    if info["Config"].get("Tty"):
        copy_raw(response, sys.stdout.buffer)
    else:
        copy_multiplexed(response, sys.stdout.buffer, sys.stderr.buffer)
    sys.stdout.flush()


COMMANDS = [logs]
