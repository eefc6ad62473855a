"""Every key dockerd sends in `inspect`, in its order, zero-valued where logship has nothing to say.

Tools read these keys without checking they exist (docker-compose, monitoring agents, `--format`
templates), so a missing one breaks them. The list is dockerd's (20.10 and 24+, API 1.41 to 1.47; the
suite compares it with `tests/fixtures/docker-api/dockerd-keys.json`). This is the one place the zero
values live: a feature that gives a key a real value (volumes, users, seccomp, ulimits...) stores it in
the container's HostConfig at create (`logship.daemon.create`), and the stored value wins over the zero
here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from logship.errors import LogshipError
from logship.runtime.imageconfig import import_container_config
from logship.runtime.init.rootfs import MASKED_PATHS, READONLY_PATHS

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager
    from logship.daemon.handle import Container

SHM_SIZE = 64 * 1024 * 1024  # the /dev/shm every container gets (runtime/init/rootfs.py), dockerd's default

# HostConfig in dockerd's order, as it sends it for a container created without options.
HOST_CONFIG_ZERO: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "", "Config": {}},
    "NetworkMode": "none",
    "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "ConsoleSize": [0, 0],
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "host",  # logship gives containers no cgroup namespace
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": SHM_SIZE,
    "Runtime": "logship",
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": None,
    "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None,
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": None,
    "DeviceRequests": None,
    "KernelMemory": 0,  # API 1.41 and older; omitted by dockerd 24+, harmless to newer clients
    "KernelMemoryTCP": 0,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": False,
    "PidsLimit": None,
    "Ulimits": None,
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "MaskedPaths": list(MASKED_PATHS),
    "ReadonlyPaths": list(READONLY_PATHS),
}


def host_config(recorded: dict[str, Any]) -> dict[str, Any]:
    """dockerd's HostConfig: the zero values, with what the container's record holds in their place."""
    merged = {key: recorded.get(key, zero) for key, zero in HOST_CONFIG_ZERO.items()}
    merged.update((key, value) for key, value in recorded.items() if key not in merged)
    return merged


def endpoint(network_id: str = "", aliases: list[str] | None = None, address: str = "") -> dict[str, Any]:
    """One entry of NetworkSettings.Networks: dockerd's EndpointSettings (API 1.44+), in its order. The
    addresses are filled while the container runs (logship.daemon.netattach)."""
    return {
        "IPAMConfig": {"IPv4Address": address} if address else None,
        "Links": None,
        "Aliases": aliases or None,
        "MacAddress": "",
        "DriverOpts": None,
        "NetworkID": network_id,
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,  # API 1.44+
    }


def networks_of(networks: dict[str, dict[str, Any]], mode: str = "none") -> dict[str, Any]:
    """NetworkSettings.Networks; a record made before logship had networks knows only its mode (host or none).
    A container disconnected from every network has none, as in dockerd (`{}`)."""
    if networks or mode not in ("host", "none"):
        return networks
    return {mode: endpoint(mode)}


# The legacy top-level fields dockerd fills from the container's endpoint on the default bridge.
LEGACY_FIELDS = ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen")


def network_settings(networks: dict[str, Any], ports: dict[str, Any], sandbox_key: str = "") -> dict[str, Any]:
    """`networks`: NetworkSettings.Networks; `sandbox_key`: the container's network namespace while it runs."""
    bridge = networks.get("bridge") or {}
    legacy = {key: bridge.get(key, 0 if key.endswith("PrefixLen") else "") for key in LEGACY_FIELDS}
    return {
        "Bridge": "",
        "SandboxID": sandbox_key.rsplit("/", 1)[-1] if sandbox_key else "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": dict(ports),
        "SandboxKey": sandbox_key,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        **{key: legacy[key] for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen")},
        "IPAddress": legacy["IPAddress"],
        "IPPrefixLen": legacy["IPPrefixLen"],
        "IPv6Gateway": "",
        "MacAddress": bridge.get("MacAddress", ""),
        "Networks": networks,
    }


def graph_driver(image_rootfs: str, container_dir: str) -> dict[str, Any]:
    """The container's overlay: the image below, its own layer above (runtime/spawn.py)."""
    return {
        "Data": {
            "LowerDir": image_rootfs,
            "MergedDir": f"{container_dir}/merged",
            "UpperDir": f"{container_dir}/diff",
            "WorkDir": f"{container_dir}/work",
        },
        "Name": "overlay",
    }


# An image's Config (and the legacy ContainerConfig) in dockerd's order, for keys an image config lacks: an
# imported image's config without its PATH.
IMAGE_CONFIG_ZERO: dict[str, Any] = {**import_container_config(), "Env": None}


def image_config(config: dict[str, Any]) -> dict[str, Any]:
    merged = {key: config.get(key, zero) for key, zero in IMAGE_CONFIG_ZERO.items()}
    merged.update((key, value) for key, value in config.items() if key not in merged)
    return merged


async def container_inspect(manager: ContainerManager, container: Container) -> dict[str, Any]:
    """The record's inspect, with what only the running daemon knows: execs, paths, the namespace."""
    manager.refresh_log_stats(container)
    data = container.record.to_inspect()
    directory = str(container.dir.resolve())
    for key, name in (("ResolvConfPath", "resolv.conf"), ("HostnamePath", "hostname"), ("HostsPath", "hosts")):
        data[key] = f"{directory}/{name}"
    data["ExecIDs"] = [e.id for e in manager.execs.of_container(container)] or None
    try:
        rootfs = str((await asyncio.to_thread(manager.images.get, container.record.image_id)).rootfs)
    except LogshipError:
        rootfs = ""  # the image was removed (rmi -f)
    data["GraphDriver"] = graph_driver(rootfs, directory)
    process = container.process
    settings = data["NetworkSettings"]
    running = container.record.state.running and process is not None and process.init_pid
    if running and process is not None and not settings["SandboxKey"]:  # host and none: its first process's
        settings["SandboxKey"] = f"/proc/{process.init_pid}/ns/net"
    return data
