"""A container as the daemon records it: Docker's Config, HostConfig and State, persisted as JSON.

Everything the daemon knows about a container lives in `<data-root>/containers/<id>/config.v2.json`
(plus the runtime's files beside it), so a restarted daemon rebuilds its view from disk alone.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from logship.daemon import inspectshape
from logship.daemon.ports import summary_ports
from logship.humanize import human_duration
from logship.pipeline.stats import LogStats

ZERO_TIME = "0001-01-01T00:00:00Z"
CONFIG_FILE = "config.v2.json"


def rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano in UTC: fraction digits with trailing zeros trimmed."""
    if not ns:
        return ZERO_TIME
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{nanos:09d}".rstrip("0").rstrip(".") + "Z"


@dataclass
class State:
    # created | running | restarting (between runs, waiting out the restart back-off) | exited | removing | dead
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_ns: int = 0
    finished_ns: int = 0

    @property
    def running(self) -> bool:
        """A run is live (its process exists)."""
        return self.status == "running"

    @property
    def restarting(self) -> bool:
        return self.status == "restarting"

    def to_api(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            # As dockerd: a restarting container counts as running (it is not stopped), with no process.
            "Running": self.running or self.restarting,
            "Paused": False,
            "Restarting": self.restarting,
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid if self.running else 0,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": rfc3339_nano(self.started_ns),
            "FinishedAt": rfc3339_nano(self.finished_ns),
        }

    def human_status(self, now_ns: int | None = None) -> str:
        """`docker ps`'s STATUS column: "Up 2 minutes", "Exited (0) 3 seconds ago", "Created"."""
        now_ns = now_ns or time.time_ns()
        if self.running:
            return "Up " + human_duration(now_ns - self.started_ns)
        if self.restarting:
            return f"Restarting ({self.exit_code}) {human_duration(now_ns - self.finished_ns)} ago"
        if self.status == "exited" or (self.status == "created" and self.finished_ns):
            return f"Exited ({self.exit_code}) {human_duration(now_ns - self.finished_ns)} ago"
        return self.status.capitalize()


@dataclass
class ContainerRecord:
    id: str
    name: str  # with the leading "/"
    created_ns: int
    image: str  # as the user typed it
    image_id: str
    path: str
    args: list[str]
    config: dict[str, Any]  # Docker's container Config
    host_config: dict[str, Any]  # Docker's HostConfig
    log_path: str
    state: State = field(default_factory=State)
    restart_count: int = 0  # restarts made by the restart policy since the user last started it
    # Docker's HasBeenManuallyStopped: the user stopped or killed it (not the daemon's shutdown); kept on
    # disk so `unless-stopped` remembers it across daemon restarts, cleared when the user starts it.
    manually_stopped: bool = False
    log_stats: LogStats = field(default_factory=LogStats)
    # Docker's MountPoints: inspect's "Mounts" (the capitalized keys) and what the runtime needs (logship.daemon.mounts)
    mount_points: list[dict[str, Any]] = field(default_factory=list)
    # NetworkSettings: Networks (network name -> dockerd's EndpointSettings, addresses filled while it runs),
    # Ports while it runs, and its network namespace's file while it runs (logship.daemon.netattach)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: dict[str, Any] = field(default_factory=dict)
    sandbox_key: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def log_type(self) -> str:
        return str(self.host_config["LogConfig"]["Type"])

    @property
    def log_opts(self) -> dict[str, str]:
        return dict(self.host_config["LogConfig"].get("Config") or {})

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def save(self, container_dir: Path) -> None:
        data = asdict(self)
        data["state"] = asdict(self.state)
        data["log_stats"] = self.log_stats.to_api()
        tmp = container_dir / (CONFIG_FILE + ".tmp")
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(tmp, container_dir / CONFIG_FILE)

    @classmethod
    def load(cls, container_dir: Path) -> ContainerRecord:
        data = orjson.loads((container_dir / CONFIG_FILE).read_bytes())
        data["state"] = State(**data["state"])
        data["log_stats"] = LogStats.from_api(data.get("log_stats") or {})
        return cls(**data)

    def public_mounts(self) -> list[dict[str, Any]]:
        """Docker's MountPoint fields (tmpfs mounts of HostConfig.Tmpfs are not listed, as in dockerd)."""
        return [
            {key: value for key, value in point.items() if key[:1].isupper()}
            for point in self.mount_points
            if not point.get("hidden")
        ]

    def network_list(self) -> dict[str, Any]:
        return inspectshape.networks_of(self.networks, self.host_config.get("NetworkMode", "none"))

    def to_inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Created": rfc3339_nano(self.created_ns),
            "Path": self.path,
            "Args": self.args,
            "State": self.state.to_api(),
            "Image": self.image_id,
            "ResolvConfPath": "",
            "HostnamePath": "",
            "HostsPath": "",
            "LogPath": self.log_path,
            "Name": self.name,
            "RestartCount": self.restart_count,
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": inspectshape.host_config(self.host_config),
            "GraphDriver": {"Data": None, "Name": "overlay"},
            "Mounts": self.public_mounts(),
            "Config": self.config,
            "NetworkSettings": inspectshape.network_settings(self.network_list(), self.ports, self.sandbox_key),
            "LogStats": self.log_stats.to_api(),
        }

    def to_summary(self) -> dict[str, Any]:
        """One entry of `GET /containers/json`."""
        command = " ".join([self.path, *self.args])
        return {
            "Id": self.id,
            "Names": [self.name],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": command,
            "Created": self.created_ns // 1_000_000_000,
            "Ports": summary_ports(self.ports),
            "Labels": self.config.get("Labels") or {},
            "State": self.state.status,
            "Status": self.state.human_status(),
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode", "none")},
            "NetworkSettings": {"Networks": self.network_list()},
            "Mounts": self.public_mounts(),
        }
