"""`logship system df`, `logship container prune`, `logship image prune`: docker's commands for the disk."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from logship.cli.common import get_client, print_table
from logship.client import APIError
from logship.humanize import human_size


def _percent(part: int, whole: int) -> str:
    return f"{human_size(part)} ({part * 100 // whole if whole else 0}%)"


@click.group("system")
def system_group() -> None:
    """Disk usage of the daemon's images, containers and volumes."""


@system_group.command("df")
@click.option("-v", "--verbose", is_flag=True, help="List every image and container.")
def df(verbose: bool) -> None:
    """Show how much disk the images and containers take, and what a prune would reclaim."""
    try:
        usage = get_client().json("GET", "/system/df")
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    images, containers = usage["Images"], usage["Containers"]
    used_images = [i for i in images if i["Containers"] > 0]
    image_size = usage["LayersSize"]
    running = [c for c in containers if c["State"] in ("running", "restarting")]
    container_size = sum(c["SizeRw"] for c in containers)
    idle_size = sum(c["SizeRw"] for c in containers if c not in running)
    volumes = usage.get("Volumes") or []
    volume_size = sum(v["UsageData"]["Size"] for v in volumes)
    unused_volume_size = sum(v["UsageData"]["Size"] for v in volumes if v["UsageData"]["RefCount"] == 0)
    print_table(
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        [
            [
                "Images",
                str(len(images)),
                str(len(used_images)),
                human_size(image_size),
                _percent(image_size - sum(i["Size"] for i in used_images), image_size),
            ],
            [
                "Containers",
                str(len(containers)),
                str(len(running)),
                human_size(container_size),
                _percent(idle_size, container_size),
            ],
            [
                "Local Volumes",
                str(len(volumes)),
                str(sum(1 for v in volumes if v["UsageData"]["RefCount"] > 0)),
                human_size(volume_size),
                _percent(unused_volume_size, volume_size),
            ],
            ["Build Cache", "0", "0", "0B", "0B"],
        ],
    )
    if verbose:
        click.echo("\nImages space usage:\n")
        print_table(
            ["IMAGE ID", "TAGS", "SIZE", "CONTAINERS"],
            [
                [i["Id"][7:19], ",".join(i["RepoTags"]) or "<none>", human_size(i["Size"]), str(i["Containers"])]
                for i in images
            ],
        )
        click.echo("\nContainers space usage:\n")
        print_table(
            ["CONTAINER ID", "IMAGE", "SIZE", "STATUS", "NAMES"],
            [[c["Id"][:12], c["Image"], human_size(c["SizeRw"]), c["Status"], c["Names"][0][1:]] for c in containers],
        )


def _filters(values: tuple[str, ...], extra: dict[str, list[str]] | None = None) -> str | None:
    grouped: dict[str, list[str]] = dict(extra or {})
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"bad format of filter (expected name=value): {item}")
        if key == "label" and value.startswith("!"):  # docker's `label!=...` spelling
            key, value = "label!", value[1:]
        grouped.setdefault(key, []).append(value)
    return json.dumps(grouped) if grouped else None


def _confirm(force: bool, warning: str) -> None:
    if not force and not click.confirm(f"WARNING! {warning}\nAre you sure you want to continue?", default=False):
        sys.exit(0)


def _prune(path: str, filters: str | None) -> dict[str, Any]:
    try:
        result: dict[str, Any] = get_client().json("POST", path, {"filters": filters})
        return result
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)


@click.group("container")
def container_group() -> None:
    """Manage containers (prune)."""


@container_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--filter", "filters", multiple=True, help="until=<time>, label=<key>[=<value>], label!=...")
def container_prune(force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    _confirm(force, "This will remove all stopped containers.")
    result = _prune("/containers/prune", _filters(filters))
    if result.get("ContainersDeleted"):
        click.echo("Deleted Containers:")
        for container_id in result["ContainersDeleted"]:
            click.echo(container_id)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")


@click.group("image")
def image_group() -> None:
    """Manage images (prune)."""


@image_group.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove every image no container uses.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--filter", "filters", multiple=True, help="until=<time>, label=<key>[=<value>], label!=...")
def image_prune(all_images: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images: untagged ones, or with -a every image no container uses."""
    if all_images:
        _confirm(force, "This will remove all images without at least one container associated to them.")
    else:
        _confirm(force, "This will remove all dangling images.")
    result = _prune("/images/prune", _filters(filters, {"dangling": ["false"]} if all_images else None))
    if result.get("ImagesDeleted"):
        click.echo("Deleted Images:")
        for entry in result["ImagesDeleted"]:
            for kind, value in entry.items():
                click.echo(f"{kind.lower()}: {value}")
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")


COMMANDS = [system_group, container_group, image_group]
