"""`logship stats`: each container's logging counters, live, like `docker stats` (per driver)."""

from __future__ import annotations

import calendar
import sys
import time
from typing import Any

import click

from logship.cli.common import ago, get_client, print_table
from logship.client import APIError, Client, path_quote
from logship.humanize import human_size

HEADERS = [
    "CONTAINER ID",
    "NAME",
    "DRIVER",
    "MODE",
    "READ",
    "WRITTEN",
    "DROPPED",
    "RETRIED",
    "FAILED",
    "PARTIAL",
    "BUFFER",
    "LAST WRITE",
    "LAST ERROR",
]
CLEAR_SCREEN = "\033[2J\033[H"


def _since(iso: str) -> str:
    if not iso:
        return "-"
    seconds = calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
    return ago(seconds)


def rows_for(info: dict[str, Any]) -> list[list[str]]:
    stats = info.get("LogStats") or {}
    drivers = stats.get("Drivers") or [{}]
    rows = []
    for driver in drivers:
        limit = driver.get("BufferLimit", 0)
        buffer = f"{human_size(driver.get('BufferedBytes', 0))} / {human_size(limit)}" if limit else "-"
        error = driver.get("LastError", "")
        rows.append(
            [
                info["Id"][:12],
                info["Name"].lstrip("/"),
                driver.get("Driver", info["HostConfig"]["LogConfig"]["Type"]),
                driver.get("Mode", "-"),
                str(stats.get("LinesRead", 0)),
                str(driver.get("LinesWritten", 0)),
                str(driver.get("LinesDropped", 0)),
                str(driver.get("LinesRetried", 0)),
                str(driver.get("LinesFailed", 0)),
                str(stats.get("PartialMessages", 0)),
                buffer,
                _since(driver.get("LastWrite", "")),
                (error[:40] + "…") if len(error) > 41 else (error or "-"),
            ]
        )
    return rows


def _snapshot(client: Client, refs: tuple[str, ...], show_all: bool) -> tuple[list[list[str]], list[str]]:
    if not refs:
        listed = client.json("GET", "/containers/json", {"all": "1" if show_all else None})
        refs = tuple(c["Id"] for c in listed)
    rows: list[list[str]] = []
    errors: list[str] = []
    for ref in refs:
        try:
            rows += rows_for(client.json("GET", f"/containers/{path_quote(ref)}/json"))
        except APIError as err:
            errors.append(f"Error response from daemon: {err}")
    return rows, errors


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Print the counters once and exit.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.argument("containers", nargs=-1)
def stats(show_all: bool, no_stream: bool, interval: float, containers: tuple[str, ...]) -> None:
    """Live logging counters per container and driver: lines read, written, dropped, retried, failed."""
    client = get_client()
    on_terminal = sys.stdout.isatty()
    try:
        while True:
            rows, errors = _snapshot(client, containers, show_all)
            if on_terminal and not no_stream:
                click.echo(CLEAR_SCREEN, nl=False)
            print_table(HEADERS, rows)
            for error in errors:
                click.echo(error, err=True)
            if no_stream:
                if errors:
                    sys.exit(1)
                return
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return


COMMANDS = [stats]
