"""daemon.json plus `logship daemon` flags → validated daemon settings.

Mirrors dockerd: the same key names, log-opts values must be strings, a key given both as a flag and in
the file is an error, and any problem stops the daemon with a message naming the key (or the line and
column of malformed JSON) and the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship import paths
from logship.errors import InvalidParameter
from logship.units import SizeError, ram_in_bytes

LOG_LEVELS = ("panic", "fatal", "error", "warn", "info", "debug", "trace")
LOG_FORMATS = ("text", "json")
DEFAULT_LOG_DRIVER = "json-file"

# daemon.json keys logship understands, with the type each must have.
KNOWN_KEYS: dict[str, type | tuple[type, ...]] = {
    "log-driver": str,
    "log-opts": dict,
    "log-level": str,
    "log-format": str,
    "data-root": str,
    "hosts": list,
    "live-restore": bool,
    "shutdown-timeout": int,
    "daemon-log": str,
    "tls": bool,
    "tlsverify": bool,
    "tlscacert": str,
    "tlscert": str,
    "tlskey": str,
    "insecure-tcp": bool,
    "insecure-registries": list,
    "registry-mirrors": list,
    "log-buffer-total": str,
    "bridge": str,
}
DAEMON_LOG_TARGETS = ("file", "journald")


class SettingsError(Exception):
    """The daemon cannot start with this configuration; the message says which key and what to do."""


@dataclass
class Flags:
    """What was given on the `logship daemon` command line (None: not given)."""

    hosts: list[str] | None = None
    data_root: str | None = None
    config_file: str | None = None
    log_level: str | None = None
    log_driver: str | None = None
    log_opts: dict[str, str] | None = None
    tls: bool | None = None
    tls_verify: bool | None = None
    tls_ca_cert: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_tcp: bool | None = None


@dataclass
class Settings:
    hosts: list[str]
    data_root: Path
    config_file: Path | None
    log_driver: str = DEFAULT_LOG_DRIVER
    log_opts: dict[str, str] = field(default_factory=dict)
    log_level: str = "info"
    log_format: str = "text"
    live_restore: bool = False
    shutdown_timeout: int = 15
    log_buffer_total: int = 0  # bytes all disk buffers together may hold (0: no daemon-wide bound)
    daemon_log: str = "file"  # or "journald" (SYSLOG_IDENTIFIER=logshipd)
    # dockerd's `bridge`: "none" turns the default bridge network off, and containers started without
    # --network get none instead (README, "Networks").
    bridge: str = ""
    # tcp:// hosts: TLS with the daemon's certificate, and with tls_verify only clients whose certificate
    # tls_ca_cert signed (mutual TLS); plain TCP only with insecure_tcp. Unix sockets ignore all of it.
    tls: bool = False
    tls_verify: bool = False
    tls_ca_cert: Path = field(default_factory=lambda: paths.default_cert_dir() / "ca.pem")
    tls_cert: Path = field(default_factory=lambda: paths.default_cert_dir() / "cert.pem")
    tls_key: Path = field(default_factory=lambda: paths.default_cert_dir() / "key.pem")
    insecure_tcp: bool = False
    # Registries: names or CIDR networks to reach without checked TLS; mirrors for Docker Hub pulls;
    # certs.d (per-registry CAs and client certificates) beside the config file, as /etc/docker/certs.d.
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    certs_dir: Path = field(default_factory=lambda: paths.default_config_file().parent / "certs.d")

    @property
    def daemon_log_path(self) -> Path:
        return self.data_root / "daemon.log"

    def listen_hosts(self) -> list[paths.Host]:
        return [paths.parse_host(host, tls=self.tls) for host in self.hosts]


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise SettingsError(f"unable to read configuration file {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SettingsError(
            f"invalid JSON in configuration file {path} at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(f"configuration file {path} must hold a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise SettingsError(
            f"the following directives in {path} don't match any configuration option: {', '.join(unknown)}"
            f" (known: {', '.join(sorted(KNOWN_KEYS))})"
        )
    for key, value in data.items():
        expected = KNOWN_KEYS[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise SettingsError(
                f"invalid value for {key!r} in {path}: expected {_type_name(expected)}, got {json.dumps(value)}"
            )
    for key, value in data.get("log-opts", {}).items():
        if not isinstance(value, str):
            raise SettingsError(
                f"invalid value for log-opts {key!r} in {path}: log-opts values must be strings, "
                f'as in Docker (write "{key}": "{_as_string(value)}")'
            )
    for key in ("hosts", "insecure-registries", "registry-mirrors"):
        if any(not isinstance(item, str) for item in data.get(key, [])):
            raise SettingsError(f"invalid value for {key!r} in {path}: expected a list of strings")
    return data


def load(flags: Flags) -> Settings:
    explicit = flags.config_file is not None
    config_path = Path(flags.config_file) if flags.config_file else paths.default_config_file()
    file_values: dict[str, Any] = {}
    if config_path.exists() or explicit:
        file_values = read_config_file(config_path)

    both = [
        f"{key}: (from flag: {flag_value}, from file: {file_values[key]})"
        for key, flag_value in (
            ("hosts", flags.hosts),
            ("data-root", flags.data_root),
            ("log-level", flags.log_level),
            ("log-driver", flags.log_driver),
            ("log-opts", flags.log_opts),
            ("tls", flags.tls),
            ("tlsverify", flags.tls_verify),
            ("tlscacert", flags.tls_ca_cert),
            ("tlscert", flags.tls_cert),
            ("tlskey", flags.tls_key),
            ("insecure-tcp", flags.insecure_tcp),
        )
        if flag_value and key in file_values
    ]
    if both:
        raise SettingsError(
            "the following directives are specified both as a flag and in the configuration file: " + ", ".join(both)
        )

    settings = Settings(
        hosts=flags.hosts or file_values.get("hosts") or [paths.default_host()],
        data_root=Path(flags.data_root or file_values.get("data-root") or paths.default_data_root()),
        config_file=config_path if file_values else None,
        log_driver=flags.log_driver or file_values.get("log-driver") or DEFAULT_LOG_DRIVER,
        log_opts=dict(flags.log_opts or file_values.get("log-opts") or {}),
        log_level=flags.log_level or file_values.get("log-level") or "info",
        log_format=file_values.get("log-format", "text"),
        live_restore=file_values.get("live-restore", False),
        shutdown_timeout=file_values.get("shutdown-timeout", 15),
        daemon_log=file_values.get("daemon-log", "file"),
        insecure_tcp=bool(flags.insecure_tcp or file_values.get("insecure-tcp", False)),
        insecure_registries=list(file_values.get("insecure-registries", [])),
        registry_mirrors=list(file_values.get("registry-mirrors", [])),
        certs_dir=config_path.parent / "certs.d",
        log_buffer_total=_buffer_total(file_values.get("log-buffer-total", "")),
        bridge=file_values.get("bridge", ""),
    )
    # As in dockerd, asking to verify clients turns TLS on whatever `tls` says.
    settings.tls_verify = bool(flags.tls_verify or file_values.get("tlsverify", False))
    settings.tls = settings.tls_verify or bool(flags.tls or file_values.get("tls", False))
    for attribute, flag_value, key in (
        ("tls_ca_cert", flags.tls_ca_cert, "tlscacert"),
        ("tls_cert", flags.tls_cert, "tlscert"),
        ("tls_key", flags.tls_key, "tlskey"),
    ):
        given = flag_value or file_values.get(key)
        if given:
            setattr(settings, attribute, Path(given))
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if settings.log_level not in LOG_LEVELS:
        raise SettingsError(f"invalid logging level: {settings.log_level} (use one of {', '.join(LOG_LEVELS)})")
    if settings.daemon_log not in DAEMON_LOG_TARGETS:
        raise SettingsError(f'invalid daemon-log: {settings.daemon_log!r} (use "file" or "journald")')
    if settings.log_format not in LOG_FORMATS:
        raise SettingsError(f"invalid log format: {settings.log_format} (use text or json)")
    if settings.bridge not in ("", "none"):
        raise SettingsError(
            f'invalid bridge: {settings.bridge!r}: logship makes its own bridges; "none" turns the default '
            "bridge network off (containers without --network then get none), leave it out to keep it"
        )
    if not settings.data_root.is_absolute():
        raise SettingsError(f"data-root must be an absolute path, got {settings.data_root}")
    try:
        hosts = settings.listen_hosts()
    except ValueError as err:
        raise SettingsError(str(err)) from None
    _validate_tcp(settings, [host for host in hosts if isinstance(host, paths.TcpHost)])
    from logship.runtime.registry.endpoints import check_mirror

    try:
        settings.registry_mirrors = [check_mirror(mirror) for mirror in settings.registry_mirrors]
    except InvalidParameter as err:
        raise SettingsError(f"registry-mirrors: {err}") from None
    # Local import: the registry pulls in driver code the CLI does not need.
    from logship.drivers import options

    try:
        options.validate(settings.log_driver, settings.log_opts)
    except InvalidParameter as err:
        raise SettingsError(f"failed to set log opts: {err}") from None


def _validate_tcp(settings: Settings, tcp_hosts: list[paths.TcpHost]) -> None:
    """Plain TCP hands the daemon (root on this machine) to anyone who can connect: only on request."""
    if settings.tls and settings.insecure_tcp:
        raise SettingsError(
            "insecure-tcp and tls/tlsverify contradict each other: insecure-tcp serves tcp:// hosts without TLS; "
            "drop insecure-tcp to serve them with TLS"
        )
    if tcp_hosts and not settings.tls and not settings.insecure_tcp:
        listed = ", ".join(map(str, tcp_hosts))
        raise SettingsError(
            f"refusing to serve {listed} without TLS: anyone who can connect to it would control this machine "
            "as root. Give --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY to accept only clients "
            "with a certificate signed by CA, or --insecure-tcp if you really want plain TCP"
        )


def _buffer_total(value: str) -> int:
    if not value:
        return 0
    try:
        return ram_in_bytes(value)
    except SizeError:
        raise SettingsError(
            f"invalid log-buffer-total: {value!r} (a size such as 10g: what the disk buffers of all containers "
            "may hold together; leave it out for no daemon-wide bound)"
        ) from None


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", list: "a list", bool: "true or false", int: "an integer"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
