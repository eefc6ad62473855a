"""`run`/`create` flags for networks and ports, turned into the create body as the docker CLI turns them:

- `--network NAME` (repeatable) to HostConfig.NetworkMode (the first) and NetworkingConfig.EndpointsConfig
  (each), with `--network-alias` and `--ip` on the first;
- `-p [ip:][host:]container[/proto]` (ranges as `8000-8001:80-81`, an IPv6 address in brackets) to
  HostConfig.PortBindings, each published port also exposed; `-P` to HostConfig.PublishAllPorts;
  `--expose PORT[-PORT][/proto]` to Config.ExposedPorts.
"""

from __future__ import annotations

from typing import Any

import click


def options() -> list[Any]:
    return [
        click.option(
            "--network",
            "--net",
            "networks",
            multiple=True,
            help="Connect to a network: bridge (the default), none, host, or a network's name.",
        ),
        click.option("--network-alias", "aliases", multiple=True, help="Add a network-scoped alias."),
        click.option("--ip", help="IPv4 address on the network (e.g. 172.30.100.104)."),
        click.option("--domainname", help="Container NIS domain name."),
        click.option(
            "-p", "--publish", multiple=True, help="Publish a port to the host ([ip:][hostPort:]containerPort[/proto])."
        ),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports."),
    ]


def _range(text: str, what: str, value: str) -> list[int]:
    first, sep, last = text.partition("-")
    try:
        low, high = int(first), int(last) if sep else int(first)
    except ValueError:
        raise click.BadParameter(f"invalid {what}: {text} in {value}", param_hint="-p") from None
    if not 0 < low <= high <= 65535:
        raise click.BadParameter(f"invalid {what}: {text} in {value}", param_hint="-p")
    return list(range(low, high + 1))


def parse_publish(value: str) -> list[tuple[str, str, str]]:
    """One -p value -> (container port key "80/tcp", host ip, host port) per port, as the docker CLI."""
    spec, _, protocol = value.partition("/")
    protocol = protocol or "tcp"
    host_ip = ""
    if spec.startswith("["):  # [::1]:8080:80
        address, sep, spec = spec[1:].partition("]")
        if not sep or not spec.startswith(":"):
            raise click.BadParameter(f"invalid IP address in {value}", param_hint="-p")
        host_ip, spec = address, spec[1:]
    parts = spec.split(":")
    if len(parts) == 3 and not host_ip:
        host_ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 1:
        host, container = "", parts[0]
    else:
        raise click.BadParameter(f"invalid port format: {value}", param_hint="-p")
    if not container:
        raise click.BadParameter(f"no port specified: {value}<empty>", param_hint="-p")
    container_ports = _range(container, "containerPort", value)
    if not host:
        return [(f"{port}/{protocol}", host_ip, "") for port in container_ports]
    host_ports = _range(host, "hostPort", value)
    if len(container_ports) == 1 and len(host_ports) > 1:  # any free port of the host range
        return [(f"{container_ports[0]}/{protocol}", host_ip, host)]
    if len(host_ports) != len(container_ports):
        raise click.BadParameter(f"invalid ranges specified for container and host Ports: {value}", param_hint="-p")
    return [
        (f"{port}/{protocol}", host_ip, str(host_port))
        for port, host_port in zip(container_ports, host_ports, strict=True)
    ]


def parse_expose(value: str) -> list[str]:
    spec, _, protocol = value.partition("/")
    return [f"{port}/{protocol or 'tcp'}" for port in _range(spec, "range for expose", value)]


def apply(params: dict[str, Any], body: dict[str, Any]) -> None:
    """Fill the create body from these flags."""
    host_config = body["HostConfig"]
    networks = list(params["networks"])
    host_config["NetworkMode"] = networks[0] if networks else "default"
    if params["aliases"] or params["ip"] or len(networks) > 1:
        endpoints: dict[str, Any] = {name: {} for name in networks or ["default"]}
        first = endpoints[next(iter(endpoints))]
        if params["aliases"]:
            first["Aliases"] = list(params["aliases"])
        if params["ip"]:
            first["IPAMConfig"] = {"IPv4Address": params["ip"]}
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    if params["domainname"]:
        body["Domainname"] = params["domainname"]
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for value in params["publish"]:
        for key, host_ip, host_port in parse_publish(value):
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    for value in params["expose"]:
        exposed.update((key, {}) for key in parse_expose(value))
    if exposed:
        body["ExposedPorts"] = exposed
    if bindings:
        host_config["PortBindings"] = bindings
    if params["publish_all"]:
        host_config["PublishAllPorts"] = True
