"""Where logship keeps its socket, data and configuration.

As root the places mirror dockerd's (`/run/logship.sock`, `/var/lib/logship`, `/etc/logship/daemon.json`);
as any other user they follow the XDG base directories, so a user's daemon never touches system paths.
"""

from __future__ import annotations

import os
from pathlib import Path

HOST_ENV = "LOGSHIP_HOST"


def _is_root() -> bool:
    return os.geteuid() == 0


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def default_socket() -> Path:
    if _is_root():
        return Path("/run/logship.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "logship.sock"
    return _xdg("XDG_DATA_HOME", ".local/share") / "logship" / "logship.sock"


def default_host() -> str:
    return f"unix://{default_socket()}"


def default_data_root() -> Path:
    return Path("/var/lib/logship") if _is_root() else _xdg("XDG_DATA_HOME", ".local/share") / "logship"


def default_config_file() -> Path:
    if _is_root():
        return Path("/etc/logship/daemon.json")
    return _xdg("XDG_CONFIG_HOME", ".config") / "logship" / "daemon.json"


def host_from_env() -> str:
    return os.environ.get(HOST_ENV) or default_host()


def socket_path_of(host: str) -> Path:
    """The filesystem path of a `unix://` host; other schemes raise ValueError naming the host."""
    if host.startswith("unix://"):
        return Path(host[len("unix://") :])
    if host.startswith("/"):
        return Path(host)
    raise ValueError(f"unsupported host {host!r}: logship serves and reaches daemons on unix:// sockets")
