"""`/_ping`, `/version`, `/info`."""

from __future__ import annotations

import os
import platform
from typing import Any

from aiohttp import web

from logship import API_VERSION, MIN_API_VERSION, __version__
from logship.api.app import Backend, add_route, backend, json_response
from logship.daemon import daemonlog
from logship.drivers import registry
from logship.runtime import cgroups, userns
from logship.runtime.cgroupstats import machine_memory

_PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Ostype": "linux",
    "Docker-Experimental": "false",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    return web.Response(body=body, content_type="text/plain", headers=_PING_HEADERS)


def version_info() -> dict[str, Any]:
    details = {
        "ApiVersion": API_VERSION,
        "Arch": _ARCH,
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "KernelVersion": platform.release(),
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    return {
        "Platform": {"Name": "logship"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__,
        **{k: v for k, v in details.items() if k != "Experimental"},
    }


async def version(request: web.Request) -> web.Response:
    return json_response(version_info())


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


async def info(request: web.Request) -> web.Response:
    b = backend(request)
    records = [c.record for c in b.containers.all()]
    running = sum(1 for r in records if r.state.running or r.state.restarting)  # as dockerd counts them
    settings = b.settings
    images = b.images.list()
    rootless = rootless_info()
    return json_response(
        {
            "ID": "",
            "Containers": len(records),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": len(records) - running,
            "Images": len(images),
            "Driver": "overlay",
            "DriverStatus": [],
            "Plugins": {
                "Volume": [],
                "Network": ["bridge", "host", "null"],
                "Authorization": None,
                "Log": registry.names(),
            },
            **_limits(),
            "IPv4Forwarding": False,
            "Debug": settings.log_level in ("debug", "trace"),
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": 0,
            "SystemTime": "",
            "LoggingDriver": settings.log_driver,
            "CgroupDriver": "none" if rootless and not rootless["Cgroup"]["Path"] else "cgroupfs",
            "CgroupVersion": "2" if rootless else _cgroup_version(),
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "NCPU": os.cpu_count() or 1,
            "MemTotal": machine_memory(),
            "DockerRootDir": str(settings.data_root),
            "Name": platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            "LiveRestoreEnabled": settings.live_restore,
            "SecurityOptions": ["name=no-new-privileges", *(["name=rootless"] if rootless else [])],
            "Warnings": _warnings(rootless) or None,
            # logship's own additions
            "DaemonLogPath": daemonlog.location(settings.daemon_log, settings.daemon_log_path),
            "LogOpts": settings.log_opts,
            "ConfigFile": str(settings.config_file) if settings.config_file else "",
            "Hosts": settings.hosts,
            "LogDrivers": [
                {"Name": source.name, "Origin": source.origin, "Error": source.error} for source in registry.sources()
            ],
            "LogBuffers": _log_buffers(b),
            "Rootless": rootless,
        }
    )


def rootless_info() -> dict[str, Any] | None:
    """logship's addition for a rootless daemon: whose, which ids its containers have, where their cgroups go."""
    state = userns.current()
    if state is None:
        return None
    hierarchy = cgroups.configured()
    path = hierarchy.unified_root if hierarchy is not None else None
    return {
        "User": state.user,
        "UID": state.uid,
        "GID": state.gid,
        "UIDMap": [str(line) for line in state.mapping.uids],
        "GIDMap": [str(line) for line in state.mapping.gids],
        "SubordinateRange": state.has_subordinate_range,
        "Mapping": state.range_note(),
        "Cgroup": {
            "Path": str(path) if path else "",
            "Controllers": sorted(hierarchy.roots) if hierarchy else [],
            "Problem": hierarchy.refusal if hierarchy else "",
        },
    }


def _limits() -> dict[str, bool]:
    """dockerd's flags for what limits work: all of them as root; a rootless daemon's delegated controllers."""
    hierarchy = cgroups.configured()
    if hierarchy is None:
        return {"MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "PidsLimit": True}
    memory, cpu = "memory" in hierarchy.roots, "cpu" in hierarchy.roots
    return {
        "MemoryLimit": memory,
        "SwapLimit": memory,
        "CpuCfsPeriod": cpu,
        "CpuCfsQuota": cpu,
        "PidsLimit": "pids" in hierarchy.roots,
    }


def _warnings(rootless: dict[str, Any] | None) -> list[str]:
    """dockerd's warnings, for what a rootless daemon cannot do here."""
    if rootless is None:
        return []
    warnings = []
    if not rootless["Cgroup"]["Path"]:
        warnings.append(f"WARNING: Running in rootless-mode without cgroups: {rootless['Cgroup']['Problem']}")
    else:
        names = {"memory": "memory limit", "pids": "pids limit", "cpu": "cpu cfs quota"}
        warnings += [
            f"WARNING: No {what} support"
            for name, what in names.items()
            if name not in rootless["Cgroup"]["Controllers"]
        ]
    if not rootless["SubordinateRange"]:
        warnings.append(f"WARNING: {rootless['Mapping']}")
    return warnings


def _log_buffers(b: Backend) -> dict[str, Any]:
    """The disk buffers of the whole daemon: how full, and the containers whose lines are still pending."""
    containers = b.containers
    pending = containers.pending.deliveries.values()
    return {
        "TotalLimit": containers.budget.total,
        "Used": containers.budget.used(),
        "Buffers": len(containers.budget.buffers),
        "Pending": len(pending),
        "PendingContainers": [delivery.container_id for delivery in pending],
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def register(app: web.Application) -> None:
    add_route(app, "GET", "/_ping", ping)
    add_route(app, "HEAD", "/_ping", ping)
    add_route(app, "GET", "/version", version)
    add_route(app, "GET", "/info", info)
