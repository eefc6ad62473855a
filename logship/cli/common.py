"""What every command shares: the client (with daemon autostart), tables and human-readable times."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import click

from logship.client import APIError, Client, TLSOptions
from logship.humanize import human_duration


class CliState:
    def __init__(self, host: str | None, tls: TLSOptions | None = None) -> None:
        self.host = host
        self.tls = tls
        self._client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            try:
                self._client = Client(self.host, self.tls, start_daemon=True)
            except ValueError as err:
                raise click.UsageError(str(err)) from None
        return self._client


def get_client() -> Client:
    state = click.get_current_context().find_object(CliState)
    if state is None:  # called outside the `logship` group (tests invoking a command directly)
        state = CliState(None)
    return state.client()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded like docker's tabwriter: at least three spaces between columns."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [list(headers), *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        click.echo("   ".join(cells).rstrip())


def ago(epoch_seconds: float) -> str:
    """`2 minutes ago`, as docker ps shows CREATED."""
    return human_duration(int((time.time() - epoch_seconds) * 1e9)) + " ago"


def for_each(refs: Sequence[str], action: Callable[[Client, str], None]) -> None:
    """Run `action(client, ref)` for each ref, docker-style: the daemon's errors reported as it words them,
    the others done anyway, exit 1 at the end if any failed."""
    client = get_client()
    failed = False
    for ref in refs:
        try:
            action(client, ref)
        except APIError as err:
            click.echo(f"Error response from daemon: {err}", err=True)
            failed = True
    if failed:
        sys.exit(1)
