"""Containers on networks: what a container's networking becomes at create, start, exit, connect and
disconnect, and after a daemon restart.

At create, `--network`, the request's EndpointsConfig (aliases, `--ip`) and the ports are checked against
the networks (dockerd's texts where it has one) and kept in the record as dockerd's EndpointSettings. At
start, a container on bridge networks gets a network namespace of its own (a mounted file, so that it
exists before the container's first process and after its last), then netavark, inside logship's own
namespace, puts an interface on each network's bridge into it (one `setup` per network, the port rules
with the first), and a pasta forwards the published ports from the host's loopback. The container's init
joins that namespace. When the run ends, everything is undone in reverse, and logship's namespace itself
goes with the last bridged container.

What a run holds is written to `network.json` in the container's directory before the start goes on, so a
daemon killed at any point tears down exactly what was set up, and a restarted daemon knows which
addresses and ports running containers hold. The namespaces, the forwarders, the bridges and aardvark-dns
do not depend on the daemon: a container keeps its connectivity while no daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logship.daemon import netfiles, ports
from logship.daemon.container import ContainerRecord
from logship.daemon.events import NETWORK, Events
from logship.daemon.inspectshape import endpoint
from logship.daemon.networks import BRIDGE, BUILTIN, HOST, NO_USER_SUBNET, NONE, Network, NetworkStore
from logship.errors import Conflict, Forbidden, InvalidParameter, LogshipError, NotFound
from logship.runtime import netavark, netns, pasta, spawn
from logship.runtime.netstack import NetworkHost
from logship.runtime.statedir import write_atomically

if TYPE_CHECKING:
    from logship.daemon.handle import Container

log = logging.getLogger("logship.network")

STATE_FILE = "network.json"


@dataclass
class Unit:
    """One network a running container is on, with the netavark request that put it there."""

    network_id: str
    name: str
    interface: str
    address: str
    body: dict[str, Any]


@dataclass
class RunState:
    netns: str
    units: list[Unit] = field(default_factory=list)
    bindings: list[dict[str, Any]] = field(default_factory=list)  # ports.Binding fields + namespace_port
    forwarder: bool = False

    def save(self, directory: Path) -> None:
        write_atomically(directory / STATE_FILE, json.dumps(asdict(self)), mode=0o600)

    @classmethod
    def load(cls, directory: Path) -> RunState | None:
        try:
            data = json.loads((directory / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.error("%s is unreadable (%s): its network is not torn down", directory / STATE_FILE, err)
            return None
        data["units"] = [Unit(**unit) for unit in data.get("units") or []]
        return cls(**data)


@dataclass
class StartNetwork:
    """What the runtime needs to start a container on bridge networks."""

    netns: str
    hosts: str
    resolv_conf: str


RUN_FIELDS = ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress", "DNSNames")


class ContainerNetworking:
    def __init__(
        self, data_root: Path, default_bridge: bool, events: Events, containers: Callable[[], Iterable[Container]]
    ) -> None:
        self.host = NetworkHost(data_root / "network")
        self.store = NetworkStore(data_root / "networks", self._active_on)
        self.default_bridge = default_bridge
        self.events = events
        self._containers = containers
        self._running: dict[str, RunState] = {}
        self._lock = asyncio.Lock()  # netavark runs and the namespace's life, one at a time

    def _active_on(self, network_id: str) -> list[str]:
        return [cid for cid, state in self._running.items() if any(u.network_id == network_id for u in state.units)]

    def event(self, action: str, network: Network, container_id: str = "") -> None:
        attributes = {"name": network.name, "type": network.driver}
        if container_id:
            attributes["container"] = container_id
        self.events.emit(NETWORK, action, network.id, attributes)

    # ---- create --------------------------------------------------------------------------------

    def mode(self, record: ContainerRecord) -> str:
        """host, none, or the name of the container's first network."""
        given = record.host_config.get("NetworkMode") or "default"
        if given in (HOST, NONE):
            return given
        if given == "default":
            return BRIDGE if self.default_bridge else NONE
        return self.store.find(given).name

    def configure(self, record: ContainerRecord, body: dict[str, Any], host_config: dict[str, Any]) -> list[str]:
        """Check --network, EndpointsConfig and the ports at create; fill the record. Returns warnings."""
        given = host_config.get("NetworkMode") or "default"
        if not isinstance(given, str):
            raise InvalidParameter(f"invalid HostConfig.NetworkMode: expected a string, got {given!r}")
        if given.startswith("container:"):
            raise InvalidParameter("--network container:<name> is not supported by logship")
        if given == BRIDGE and not self.default_bridge:
            raise NotFound('network bridge not found: the default bridge is off ("bridge": "none" in daemon.json)')
        record.host_config["NetworkMode"] = given
        mode = self.mode(record)
        configs = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        if not isinstance(configs, dict):
            raise InvalidParameter("invalid NetworkingConfig.EndpointsConfig: expected an object of network names")
        warnings: list[str] = []
        record.networks = {}
        if mode in (HOST, NONE):
            others = [name for name in configs if name not in (mode, given)]
            if others:
                raise InvalidParameter(
                    f"container cannot be connected to multiple networks with one of the networks in {mode} mode"
                )
            for config in configs.values():
                if config and ((config.get("IPAMConfig") or {}).get("IPv4Address") or config.get("Aliases")):
                    raise InvalidParameter(f"--ip and --network-alias need a bridge network, not {mode}")
            record.networks[mode] = endpoint(self.store.find(mode).id)
            if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
                warnings.append(f"Published ports are discarded when using {mode} network mode")
                record.host_config["PortBindings"] = {}
                record.host_config["PublishAllPorts"] = False
            return warnings
        primary_config = configs.get(given) or configs.get(mode) or {}
        record.networks[mode] = self._endpoint_for(self.store.find(mode), primary_config)
        for ref, config in configs.items():
            if ref in (given, mode):
                continue
            network = self.store.find(ref)
            if network.name in BUILTIN and network.name != BRIDGE:
                raise InvalidParameter(f"container cannot be connected to {network.name} and to other networks")
            record.networks.setdefault(network.name, self._endpoint_for(network, config or {}))
        return warnings

    def _endpoint_for(self, network: Network, config: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise InvalidParameter(f"invalid EndpointsConfig for {network.name}: expected an object")
        aliases = config.get("Aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            raise InvalidParameter("invalid Aliases: expected a list of names")
        ipam = config.get("IPAMConfig") or {}
        address = str(ipam.get("IPv4Address") or "")
        if ipam.get("IPv6Address") or ipam.get("LinkLocalIPs"):
            raise InvalidParameter("--ip6 and --link-local-ip are not supported by logship")
        if config.get("Links") or config.get("DriverOpts") or config.get("MacAddress"):
            raise InvalidParameter("--link, --mac-address and endpoint driver options are not supported by logship")
        if network.name == BRIDGE and aliases:
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        if address:
            if network.name == BRIDGE:
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            if not network.subnet_given:
                raise InvalidParameter(NO_USER_SUBNET)
        return endpoint(network.id, list(dict.fromkeys(aliases)), address)

    # ---- start ---------------------------------------------------------------------------------

    async def setup(self, container: Container) -> StartNetwork | None:
        """The container's namespace on its networks, its ports forwarded. None: host or none mode. A network
        that cannot be set up fails the start (spawn.StartError: 125, as any runtime failure)."""
        try:
            return await self._setup_all(container)
        except LogshipError as err:
            raise spawn.StartError(str(err)) from None

    async def _setup_all(self, container: Container) -> StartNetwork | None:
        record = container.record
        mode = self.mode(record)
        if mode in (HOST, NONE):
            return None
        if not record.networks:  # disconnected from every network: its own network again, as dockerd starts it
            record.networks[mode] = self._endpoint_for(self.store.find(mode), {})
        plan = [(self.store.find(name), settings) for name, settings in record.networks.items()]
        async with self._lock:
            await self.host.ensure()
            state = RunState(str(self.host.container_netns(record.id)))
            self._running[record.id] = state
            try:
                await self._setup(container, plan, state)
            except BaseException:
                await self._teardown(container, state)
                raise
        for network, _ in plan:
            self.event("connect", network, record.id)
        addresses = [unit.address for unit in state.units]
        servers = self._dns_servers(state)
        config = record.config
        return StartNetwork(
            record.sandbox_key,
            netfiles.hosts(config["Hostname"], config.get("Domainname") or "", addresses),
            netfiles.resolv_conf(servers),
        )

    async def _setup(self, container: Container, plan: list[tuple[Network, dict[str, Any]]], state: RunState) -> None:
        record = container.record
        netns.create(Path(state.netns))
        state.save(container.dir)
        bindings = self._bindings(record) if plan and not plan[0][0].internal else []
        state.bindings = [asdict(binding) | {"namespace_port": port} for binding, port in bindings]
        state.save(container.dir)
        for index, (network, settings) in enumerate(plan):
            await self._attach(container, state, network, settings, f"eth{index}", bindings if index == 0 else [])
        if bindings:
            forwards = [pasta.Forward(b.host_ip, b.host_port, port, b.protocol) for b, port in bindings]
            state.forwarder = True
            state.save(container.dir)
            pid_file, log_file = self._forwarder_files(record.id)
            await pasta.start_forwarder(self.host.netns, _tap(record.id), forwards, pid_file, log_file)
        exposed = record.config.get("ExposedPorts") or {}
        record.ports = ports.settings_ports(exposed, [b for b, _ in bindings])
        record.sandbox_key = str(netns.path(Path(state.netns)))

    def _bindings(self, record: ContainerRecord) -> list[tuple[ports.Binding, int]]:
        taken = {(b["host_ip"], b["host_port"], b["protocol"]) for s in self._running.values() for b in s.bindings}
        resolved = ports.resolve(
            record.config.get("ExposedPorts") or {},
            record.host_config.get("PortBindings") or {},
            bool(record.host_config.get("PublishAllPorts")),
            taken,
        )
        used = {(b["namespace_port"], b["protocol"]) for s in self._running.values() for b in s.bindings}
        result = []
        for binding in resolved:
            port = namespace_port(binding, used)
            used.add((port, binding.protocol))
            result.append((binding, port))
        return result

    async def _attach(
        self,
        container: Container,
        state: RunState,
        network: Network,
        settings: dict[str, Any],
        interface: str,
        bindings: list[tuple[ports.Binding, int]],
    ) -> None:
        record = container.record
        wanted = (settings.get("IPAMConfig") or {}).get("IPv4Address") or ""
        address = self.store.lease(network, record.id, wanted)
        names = list(dict.fromkeys([record.name.lstrip("/"), *(settings.get("Aliases") or []), record.short_id]))
        mappings = [netavark.PortMapping(port, b.container_port, b.protocol) for b, port in bindings]
        attachment = netavark.Attachment(network.definition(), interface, address, names)
        body = netavark.options(record.id, record.name.lstrip("/"), [attachment], mappings)
        unit = Unit(network.id, network.name, interface, address, body)
        state.units.append(unit)
        state.save(container.dir)  # before netavark: a daemon killed meanwhile still tears it down
        answer = await netavark.run("setup", self.host.prefix(), self.host.config_dir, Path(state.netns), body)
        status = netavark.parse_status(answer).get(network.name)
        settings.update(
            EndpointID=secrets.token_hex(32),
            Gateway=network.gateway,
            IPAddress=address,
            IPPrefixLen=status.prefix_length if status else network.prefix_length,
            MacAddress=status.mac_address if status else "",
            DNSNames=names if network.dns else None,
        )

    # ---- exit ----------------------------------------------------------------------------------

    async def release(self, container: Container) -> None:
        """The run ended: undo its networking (idempotent; also after a daemon restart)."""
        state = self._running.get(container.id) or RunState.load(container.dir)
        if state is None:
            return
        async with self._lock:
            await self._teardown(container, state)
        for unit in state.units:
            with contextlib.suppress(NotFound):
                self.event("disconnect", self.store.find(unit.network_id), container.id)

    async def _teardown(self, container: Container, state: RunState) -> None:
        record = container.record
        if state.forwarder:
            pasta.stop(self._forwarder_files(record.id)[0])
        for unit in reversed(state.units):
            await self._detach(container, state, unit)
        try:
            netns.remove(Path(state.netns))
        except LogshipError as err:
            log.error("container %s: %s", record.short_id, err)
        self._running.pop(record.id, None)
        (container.dir / STATE_FILE).unlink(missing_ok=True)
        for settings in record.networks.values():
            settings.update({key: endpoint()[key] for key in RUN_FIELDS})
        record.ports = {}
        record.sandbox_key = ""
        if not self._running and self.host.exists():
            try:
                self.host.remove()
            except LogshipError as err:
                log.error("%s", err)

    async def _detach(self, container: Container, state: RunState, unit: Unit) -> None:
        if netns.exists(Path(state.netns)):
            try:
                await netavark.run("teardown", self.host.prefix(), self.host.config_dir, Path(state.netns), unit.body)
            except LogshipError as err:
                log.error("container %s: leaving network %s: %s", container.record.short_id, unit.name, err)
        self.store.release(unit.network_id, unit.address, container.id)
        if unit in state.units:
            state.units.remove(unit)

    def _forwarder_files(self, container_id: str) -> tuple[Path, Path]:
        self.host.ports_dir.mkdir(parents=True, exist_ok=True)
        return self.host.ports_dir / f"{container_id}.pid", self.host.ports_dir / f"{container_id}.log"

    # ---- daemon start --------------------------------------------------------------------------

    async def restore(self, containers: Iterable[Container]) -> None:
        """Before containers are reattached: running ones hold their addresses and ports again (and get their
        forwarder back if it died); the networking of runs that ended is torn down."""
        ended = []
        for container in containers:
            state = RunState.load(container.dir)
            if state is None:
                continue
            if not container.record.state.running:
                ended.append((container, state))
                continue
            self._running[container.id] = state
            for unit in state.units:
                self.store.hold(unit.network_id, unit.address, container.id)
        for container, state in ended:
            async with self._lock:
                await self._teardown(container, state)
        if self._running:
            async with self._lock:
                await self.host.ensure()
                for container_id, state in self._running.items():
                    await self._revive_forwarder(container_id, state)
        elif self.host.exists():
            self.host.remove()  # left by a daemon killed while its last bridged container ended

    async def _revive_forwarder(self, container_id: str, state: RunState) -> None:
        pid_file, log_file = self._forwarder_files(container_id)
        if not state.forwarder or pasta.running(pid_file):
            return
        forwards = [
            pasta.Forward(b["host_ip"], b["host_port"], b["namespace_port"], b["protocol"]) for b in state.bindings
        ]
        try:
            await pasta.start_forwarder(self.host.netns, _tap(container_id), forwards, pid_file, log_file)
        except LogshipError as err:
            log.error("container %s: its published ports are not forwarded: %s", container_id[:12], err)

    # ---- connect and disconnect ----------------------------------------------------------------

    async def connect(self, container: Container, network: Network, config: dict[str, Any]) -> None:
        record = container.record
        mode = self.mode(record)
        if network.name in (HOST, NONE) or mode in (HOST, NONE):
            raise Forbidden(f"container cannot be connected to {network.name}: it runs in {mode} network mode")
        if network.name in record.networks:
            raise Forbidden(f"endpoint with name {record.name.lstrip('/')} already exists in network {network.name}")
        settings = self._endpoint_for(network, config)
        state = self._running.get(record.id)
        if state is not None and record.state.running:
            async with self._lock:
                taken = {unit.interface for unit in state.units}
                interface = next(f"eth{n}" for n in range(len(taken) + 1) if f"eth{n}" not in taken)
                try:
                    await self._attach(container, state, network, settings, interface, [])
                except BaseException:
                    for unit in [u for u in state.units if u.network_id == network.id]:
                        await self._detach(container, state, unit)
                    state.save(container.dir)
                    raise
            self._rewrite_files(container, state)
        record.networks[network.name] = settings
        container.save()
        self.event("connect", network, record.id)

    async def disconnect(self, container: Container, network: Network) -> None:
        record = container.record
        if network.name not in record.networks:
            raise Forbidden(f"container {record.id} is not connected to network {network.name}")
        if network.name in (HOST, NONE):
            raise Forbidden(f"container cannot be disconnected from the {network.name} network")
        state = self._running.get(record.id)
        if state is not None and record.state.running:
            async with self._lock:
                for unit in [u for u in state.units if u.network_id == network.id]:
                    if unit.body.get("port_mappings"):
                        state.forwarder = False
                        pasta.stop(self._forwarder_files(record.id)[0])
                    await self._detach(container, state, unit)
                state.save(container.dir)
            self._rewrite_files(container, state)
        del record.networks[network.name]
        container.save()
        self.event("disconnect", network, record.id)

    def _rewrite_files(self, container: Container, state: RunState) -> None:
        """/etc/hosts and /etc/resolv.conf after a connect or disconnect, as dockerd rewrites them (a network
        with DNS joined: its resolver). In place: the container's files are bind mounts of these very files,
        which a rename would hide from it."""
        config = container.record.config
        texts = {
            "hosts": netfiles.hosts(
                config["Hostname"], config.get("Domainname") or "", [u.address for u in state.units]
            ),
            "resolv.conf": netfiles.resolv_conf(self._dns_servers(state)),
        }
        for name, text in texts.items():
            with open(container.dir / name, "r+") as file:
                file.truncate(0)
                file.write(text)

    def _dns_servers(self, state: RunState) -> list[str]:
        networks = [self.store.find(unit.network_id) for unit in state.units if unit.network_id in self.store.ids()]
        return [network.gateway for network in networks if network.dns]

    # ---- inspect -------------------------------------------------------------------------------

    def containers_of(self, network: Network) -> dict[str, Any]:
        """A network's inspect "Containers": the running containers on it."""
        result = {}
        by_id = {c.id: c for c in self._containers()}
        for container_id, state in self._running.items():
            container = by_id.get(container_id)
            for unit in state.units:
                if unit.network_id != network.id or container is None:
                    continue
                settings = container.record.networks.get(network.name) or {}
                result[container_id] = {
                    "Name": container.record.name.lstrip("/"),
                    "EndpointID": settings.get("EndpointID", ""),
                    "MacAddress": settings.get("MacAddress", ""),
                    "IPv4Address": f"{unit.address}/{network.prefix_length}",
                    "IPv6Address": "",
                }
        return result

    def published(self) -> set[tuple[str, int, str]]:
        return {(b["host_ip"], b["host_port"], b["protocol"]) for s in self._running.values() for b in s.bindings}


def namespace_port(binding: ports.Binding, used: set[tuple[int, str]]) -> int:
    """The port of logship's namespace that stands for a published host port: the same number, unless
    another address of the host publishes it too, then the next free one above. (Never below: Debian 12's
    pasta loses UDP replies when it maps a host port to a lower one.)"""
    for port in range(binding.host_port, 65536):
        if (port, binding.protocol) not in used:
            return port
    raise Conflict(f"no port of logship's namespace is left for {binding.host_ip}:{binding.host_port}")


def _tap(container_id: str) -> str:
    return "lp" + container_id[:12]  # pasta takes at most 14 characters
