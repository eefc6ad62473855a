"""gelf's log-opts with Docker's names, defaults and error texts (`daemon/logger/gelf`).

Where logship differs on purpose: without `gelf-tcp-max-reconnect` a TCP connection is retried for as long
as the container runs (Docker gives a message up after 3 reconnects, 1 s apart, and fails the start when
the server is down); with it, Docker's bound applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from logship.drivers.options import ATTRIBUTE_OPTIONS, check_attribute_patterns
from logship.errors import InvalidParameter

DRIVER = "gelf"
COMPRESSIONS = ("gzip", "zlib", "none")
DEFAULT_COMPRESSION_LEVEL = 1  # go-gelf's flate.BestSpeed

ACCEPTED = (
    frozenset(
        {
            "gelf-address",
            "gelf-compression-type",
            "gelf-compression-level",
            "gelf-tcp-max-reconnect",
            "gelf-tcp-reconnect-delay",
        }
    )
    | ATTRIBUTE_OPTIONS
)


@dataclass(frozen=True)
class Config:
    scheme: str  # "udp" or "tcp"
    host: str
    port: int
    compression: str = "gzip"
    compression_level: int = DEFAULT_COMPRESSION_LEVEL
    max_reconnect: int | None = None  # None: reconnect while the container runs
    reconnect_delay_s: float | None = None  # None: backoff

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


_TRANSPORT = re.compile(r"^(tcp|tcp\+tls|udp|unix|unixgram)://")
_INT = re.compile(r"[+-]?[0-9]+")


def _parse_address(value: str) -> tuple[str, str, int]:
    if not value:
        raise InvalidParameter("gelf-address is a required parameter")
    if not _TRANSPORT.match(value):
        raise InvalidParameter(f"gelf-address should be in form proto://address, got {value}")
    scheme, rest = value.split("://", 1)
    if scheme not in ("udp", "tcp"):
        raise InvalidParameter("gelf: endpoint needs to be TCP or UDP")
    hostport = rest.split("/", 1)[0]
    host, port = "", ""
    if hostport.startswith("[") and "]:" in hostport:
        host, port = hostport[1:].split("]:", 1)
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    if not port.isdigit() or int(port) > 65535:
        raise InvalidParameter("gelf: please provide gelf-address as proto://host:port")
    return scheme, host, int(port)


def parse_config(opts: Mapping[str, str]) -> Config:
    """Docker's checks, in Docker's words: an address first, then each option against it."""
    scheme, host, port = _parse_address(opts.get("gelf-address", ""))
    for key, value in opts.items():
        if key in ("gelf-compression-level", "gelf-compression-type") and scheme != "udp":
            raise InvalidParameter("compression is only supported on UDP")
        if key == "gelf-compression-level" and not (_INT.fullmatch(value) and -1 <= int(value) <= 9):
            raise InvalidParameter(f'unknown value "{value}" for log opt "{key}" for gelf log driver')
        if key == "gelf-compression-type" and value not in COMPRESSIONS:
            raise InvalidParameter(f'unknown value "{value}" for log opt "{key}" for gelf log driver')
        if key in ("gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"):
            if scheme != "tcp":
                raise InvalidParameter(f'"{key}" is only valid for TCP')
            if not (_INT.fullmatch(value) and int(value) >= 0):
                raise InvalidParameter(f'"{key}" must be a positive integer')
    check_attribute_patterns(opts)
    max_reconnect = opts.get("gelf-tcp-max-reconnect")
    delay = opts.get("gelf-tcp-reconnect-delay")
    return Config(
        scheme=scheme,
        host=host or "127.0.0.1",
        port=port,
        compression=opts.get("gelf-compression-type") or "gzip",
        compression_level=int(opts.get("gelf-compression-level") or DEFAULT_COMPRESSION_LEVEL),
        max_reconnect=int(max_reconnect) if max_reconnect is not None else None,
        reconnect_delay_s=float(delay) if delay is not None else None,
    )


def validate_options(opts: Mapping[str, str]) -> None:
    _parse_address(opts.get("gelf-address", ""))
    for key in opts:
        if key not in ACCEPTED:
            raise InvalidParameter(f'unknown log opt "{key}" for gelf log driver')
    parse_config(opts)
