"""`logship events`: the daemon's events, as `docker events` prints them (or through --format)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from logship.cli.common import get_client
from logship.cli.containers import render_format
from logship.client import APIError
from logship.logscommand import InvalidTime, api_timestamp


def _line(event: dict[str, Any]) -> str:
    """docker's default: time, type, action, actor id, (attributes)."""
    seconds, fraction = divmod(int(event.get("timeNano", 0)), 1_000_000_000)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    listed = ", ".join(f"{key}={value}" for key, value in sorted(attributes.items()))
    text = f"{when} {event.get('Type')} {event.get('Action')} {actor.get('ID', '')}"
    return f"{text} ({listed})" if listed else text


@click.command()
@click.option("--since", help="Show events since a time: RFC 3339, a Unix time or a duration (10m).")
@click.option("--until", help="Stream events until this time.")
@click.option("-f", "--filter", "filters", multiple=True, help="container=, image=, type=, event=, label=...")
@click.option("--format", "fmt", help="Format each event with a template ({{.Action}}, {{json .}}).")
def events(since: str | None, until: str | None, filters: tuple[str, ...], fmt: str | None) -> None:
    """The daemon's events: containers, images and the daemon, live (and past ones with --since)."""
    grouped: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"bad format of filter (expected name=value): {item}")
        grouped.setdefault(key, []).append(value)
    try:
        query = {
            "since": api_timestamp(since, "since") if since else None,
            "until": api_timestamp(until, "until") if until else None,
            "filters": json.dumps(grouped) if grouped else None,
        }
    except InvalidTime as err:
        raise click.UsageError(str(err)) from None
    client = get_client()
    try:
        response = client.request("GET", "/events", query)
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    try:
        while line := response.readline():
            event = json.loads(line)
            if fmt == "{{json .}}":
                click.echo(json.dumps(event, separators=(",", ":")))
            elif fmt:
                click.echo(render_format(fmt, event))
            else:
                click.echo(_line(event))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return


COMMANDS = [events]
