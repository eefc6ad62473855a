"""What a log driver knows about the container it logs for (Docker's `logger.Info`)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ContainerInfo:
    container_id: str
    container_name: str  # with Docker's leading "/"
    config: Mapping[str, str] = field(default_factory=dict)  # the container's log-opts
    entrypoint: str = ""  # the program that runs (Docker's container.Path)
    args: tuple[str, ...] = ()
    image_id: str = ""  # "sha256:<64 hex>"
    image_name: str = ""  # as the user typed it
    created_ns: int = 0
    env: tuple[str, ...] = ()  # "KEY=value" entries
    labels: Mapping[str, str] = field(default_factory=dict)
    log_path: str = ""
    container_dir: str = ""  # the container's state directory, for drivers that keep files
    daemon_name: str = "logship"

    # The accessors Docker's tag templates call ({{.ID}}, {{.Name}}, ...).
    def id(self) -> str:
        return self.container_id[:12]

    def full_id(self) -> str:
        return self.container_id

    def name(self) -> str:
        return self.container_name.lstrip("/")

    def short_image_id(self) -> str:
        # Docker 20.10 cuts the full "sha256:..." string, prefix included ("sha256:2f340").
        return self.image_id[:12]

    def command(self) -> str:
        return " ".join((self.entrypoint, *self.args))

    @staticmethod
    def hostname() -> str:
        # Docker's Info.Hostname() is the daemon host's name, not the container's.
        return socket.gethostname()

    def extra_attributes(self, key_mod: Callable[[str], str] | None = None) -> dict[str, str]:
        """Docker's ExtraAttributes: labels, labels-regex, env, env-regex, in that order (later wins)."""
        mod = key_mod or (lambda key: key)
        attrs: dict[str, str] = {}
        if self.config.get("labels"):
            for key in self.config["labels"].split(","):
                if key in self.labels:
                    attrs[mod(key)] = self.labels[key]
        if self.config.get("labels-regex"):
            pattern = re.compile(self.config["labels-regex"])
            for key, value in self.labels.items():
                if pattern.search(key):
                    attrs[mod(key)] = value
        env = dict(entry.split("=", 1) for entry in self.env if "=" in entry)
        if self.config.get("env"):
            for key in self.config["env"].split(","):
                if key in env:
                    attrs[mod(key)] = env[key]
        if self.config.get("env-regex"):
            pattern = re.compile(self.config["env-regex"])
            for key, value in env.items():
                if pattern.search(key):
                    attrs[mod(key)] = value
        return attrs
