"""netavark, Podman's network tool, run by the daemon: it sets up a container's interfaces on bridges,
their addresses, routes, NAT and port-forwarding rules, and aardvark-dns, from a JSON description.

logship runs it inside its own network namespace (`logship.runtime.netstack`), so every bridge, veth end and
firewall rule it makes lives there and never on the host. The description is netavark's documented
`NetworkOptions` (the same Podman sends): the container's networks with its interface name, static
addresses (logship allocates them, as Podman does) and DNS names, each network's definition, and the port
mappings. `setup` answers with each network's interface, MAC address and addresses.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.errors import SystemError_
from logship.runtime.netns import path as netns_path

NETAVARK = os.environ.get("LOGSHIP_NETAVARK", "/usr/lib/podman/netavark")
AARDVARK = os.environ.get("LOGSHIP_AARDVARK_DNS", "/usr/lib/podman/aardvark-dns")
TIMEOUT_S = 60.0
INSTALL_HINT = "install Debian's netavark, aardvark-dns and passt (apt-get install netavark aardvark-dns passt)"


def missing_tools() -> list[str]:
    return [path for path in (NETAVARK, AARDVARK) if not os.access(path, os.X_OK)]


@dataclass
class NetworkDefinition:
    """One network as netavark knows it (its `Network`)."""

    name: str
    id: str
    interface: str  # the bridge's name inside logship's namespace
    subnet: str  # "10.89.0.0/24"
    gateway: str
    internal: bool = False
    dns: bool = False

    def to_netavark(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "driver": "bridge",
            "network_interface": self.interface,
            "subnets": [{"subnet": self.subnet, "gateway": self.gateway}],
            "ipv6_enabled": False,
            "internal": self.internal,
            "dns_enabled": self.dns,
            "ipam_options": {"driver": "host-local"},
            "options": {},
        }


@dataclass
class Attachment:
    """A container on one network: the interface it gets there, its address and its DNS names."""

    network: NetworkDefinition
    interface: str  # "eth0"
    address: str  # "10.89.0.2"
    names: list[str] = field(default_factory=list)  # what aardvark-dns answers with this address


@dataclass
class PortMapping:
    """A port of logship's namespace forwarded to the container (pasta brings the host's port to it)."""

    namespace_port: int
    container_port: int
    protocol: str  # tcp | udp

    def to_netavark(self) -> dict[str, Any]:
        return {
            # Only what pasta splices into the namespace's loopback: a container's own traffic to the
            # bridge's gateway (aardvark-dns on port 53, say) is never taken for a published port.
            "host_ip": "127.0.0.1",
            "host_port": self.namespace_port,
            "container_port": self.container_port,
            "protocol": self.protocol,
            "range": 1,
        }


@dataclass
class InterfaceStatus:
    mac_address: str
    address: str  # "10.89.0.2"
    prefix_length: int
    gateway: str


class NetavarkError(SystemError_):
    pass


def options(
    container_id: str,
    container_name: str,
    attachments: list[Attachment],
    ports: list[PortMapping],
) -> dict[str, Any]:
    return {
        "container_id": container_id,
        "container_name": container_name,
        "networks": {
            a.network.name: {
                "interface_name": a.interface,
                "static_ips": [a.address],
                "aliases": a.names if a.network.dns else [],
            }
            for a in attachments
        },
        "network_info": {a.network.name: a.network.to_netavark() for a in attachments},
        "port_mappings": [p.to_netavark() for p in ports],
    }


async def run(command: str, prefix: list[str], config_dir: Path, container_netns: Path, body: dict[str, Any]) -> str:
    """`netavark setup|teardown <netns>` inside logship's namespace (`prefix` enters it)."""
    if missing_tools():
        raise NetavarkError(f"container networking needs {', '.join(missing_tools())}: {INSTALL_HINT}")
    config_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        *prefix,
        NETAVARK,
        "--config",
        str(config_dir),
        "--rootless",
        "true" if os.geteuid() != 0 else "false",
        "--aardvark-binary",
        AARDVARK,
        command,
        str(netns_path(container_netns)),
    ]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},  # netavark runs iptables and finds it on PATH
        start_new_session=True,  # aardvark-dns, which it starts, must not share the daemon's process group
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(json.dumps(body).encode()), TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise NetavarkError(f"netavark {command} did not finish within {TIMEOUT_S:.0f}s") from None
    if process.returncode != 0:
        raise NetavarkError(f"netavark {command} failed: {_error_text(stdout, stderr)}")
    return stdout.decode(errors="replace")


def _error_text(stdout: bytes, stderr: bytes) -> str:
    """netavark reports an error as `{"error": "..."}` on stdout, sometimes with more on stderr."""
    for text in (stdout, stderr):
        try:
            message = json.loads(text).get("error")
        except (ValueError, AttributeError):
            continue
        if message:
            return str(message)
    lines = [line for line in stderr.decode(errors="replace").splitlines() if "syslog" not in line]
    return "\n".join(lines).strip() or stdout.decode(errors="replace").strip() or "no message"


def parse_status(text: str) -> dict[str, InterfaceStatus]:
    """setup's answer: per network name, the container's interface there."""
    try:
        answer = json.loads(text)
    except ValueError as err:
        raise NetavarkError(f"netavark setup answered with unreadable JSON: {text[:200]!r}") from err
    found: dict[str, InterfaceStatus] = {}
    for network, block in answer.items():
        for interface in (block.get("interfaces") or {}).values():
            for subnet in interface.get("subnets") or []:
                address, _, length = str(subnet["ipnet"]).partition("/")
                if ":" in address:
                    continue  # IPv4 only (logship's networks have no IPv6 subnets)
                found[network] = InterfaceStatus(
                    interface.get("mac_address", ""), address, int(length or 32), subnet.get("gateway") or ""
                )
    return found
