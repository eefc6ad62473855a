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
            "Plugins": {"Volume": [], "Network": ["host", "none"], "Authorization": None, "Log": registry.names()},
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "PidsLimit": True,
            "IPv4Forwarding": False,
            "Debug": settings.log_level in ("debug", "trace"),
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": 0,
            "SystemTime": "",
            "LoggingDriver": settings.log_driver,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": _cgroup_version(),
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
            "SecurityOptions": ["name=no-new-privileges"],
            "Warnings": None,
            # logship's own additions
            "DaemonLogPath": daemonlog.location(settings.daemon_log, settings.daemon_log_path),
            "LogOpts": settings.log_opts,
            "ConfigFile": str(settings.config_file) if settings.config_file else "",
            "Hosts": settings.hosts,
            "LogDrivers": [
                {"Name": source.name, "Origin": source.origin, "Error": source.error} for source in registry.sources()
            ],
            "LogBuffers": _log_buffers(b),
        }
    )


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
