"""`logship network create|ls|inspect|rm|connect|disconnect|prune` and `logship port`, as `docker network`
and `docker port` (same columns, messages and exit codes)."""

from __future__ import annotations

import sys
from typing import Any

import click

from logship.cli.common import for_each, get_client, print_table
from logship.cli.disk import _confirm, _filters, _prune
from logship.client import APIError, Client, path_quote


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in values)


@click.group()
def network() -> None:
    """Manage networks."""


@network.command()
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network.")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format that represents a network segment.")
@click.option("--gateway", multiple=True, help="IPv4 Gateway for the master subnet.")
@click.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment.")
@click.option("--label", multiple=True, help="Set metadata on a network (KEY=value).")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options (KEY=value).")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking.")
@click.argument("name")
def create(
    driver: str,
    subnet: tuple[str, ...],
    gateway: tuple[str, ...],
    ip_range: tuple[str, ...],
    internal: bool,
    attachable: bool,
    label: tuple[str, ...],
    opt: tuple[str, ...],
    ipv6: bool,
    name: str,
) -> None:
    """Create a network."""
    if len(gateway) > len(subnet) or len(ip_range) > len(subnet):
        raise click.UsageError("every --gateway and --ip-range needs a --subnet")
    config = [
        {
            "Subnet": each,
            **({"Gateway": gateway[i]} if i < len(gateway) else {}),
            **({"IPRange": ip_range[i]} if i < len(ip_range) else {}),
        }
        for i, each in enumerate(subnet)
    ]
    body = {
        "Name": name,
        "CheckDuplicate": True,
        "Driver": driver,
        "Internal": internal,
        "Attachable": attachable,
        "EnableIPv6": ipv6,
        "IPAM": {"Driver": "default", "Config": config, "Options": {}},
        "Options": _pairs(opt),
        "Labels": _pairs(label),
    }
    try:
        created = get_client().json("POST", "/networks/create", None, body)
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    click.echo(created["Id"])


@network.command(name="ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. driver=bridge).")
def ls(quiet: bool, no_trunc: bool, filters: tuple[str, ...]) -> None:
    """List networks."""
    listed = sorted(get_client().json("GET", "/networks", {"filters": _filters(filters)}), key=lambda n: n["Name"])
    ids = [item["Id"] if no_trunc else item["Id"][:12] for item in listed]
    if quiet:
        for each in ids:
            click.echo(each)
        return
    rows = [[each, item["Name"], item["Driver"], item["Scope"]] for each, item in zip(ids, listed, strict=True)]
    print_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows)


@network.command()
@click.option("-f", "--format", "fmt", help="Format the output using a template ({{.IPAM.Config}}, {{json .X}}).")
@click.argument("names", nargs=-1, required=True)
def inspect(fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    from logship.cli.containers import inspect_objects

    inspect_objects(fmt, ["network"], names)


@network.command()
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
@click.argument("names", nargs=-1, required=True)
def rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more networks."""

    def one(client: Client, name: str) -> None:
        try:
            client.request("DELETE", f"/networks/{path_quote(name)}").read()
        except APIError as err:
            if force and err.status == 404:
                return
            raise
        click.echo(name)

    for_each(names, one)


@network.command()
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container.")
@click.option("--ip", help="IPv4 address (e.g. 172.30.100.104).")
@click.argument("name")
@click.argument("container")
def connect(alias: tuple[str, ...], ip: str | None, name: str, container: str) -> None:
    """Connect a container to a network."""
    config: dict[str, Any] = {}
    if alias:
        config["Aliases"] = list(alias)
    if ip:
        config["IPAMConfig"] = {"IPv4Address": ip}
    _post(f"/networks/{path_quote(name)}/connect", {"Container": container, "EndpointConfig": config})


@network.command()
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
@click.argument("name")
@click.argument("container")
def disconnect(force: bool, name: str, container: str) -> None:
    """Disconnect a container from a network."""
    _post(f"/networks/{path_quote(name)}/disconnect", {"Container": container, "Force": force})


def _post(path: str, body: dict[str, Any]) -> None:
    try:
        get_client().json("POST", path, None, body)
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)


@network.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. until=<timestamp>).")
def prune(force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    _confirm(force, "This will remove all custom networks not used by at least one container.")
    result = _prune("/networks/prune", _filters(filters))
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        click.echo("Deleted Networks:")
        for name in deleted:
            click.echo(name)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
def port(container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container: CONTAINER [PRIVATE_PORT[/PROTO]]."""
    try:
        data = get_client().json("GET", f"/containers/{path_quote(container)}/json")
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    ports = (data.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        number, _, protocol = private_port.partition("/")
        key = f"{number}/{protocol or 'tcp'}"
        bindings = ports.get(key) or []
        if not bindings:
            click.echo(f"Error: No public port '{key}' published for {container}", err=True)
            sys.exit(1)
        for binding in bindings:
            click.echo(f"{binding['HostIp']}:{binding['HostPort']}")
        return
    for key, bindings in ports.items():
        for binding in bindings or []:
            click.echo(f"{key} -> {binding['HostIp']}:{binding['HostPort']}")


COMMANDS = [network, port]
