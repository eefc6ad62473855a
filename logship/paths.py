"""Where logship keeps its socket, data and configuration.

As root the places mirror dockerd's (`/run/logship.sock`, `/var/lib/logship`, `/etc/logship/daemon.json`);
as any other user they follow the XDG base directories, so a user's daemon never touches system paths.
"""

from __future__ import annotations

import os

# Every CLI command reads this module on its way to the daemon's socket, and pays for its imports: the
# socket's path is computed as a str, the hosts are plain classes (dataclasses imports inspect, ~10 ms), and
# pathlib (~5 ms, with urllib.parse) is imported only by what returns a Path.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms); type checkers know the name
if TYPE_CHECKING:
    from pathlib import Path

HOST_ENV = "LOGSHIP_HOST"
CERT_PATH_ENV = "LOGSHIP_CERT_PATH"
TLS_VERIFY_ENV = "LOGSHIP_TLS_VERIFY"

# Docker's IANA-registered ports, used when a tcp:// host names no port.
DEFAULT_TCP_PORT = 2375
DEFAULT_TLS_PORT = 2376


_rootless = False


def mark_rootless() -> None:
    """This process is a rootless daemon: root in its own user namespace, an ordinary user on the host. Its
    places stay the user's (logship.runtime.userns calls this once it has entered the namespace)."""
    global _rootless
    _rootless = True


def rootless() -> bool:
    return _rootless


def _is_root() -> bool:
    return os.geteuid() == 0 and not _rootless


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _home() -> str:
    """Path.home(), without pathlib."""
    home = os.path.expanduser("~")
    if home.startswith("~"):
        raise RuntimeError("Could not determine home directory.")
    return home


def _xdg(var: str, fallback: str) -> str:
    return os.environ.get(var) or os.path.join(_home(), fallback)


def default_socket() -> str:
    """A str, as UnixHost keeps it: see there."""
    if _is_root():
        return "/run/logship.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return path_text(os.path.join(runtime, "logship.sock"))
    return path_text(os.path.join(_xdg("XDG_DATA_HOME", ".local/share"), "logship", "logship.sock"))


def default_host() -> str:
    return f"unix://{default_socket()}"


def default_data_root() -> Path:
    return _path("/var/lib/logship") if _is_root() else _path(_xdg("XDG_DATA_HOME", ".local/share")) / "logship"


def default_config_file() -> Path:
    if _is_root():
        return _path("/etc/logship/daemon.json")
    return _path(_xdg("XDG_CONFIG_HOME", ".config")) / "logship" / "daemon.json"


def default_cert_dir() -> Path:
    """Where ca.pem, cert.pem and key.pem are looked for when no flag names them: $LOGSHIP_CERT_PATH, else
    ~/.logship (docker's $DOCKER_CERT_PATH and ~/.docker, for the daemon and the CLI alike)."""
    value = os.environ.get(CERT_PATH_ENV)
    return _path(value or os.path.join(_home(), ".logship"))


def host_from_env() -> str:
    return os.environ.get(HOST_ENV) or default_host()


def path_text(text: str) -> str:
    """`str(Path(text))`: the path as pathlib spells it (no trailing slash, no `.` or empty components).
    Sockets' paths are spelled that way already, and then pathlib is not imported."""
    if text and "//" not in text and not text.endswith("/") and "." not in text.split("/"):
        return text
    return str(_path(text))


class UnixHost:
    """A unix socket. The client connects to `socket_path` (a str, see path_text); `path` is the same as a Path."""

    __slots__ = ("socket_path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.socket_path = path_text(os.fspath(path))

    @property
    def path(self) -> Path:
        return _path(self.socket_path)

    def __str__(self) -> str:
        return f"unix://{self.socket_path}"


class TcpHost:
    __slots__ = ("address", "port")

    def __init__(self, address: str, port: int) -> None:
        self.address = address  # an IP address or a name; IPv6 without brackets
        self.port = port

    def __str__(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"tcp://{address}:{self.port}"


Host = UnixHost | TcpHost


def parse_host(text: str, tls: bool = False) -> Host:
    """A `-H` value as dockerd reads it: `unix:///path` (or a bare `/path`), `tcp://HOST:PORT`, or `HOST:PORT`.

    A tcp host without a port gets 2376 with TLS and 2375 without; without an address it means localhost.
    Anything else raises ValueError naming the value and the forms that work.
    """
    if text.startswith("unix://"):
        path = text[len("unix://") :]
        return UnixHost(path or default_socket())
    if text.startswith("/"):
        return UnixHost(text)
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "tcp", text  # dockerd reads `host:port` as tcp
    if scheme != "tcp":
        raise ValueError(
            f"unsupported host {text!r}: use unix:///path/to/socket or tcp://HOST:PORT (scheme {scheme!r} is unknown)"
        )
    return _parse_tcp(text, rest, DEFAULT_TLS_PORT if tls else DEFAULT_TCP_PORT)


def _parse_tcp(text: str, rest: str, default_port: int) -> TcpHost:
    authority, slash, path = rest.partition("/")
    if slash and path:
        raise ValueError(f"invalid host {text!r}: a tcp:// host has no path (write tcp://HOST:PORT)")
    if authority.startswith("["):
        address, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"invalid host {text!r}: write an IPv6 address as tcp://[ADDRESS]:PORT")
        port_text = after[1:]
    elif authority.count(":") > 1:
        raise ValueError(f"invalid host {text!r}: write an IPv6 address in brackets, as tcp://[ADDRESS]:PORT")
    else:
        address, _, port_text = authority.partition(":")
    if not port_text:
        return TcpHost(address or "localhost", default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid host {text!r}: the port must be a number from 1 to 65535, got {port_text!r}")
    return TcpHost(address or "localhost", int(port_text))


def socket_path_of(host: str) -> Path:
    """The filesystem path of a unix socket host; a tcp host raises ValueError naming it."""
    parsed = parse_host(host)
    if isinstance(parsed, TcpHost):
        raise ValueError(f"{host!r} is a tcp host, not a unix socket")
    return parsed.path
