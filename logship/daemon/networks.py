"""Networks as dockerd keeps them: the built-in `bridge`, `host` and `none`, and user-defined bridge networks,
with their subnets, gateways, labels, `--internal`, and the addresses handed to containers (IPAM).

    <data-root>/networks/<id>.json    one network: dockerd's inspect fields, plus the bridge's interface name

Only definitions live here. The bridges themselves exist inside logship's network namespace, made by
netavark while at least one running container is on them (`logship.daemon.netattach`): a network no
running container uses has no interface, no rule, nothing on any host. Addresses are handed out here, as
Podman hands them to netavark: the lowest free one of the subnet (or of its IP range), or the one asked
for with `--ip`. Which container holds which address is rebuilt from the containers' records when the
daemon starts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.daemon.container import rfc3339_nano
from logship.errors import Conflict, Forbidden, InvalidParameter, NotFound
from logship.runtime.netavark import NetworkDefinition

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
BRIDGE, HOST, NONE = "bridge", "host", "none"
BUILTIN = (BRIDGE, HOST, NONE)
DEFAULT_SUBNET = "172.17.0.0/16"
DEFAULT_INTERFACE = "logship0"
# dockerd's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20 blocks.
POOLS = [f"172.{n}.0.0/16" for n in range(18, 32)] + [f"192.168.{n}.0/20" for n in range(0, 256, 16)]
BRIDGE_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",  # see README: published ports are loopback-only
    "com.docker.network.bridge.name": DEFAULT_INTERFACE,
    "com.docker.network.driver.mtu": "1500",
}
NAME_OPTION = "com.docker.network.bridge.name"
SUPPORTED_OPTIONS = (NAME_OPTION,)
NO_USER_SUBNET = "user specified IP address is supported only when connecting to networks with user configured subnets"
LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
PRUNE_FILTERS = ("until", "label", "label!")


@dataclass
class Network:
    name: str
    id: str
    created_ns: int
    driver: str  # bridge | host | null
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    subnet_given: bool = False  # the user chose the subnet: --ip is allowed on it
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    interface: str = ""

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN

    @property
    def bridged(self) -> bool:
        return self.driver == BRIDGE

    @property
    def dns(self) -> bool:
        """Container names resolve on user-defined networks only (dockerd's embedded DNS, aardvark-dns here)."""
        return self.bridged and self.name != BRIDGE

    @property
    def prefix_length(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen if self.subnet else 0

    def definition(self) -> NetworkDefinition:
        return NetworkDefinition(
            self.name, self.id, self.interface, self.subnet, self.gateway, internal=self.internal, dns=self.dns
        )

    def to_api(self, containers: dict[str, Any] | None = None) -> dict[str, Any]:
        ipam_config: list[dict[str, str]] = []
        if self.subnet:
            entry = {"Subnet": self.subnet}
            if self.ip_range:
                entry["IPRange"] = self.ip_range
            if self.name != BRIDGE:  # dockerd shows the default bridge's subnet alone
                entry["Gateway"] = self.gateway
            ipam_config.append(entry)
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": rfc3339_nano(self.created_ns),
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None if self.builtin else {}, "Config": ipam_config},
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers if containers is not None else {},
            "Options": dict(self.options),
            "Labels": dict(self.labels),
        }

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Network:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


def _id() -> str:
    while True:
        candidate = secrets.token_hex(32)
        if not candidate[:12].isdigit():
            return candidate


class NetworkStore:
    """`active(network_id)` lists the running containers on a network (the container manager knows them)."""

    def __init__(self, root: Path, active: Callable[[str], list[str]] = lambda network_id: []) -> None:
        self.root = root
        self.active = active
        self._networks: dict[str, Network] = {}
        self._leases: dict[str, dict[str, str]] = {}  # network id -> address -> container id
        self.load()

    # ---- persistence ---------------------------------------------------------------------------

    def load(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.root.glob("*.json")):
            try:
                network = Network.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as err:
                raise InvalidParameter(f"network definition {path} is unreadable ({err}): fix or remove it") from err
            self._networks[network.id] = network
        present = {n.name for n in self._networks.values()}
        for name, driver in ((BRIDGE, BRIDGE), (HOST, HOST), (NONE, "null")):
            if name not in present:
                network = Network(name, _id(), time.time_ns(), driver)
                if name == BRIDGE:
                    network.subnet, network.gateway = DEFAULT_SUBNET, "172.17.0.1"
                    network.options, network.interface = dict(BRIDGE_OPTIONS), DEFAULT_INTERFACE
                self._save(network)

    def _save(self, network: Network) -> None:
        self._networks[network.id] = network
        temporary = self.root / f".{network.id}.tmp"
        temporary.write_text(json.dumps(network.to_json(), indent=1))
        os.replace(temporary, self.root / f"{network.id}.json")

    # ---- lookup --------------------------------------------------------------------------------

    def ids(self) -> set[str]:
        return set(self._networks)

    def all(self) -> list[Network]:
        return sorted(self._networks.values(), key=lambda n: n.name)

    def find(self, ref: str) -> Network:
        """By name, by full id, then by unique id prefix, as dockerd resolves them."""
        for network in self._networks.values():
            if network.name == ref:
                return network
        if ref in self._networks:
            return self._networks[ref]
        matches = [n for n in self._networks.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found on id)")
        raise NotFound(f"network {ref} not found")

    # ---- create and remove ---------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> Network:
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameter("network create: the request needs a Name")
        if not NAME_RE.fullmatch(name):
            raise InvalidParameter(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if any(n.name == name for n in self._networks.values()):
            raise Conflict(f"network with name {name} already exists")
        driver = body.get("Driver") or BRIDGE
        if driver != BRIDGE:
            raise InvalidParameter(f'network driver "{driver}" is not supported by logship: use bridge (the default)')
        if body.get("EnableIPv6"):
            raise InvalidParameter("IPv6 networks are not supported by logship: create the network without --ipv6")
        if body.get("Ingress") or body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get("Network"):
            raise InvalidParameter("swarm networks (--ingress, --config-only, --config-from) are not supported")
        labels = _string_map(body.get("Labels"), "Labels")
        options = _string_map(body.get("Options"), "Options")
        unknown = sorted(set(options) - set(SUPPORTED_OPTIONS))
        if unknown:
            raise InvalidParameter(
                f"network option {unknown[0]} is not supported by logship (supported: {', '.join(SUPPORTED_OPTIONS)})"
            )
        network = Network(
            name,
            _id(),
            time.time_ns(),
            BRIDGE,
            internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")),
            labels=labels,
            options=options,
        )
        network.interface = options.get(NAME_OPTION) or f"br-{network.id[:12]}"
        if len(network.interface) > 15 or not re.fullmatch(r"[a-zA-Z0-9_.-]+", network.interface):
            raise InvalidParameter(f"bridge name {network.interface!r}: use at most 15 letters, digits, '_', '.', '-'")
        if any(n.interface == network.interface for n in self._networks.values()):
            raise Conflict(f"bridge name {network.interface} is already used by another network")
        self._ipam(network, body.get("IPAM") or {})
        self._save(network)
        return network

    def _ipam(self, network: Network, ipam: dict[str, Any]) -> None:
        if not isinstance(ipam, dict):
            raise InvalidParameter("invalid IPAM: expected an object with Driver, Config and Options")
        if (ipam.get("Driver") or "default") != "default":
            raise InvalidParameter(f"IPAM driver {ipam['Driver']!r} is not supported by logship: use default")
        if ipam.get("Options"):
            raise InvalidParameter("IPAM options are not supported by logship")
        configs = ipam.get("Config") or []
        if not isinstance(configs, list) or len(configs) > 1:
            raise InvalidParameter("logship's networks take one IPv4 subnet (one --subnet)")
        taken = [ipaddress.ip_network(n.subnet) for n in self._networks.values() if n.subnet]
        if not configs or not (configs[0] or {}).get("Subnet"):
            if configs and any((configs[0] or {}).get(key) for key in ("Gateway", "IPRange")):
                raise InvalidParameter("--gateway and --ip-range need a --subnet")
            subnet = next((p for p in map(ipaddress.ip_network, POOLS) if _free(p, taken)), None)
            if subnet is None:
                raise Forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults")
            network.subnet, network.gateway = str(subnet), str(subnet.network_address + 1)
            return
        config = configs[0]
        if config.get("AuxiliaryAddresses"):
            raise InvalidParameter("--aux-address is not supported by logship")
        try:
            subnet = ipaddress.ip_network(config["Subnet"], strict=False)
        except ValueError:
            raise InvalidParameter(
                f"invalid subnet {config['Subnet']!r}: expected an IPv4 CIDR such as 10.1.0.0/24"
            ) from None
        if subnet.version != 4:
            raise InvalidParameter("IPv6 subnets are not supported by logship")
        if str(subnet) != config["Subnet"]:
            raise InvalidParameter(f"invalid subnet {config['Subnet']}: it is not a network address (use {subnet})")
        if subnet.prefixlen > 30:
            raise InvalidParameter(f"subnet {subnet} is too small: use a /30 or larger")
        if not _free(subnet, taken):
            raise Forbidden("Pool overlaps with other one on this address space")
        gateway = config.get("Gateway") or str(subnet.network_address + 1)
        if not _inside(gateway, subnet):
            raise InvalidParameter(f"gateway {gateway} is not in subnet {subnet}")
        ip_range = config.get("IPRange") or ""
        if ip_range:
            try:
                inner = ipaddress.ip_network(ip_range)
            except ValueError:
                raise InvalidParameter(f"invalid ip range {ip_range!r}: expected a CIDR inside {subnet}") from None
            if inner.version != 4 or not inner.subnet_of(subnet):
                raise InvalidParameter(f"ip range {ip_range} is not inside subnet {subnet}")
        network.subnet, network.gateway, network.ip_range, network.subnet_given = str(subnet), gateway, ip_range, True

    def remove(self, ref: str) -> Network:
        network = self.find(ref)
        if network.builtin:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        if self.active(network.id):
            raise Forbidden(
                f"error while removing network: network {network.name} id {network.id} has active endpoints"
            )
        (self.root / f"{network.id}.json").unlink(missing_ok=True)
        del self._networks[network.id]
        self._leases.pop(network.id, None)
        return network

    def prune(self, filters: dict[str, list[str]], until_ns: int) -> list[Network]:
        from logship.daemon.prune import _labels_match

        removed = []
        for network in self.all():
            if network.builtin or self.active(network.id):
                continue
            if until_ns and network.created_ns >= until_ns:
                continue
            if not _labels_match(network.labels, filters):
                continue
            self.remove(network.id)
            removed.append(network)
        return removed

    # ---- list filters --------------------------------------------------------------------------

    def matching(self, filters: dict[str, list[str]]) -> list[Network]:
        for key in filters:
            if key not in LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        for value in filters.get("type", []):
            if value not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{value}'")
        result = []
        for network in self.all():
            if "name" in filters and not any(part in network.name for part in filters["name"]):
                continue
            if "id" in filters and not any(network.id.startswith(part) for part in filters["id"]):
                continue
            if "driver" in filters and network.driver not in filters["driver"]:
                continue
            if "scope" in filters and "local" not in filters["scope"]:
                continue
            if "type" in filters and ("builtin" if network.builtin else "custom") not in filters["type"]:
                continue
            if "label" in filters and not all(_has_label(network.labels, item) for item in filters["label"]):
                continue
            if "dangling" in filters:
                wanted = {value.lower() in ("1", "true") for value in filters["dangling"]}
                dangling = not network.builtin and not self.active(network.id)
                if len(wanted) == 1 and dangling not in wanted:
                    continue
            result.append(network)
        return result

    # ---- addresses -----------------------------------------------------------------------------

    def lease(self, network: Network, container_id: str, wanted: str = "") -> str:
        """An address of the network for the container: `wanted` (--ip), or the lowest free one."""
        leases = self._leases.setdefault(network.id, {})
        subnet = ipaddress.ip_network(network.subnet)
        reserved = {str(subnet.network_address), str(subnet.broadcast_address), network.gateway}
        if wanted:
            if not network.subnet_given:
                raise InvalidParameter(NO_USER_SUBNET)
            if not _inside(wanted, subnet) or wanted in reserved:
                raise InvalidParameter(f"invalid IP address {wanted}: it is not a usable address of {subnet}")
            holder = leases.get(wanted)
            if holder and holder != container_id:
                raise Conflict(f"Address already in use: {wanted} is held by container {holder[:12]}")
            leases[wanted] = container_id
            return wanted
        pool = ipaddress.ip_network(network.ip_range) if network.ip_range else subnet
        for address in pool.hosts() if pool.prefixlen < 31 else pool:
            text = str(address)
            if text not in reserved and text not in leases:
                leases[text] = container_id
                return text
        raise Conflict(f"no available IPv4 addresses on network {network.name} ({subnet})")

    def hold(self, network_id: str, address: str, container_id: str) -> None:
        """A running container's address, found again when the daemon starts."""
        self._leases.setdefault(network_id, {})[address] = container_id

    def release(self, network_id: str, address: str, container_id: str) -> None:
        leases = self._leases.get(network_id, {})
        if leases.get(address) == container_id:
            del leases[address]


def _free(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network, taken: Iterable[Any]) -> bool:
    """Overlaps neither another network nor a route of the host (which pasta copies into logship's namespace)."""
    return not any(subnet.overlaps(other) for other in [*taken, *host_routes()])


def host_routes() -> list[ipaddress.IPv4Network]:
    routes = []
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[0] == "lo":
            continue
        destination, mask = int(fields[1], 16), int(fields[7], 16)
        if mask == 0:
            continue  # the default route
        address = ipaddress.IPv4Address(destination.to_bytes(4, "little"))
        routes.append(ipaddress.IPv4Network(f"{address}/{bin(mask).count('1')}", strict=False))
    return routes


def _inside(address: str, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in subnet
    except ValueError:
        raise InvalidParameter(f"invalid IP address {address!r}") from None


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidParameter(f"invalid {what}: expected an object of strings")
    return dict(value)


def _has_label(labels: dict[str, str], item: str) -> bool:
    key, sep, value = item.partition("=")
    return key in labels and (not sep or labels[key] == value)
