"""Published and exposed ports in Docker's shapes: `-p [ip:]host:container[/tcp|udp]`, `-P`, `--expose`.

    Config.ExposedPorts       {"80/tcp": {}}                                   --expose, and the image's
    HostConfig.PortBindings   {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}  -p, as the client sent it
    NetworkSettings.Ports     {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "90/tcp": null}

The first two are checked at create (dockerd's texts where it has one). The last is what a running
container really has: bindings resolved (a free port for `-P` and for an empty host port, as dockerd picks
them from the kernel's ephemeral range) and the address actually listened on. Published ports answer on the
host's loopback: an unspecified or wildcard address (the usual `-p 8080:80`) is bound to 127.0.0.1, and any
other non-loopback address is refused, because Debian 12's pasta cannot carry connections from outside
the host into logship's namespace (README, "Networks").
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logship.errors import Conflict, InvalidParameter

PROTOCOLS = ("tcp", "udp")
WILDCARDS = ("", "0.0.0.0", "::")
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Binding:
    """One published port as the container runs with it."""

    container_port: int
    protocol: str
    host_ip: str
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"


def port_key(text: str) -> tuple[int, str]:
    """ "80", "80/tcp", "53/udp" -> (80, "tcp")."""
    number, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise InvalidParameter(f"invalid proto: {protocol} (logship publishes and exposes tcp and udp ports)")
    try:
        port = int(number)
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {number}") from None
    if not 1 <= port <= 65535:
        raise InvalidParameter(f"invalid containerPort: {number}")
    return port, protocol


def exposed_ports(body: dict[str, Any], image_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Config.ExposedPorts: the image's and the request's, normalized ("80" -> "80/tcp")."""
    merged: dict[str, dict[str, Any]] = {}
    for source in (image_config.get("ExposedPorts"), body.get("ExposedPorts")):
        if source is None:
            continue
        if not isinstance(source, dict):
            raise InvalidParameter('invalid ExposedPorts: expected an object such as {"80/tcp": {}}')
        for key in source:
            port, protocol = port_key(str(key))
            merged[f"{port}/{protocol}"] = {}
    return merged


def port_bindings(host_config: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """HostConfig.PortBindings checked: ports, protocols, host addresses logship can listen on."""
    given = host_config.get("PortBindings") or {}
    if not isinstance(given, dict):
        raise InvalidParameter('invalid HostConfig.PortBindings: expected an object such as {"80/tcp": [...]}')
    result: dict[str, list[dict[str, str]]] = {}
    for key, bindings in given.items():
        port, protocol = port_key(str(key))
        entries = []
        for binding in bindings or [{}]:
            if not isinstance(binding, dict):
                raise InvalidParameter(f"invalid HostConfig.PortBindings[{key}]: expected HostIp/HostPort objects")
            host_ip = str(binding.get("HostIp") or "")
            host_port = str(binding.get("HostPort") or "")
            check_host_ip(host_ip, host_port, port)
            host_port_range(host_port)
            entries.append({"HostIp": host_ip, "HostPort": host_port})
        result[f"{port}/{protocol}"] = entries
    return result


def check_host_ip(host_ip: str, host_port: str, container_port: int) -> None:
    if host_ip in WILDCARDS:
        return
    try:
        address = ipaddress.ip_address(host_ip)
    except ValueError:
        raise InvalidParameter(f"invalid IP address: {host_ip}") from None
    if address.version == 4 and address.is_loopback:
        return
    raise InvalidParameter(
        f"cannot publish port {container_port} on {host_ip}: logship publishes ports on the host's IPv4 loopback "
        f"only (use -p 127.0.0.1:{host_port or container_port}:{container_port}); see README, Networks"
    )


def host_port_range(text: str) -> tuple[int, int]:
    """ "" (any free port), "8080", or "8000-8010" (the first free one of them)."""
    if not text:
        return 0, 0
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise InvalidParameter(f"invalid hostPort: {text}") from None
    if not (1 <= low <= high <= 65535):
        raise InvalidParameter(f"invalid hostPort: {text}")
    return low, high


def resolve(
    exposed: dict[str, Any],
    bindings: dict[str, list[dict[str, str]]],
    publish_all: bool,
    taken: set[tuple[str, int, str]],
) -> list[Binding]:
    """The bindings a starting container gets. `taken`: (address, port, protocol) other containers hold."""
    wanted: list[tuple[int, str, str, int, int]] = []  # container port, protocol, address, first, last
    for key, entries in bindings.items():
        port, protocol = port_key(key)
        for entry in entries:
            low, high = host_port_range(entry["HostPort"])
            address = LOOPBACK if entry["HostIp"] in WILDCARDS else entry["HostIp"]
            wanted.append((port, protocol, address, low, high))
    if publish_all:
        for key in exposed:
            if key not in bindings:
                port, protocol = port_key(key)
                wanted.append((port, protocol, LOOPBACK, 0, 0))
    result = []
    held = set(taken)
    for port, protocol, address, low, high in wanted:
        candidates = range(low, high + 1) if low else range(*ephemeral_range())
        chosen = 0
        for candidate in candidates:
            if (address, candidate, protocol) not in held and can_bind(address, candidate, protocol):
                chosen = candidate
                break
        if not chosen:
            if low:
                shown = f"{address}:{low}" if low == high else f"{address}:{low}-{high}"
                raise Conflict(f"Bind for {shown} failed: port is already allocated")
            raise Conflict(f"no free port on {address} in the ephemeral range for {port}/{protocol}")
        held.add((address, chosen, protocol))
        result.append(Binding(port, protocol, address, chosen))
    return result


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral range (dockerd picks -P ports there), as range() bounds."""
    with contextlib.suppress(OSError, ValueError):
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high + 1
    return 32768, 61000


def can_bind(address: str, port: int, protocol: str) -> bool:
    """The port is free on the host. A port the daemon may not bind at all (below the kernel's
    ip_unprivileged_port_start, for a rootless daemon) is an error saying so, not a busy port."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if protocol == "tcp":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closing connection's port is free
        try:
            probe.bind((address, port))
        except PermissionError:
            raise InvalidParameter(
                f"cannot publish {address}:{port}: this daemon may not listen on ports below "
                f"{unprivileged_port_start()} (a rootless daemon's limit: publish a higher port, or lower "
                "net.ipv4.ip_unprivileged_port_start)"
            ) from None
        except OSError:
            return False
    return True


def unprivileged_port_start() -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    return 1024


def settings_ports(exposed: dict[str, Any], bindings: list[Binding]) -> dict[str, Any]:
    """NetworkSettings.Ports of a running container: every exposed or published port, null if unpublished."""
    ports: dict[str, Any] = {key: None for key in exposed}
    for binding in bindings:
        entries = ports.get(binding.key) or []
        entries.append({"HostIp": binding.host_ip, "HostPort": str(binding.host_port)})
        ports[binding.key] = entries
    return dict(sorted(ports.items(), key=lambda item: port_key(item[0])))


def filter_ports(key: str, value: str) -> set[tuple[int, str]]:
    """`docker ps --filter publish=|expose=`: "80", "80/udp", "8000-8010[/tcp]" -> the (port, protocol) pairs."""
    numbers, _, protocol = value.partition("/")
    protocol = (protocol or "tcp").lower()
    first, _, last = numbers.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        low, high = 0, -1
    if protocol not in PROTOCOLS or not 1 <= low <= high <= 65535:
        raise InvalidParameter(
            f"invalid filter '{key}={value}': expected a port or a range of ports (80, 8000-8010), /tcp or /udp after"
        )
    return {(port, protocol) for port in range(low, high + 1)}


def summary_ports(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """`GET /containers/json`'s Ports: one entry per binding, and one per unpublished exposed port."""
    result: list[dict[str, Any]] = []
    for key, entries in ports.items():
        port, protocol = port_key(key)
        if not entries:
            result.append({"PrivatePort": port, "Type": protocol})
            continue
        for entry in entries:
            result.append(
                {"IP": entry["HostIp"], "PrivatePort": port, "PublicPort": int(entry["HostPort"]), "Type": protocol}
            )
    return result
