"""`logship buffer`: the lines that disk-buffered drivers (fluentd, awslogs, ...) still have to deliver
for containers whose logs are closed, and giving them up on purpose."""

from __future__ import annotations

import sys
import time

import click

from logship.cli.common import get_client, print_table
from logship.client import APIError, path_quote
from logship.humanize import human_duration, human_size


@click.group()
def buffer() -> None:
    """Pending deliveries of containers whose logs are closed (ended, stopped or removed)."""


@buffer.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
def list_pending(quiet: bool) -> None:
    """List the containers whose lines are still on their way to their log driver."""
    deliveries = get_client().json("GET", "/logship/buffers")
    if quiet:
        for delivery in deliveries:
            click.echo(delivery["Id"][:12])
        return
    rows = []
    for delivery in deliveries:
        for driver in delivery["LogStats"].get("Drivers") or []:
            disk = driver.get("DiskBuffer")
            if not disk:
                continue
            rows.append(
                [
                    delivery["Id"][:12],
                    delivery["Name"].lstrip("/") + (" (removed)" if delivery["Removed"] else ""),
                    driver["Driver"],
                    str(disk["Lines"]),
                    human_size(disk["Bytes"]),
                    human_duration(int(disk["OldestAgeSeconds"] * 1e9)) if disk["OldestAgeSeconds"] else "-",
                    f"{disk['CatchUpLinesPerSecond']:.0f}/s" if disk["CatchUpLinesPerSecond"] else "-",
                    human_duration(time.time_ns() - delivery["Since"]) + " ago",
                ]
            )
    print_table(["CONTAINER ID", "NAME", "DRIVER", "LINES", "BYTES", "OLDEST", "CATCH-UP", "ENDED"], rows)


@buffer.command("drop")
@click.argument("containers", nargs=-1, required=True)
def drop(containers: tuple[str, ...]) -> None:
    """Give up the lines still pending for CONTAINERS (counted as failed and said in the daemon log)."""
    client = get_client()
    failed = False
    for ref in containers:
        try:
            result = client.json("DELETE", f"/logship/buffers/{path_quote(ref)}")
        except APIError as err:
            click.echo(f"Error response from daemon: {err}", err=True)
            failed = True
            continue
        click.echo(f"{result['Id'][:12]}: {result['LinesGivenUp']} lines given up")
    if failed:
        sys.exit(1)


COMMANDS = [buffer]
