"""`logship volume create|ls|inspect|rm|prune`, as `docker volume` (same columns, messages and exit codes)."""

from __future__ import annotations

import json
import sys

import click

from logship.cli.common import for_each, get_client, print_table
from logship.client import APIError, Client, path_quote
from logship.humanize import human_size


def _filters(values: tuple[str, ...]) -> str | None:
    filters: dict[str, list[str]] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            raise click.BadParameter(f"bad format of filter (expected name=value): {value}", param_hint="--filter")
        filters.setdefault(key, []).append(val)
    return json.dumps(filters) if filters else None


@click.group()
def volume() -> None:
    """Manage volumes."""


@volume.command()
@click.option("-d", "--driver", default="local", show_default=True, help="Specify volume driver name.")
@click.option("--label", multiple=True, help="Set metadata for a volume (KEY=value).")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options.")
@click.option("--name", "name_option", help="Specify volume name.")
@click.argument("name", required=False)
def create(
    driver: str, label: tuple[str, ...], opt: tuple[str, ...], name_option: str | None, name: str | None
) -> None:
    """Create a volume."""
    if name and name_option and name != name_option:
        raise click.UsageError("conflicting options: either specify --name or provide positional arg, not both")
    labels = dict(item.partition("=")[::2] for item in label)
    options = dict(item.partition("=")[::2] for item in opt)
    body = {"Name": name or name_option or "", "Driver": driver, "DriverOpts": options, "Labels": labels}
    created = get_client().json("POST", "/volumes/create", None, body)
    click.echo(created["Name"])


@volume.command(name="ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. dangling=true).")
def ls(quiet: bool, filters: tuple[str, ...]) -> None:
    """List volumes."""
    listed = get_client().json("GET", "/volumes", {"filters": _filters(filters)})
    volumes = sorted(listed.get("Volumes") or [], key=lambda item: item["Name"])
    if quiet:
        for item in volumes:
            click.echo(item["Name"])
        return
    print_table(["DRIVER", "VOLUME NAME"], [[item["Driver"], item["Name"]] for item in volumes])


@volume.command()
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    client = get_client()
    found, failed = [], False
    for name in names:
        try:
            found.append(client.json("GET", f"/volumes/{path_quote(name)}"))
        except APIError as err:
            click.echo(f"Error response from daemon: {err}", err=True)
            failed = True
    click.echo(json.dumps(found, indent=4))
    if failed:
        sys.exit(1)


@volume.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.argument("names", nargs=-1, required=True)
def rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more volumes. A volume in use by a container cannot be removed."""

    def one(client: Client, name: str) -> None:
        client.request("DELETE", f"/volumes/{path_quote(name)}", {"force": "1" if force else None}).read()
        click.echo(name)

    for_each(names, one)


@volume.command()
@click.option("-a", "--all", "everything", is_flag=True, help="Remove all unused volumes, not just anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. label=<label>).")
def prune(everything: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused local volumes (anonymous ones unless --all)."""
    if not force:
        what = (
            "all local volumes not used by at least one container"
            if everything
            else "all anonymous local volumes not used by at least one container"
        )
        click.echo(f"WARNING! This will remove {what}.")
        if not click.confirm("Are you sure you want to continue?", default=False, prompt_suffix=" ", show_default=True):
            return
    values = (*filters, "all=true") if everything else filters
    result = get_client().json("POST", "/volumes/prune", {"filters": _filters(values)})
    deleted = result.get("VolumesDeleted") or []
    if deleted:
        click.echo("Deleted Volumes:")
        for name in deleted:
            click.echo(name)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}")


COMMANDS = [volume]
