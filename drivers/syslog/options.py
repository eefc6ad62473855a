"""syslog's log-opts with Docker's names, defaults and error texts (`daemon/logger/syslog`), plus
logship's `syslog-framing`.

Where logship differs on purpose: a `unix://` or `unixgram://` socket need not exist when the container is
created (the server may be down: the driver connects behind, as with a TCP server that is down), and
`syslog-tls-skip-verify=false` verifies (Docker skips verification whenever the key is present).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from logship.drivers.options import ATTRIBUTE_OPTIONS, check_attribute_patterns, parse_bool, reject_unknown
from logship.errors import InvalidParameter

DRIVER = "syslog"
DEFAULT_PORT = 514
# Where the local syslog daemon listens, in the order Go's log/syslog (and so Docker) tries them.
LOCAL_SOCKETS = ("/dev/log", "/var/run/syslog", "/var/run/log")
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
NON_TRANSPARENT = "non-transparent"  # RFC 6587 3.4.2: each message ends with a newline
OCTET_COUNTED = "octet-counted"  # RFC 6587 3.4.1 / RFC 5425: "<length> <message>"
FRAMINGS = (NON_TRANSPARENT, OCTET_COUNTED)
STREAM_SCHEMES = ("tcp", "tcp+tls", "unix")

FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}

ACCEPTED = (
    frozenset(
        {
            "syslog-address",
            "syslog-facility",
            "syslog-tls-ca-cert",
            "syslog-tls-cert",
            "syslog-tls-key",
            "syslog-tls-skip-verify",
            "syslog-format",
            "syslog-framing",
        }
    )
    | ATTRIBUTE_OPTIONS
)


@dataclass(frozen=True)
class Address:
    scheme: str  # "" (the local syslog socket), "udp", "tcp", "tcp+tls", "unix", "unixgram"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if not self.scheme:
            return "the local syslog socket (" + ", ".join(LOCAL_SOCKETS) + ")"
        if self.path:
            return f"{self.scheme}://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def stream(self) -> bool:
        return self.scheme in STREAM_SCHEMES


@dataclass(frozen=True)
class Config:
    address: Address
    facility: int  # 0..23
    format: str  # one of FORMATS
    framing: str  # one of FRAMINGS
    ca_cert: str = ""
    cert: str = ""
    key: str = ""
    skip_verify: bool = False


_TRANSPORT = re.compile(r"^(tcp|tcp\+tls|udp|unix|unixgram)://")


def parse_address(value: str) -> Address:
    if not value:
        return Address("")
    if not _TRANSPORT.match(value):
        raise InvalidParameter(f"syslog-address should be in form proto://address, got {value}")
    scheme, rest = value.split("://", 1)
    if scheme in ("unix", "unixgram"):
        if not rest:
            raise InvalidParameter(f"syslog-address {value}: the socket path is empty")
        return Address(scheme, path=rest)
    hostport = rest.split("/", 1)[0]
    host, port = _split_host_port(value, hostport)
    return Address(scheme, host, port)


def _split_host_port(value: str, hostport: str) -> tuple[str, int]:
    """Go's net.SplitHostPort, with Docker's default port when it is missing."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidParameter(f"address {hostport}: missing ']' in address")
        host, after = hostport[1:end], hostport[end + 1 :]
        if not after:
            return host, DEFAULT_PORT
        if not after.startswith(":"):
            raise InvalidParameter(f"address {hostport}: unexpected characters after ']' in address")
        port_text = after[1:]
    elif hostport.count(":") > 1:
        raise InvalidParameter(f"address {hostport}: too many colons in address")
    elif ":" in hostport:
        host, port_text = hostport.split(":")
    else:
        return hostport, DEFAULT_PORT
    if not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidParameter(f"syslog-address {value}: invalid port {port_text!r} (give a number up to 65535)")
    return host, int(port_text)


def parse_facility(value: str) -> int:
    if not value:
        return FACILITIES["daemon"]
    if value in FACILITIES:
        return FACILITIES[value]
    if re.fullmatch(r"[+-]?[0-9]+", value) and 0 <= int(value) <= 23:
        return int(value)
    raise InvalidParameter("invalid syslog facility")


def parse_config(opts: Mapping[str, str]) -> Config:
    address = parse_address(opts.get("syslog-address", ""))
    facility = parse_facility(opts.get("syslog-facility", ""))
    form = opts.get("syslog-format", "")
    if form not in FORMATS:
        raise InvalidParameter("Invalid syslog format")
    framing = opts.get("syslog-framing", "")
    if framing and framing not in FRAMINGS:
        raise InvalidParameter(
            f"invalid syslog-framing {framing!r} for syslog log driver: use {NON_TRANSPARENT} or {OCTET_COUNTED}"
        )
    if framing == OCTET_COUNTED and not address.stream:
        raise InvalidParameter(
            f"syslog-framing={OCTET_COUNTED} needs a stream transport (tcp://, tcp+tls:// or unix://), "
            f"not {address.scheme or 'the local syslog socket'}"
        )
    if not framing:
        # Docker's choice: RFC 5425 length framing for the RFC 5424 formats over TLS, newlines elsewhere.
        framing = OCTET_COUNTED if address.scheme == "tcp+tls" and form.startswith("rfc5424") else NON_TRANSPARENT
    skip_verify = False
    if "syslog-tls-skip-verify" in opts:
        text = opts["syslog-tls-skip-verify"]
        try:
            skip_verify = parse_bool(text) if text else True
        except ValueError:
            raise InvalidParameter(f"invalid value for syslog-tls-skip-verify: {text!r} (use true or false)") from None
    check_attribute_patterns(opts)
    return Config(
        address=address,
        facility=facility,
        format=form,
        framing=framing,
        ca_cert=opts.get("syslog-tls-ca-cert", ""),
        cert=opts.get("syslog-tls-cert", ""),
        key=opts.get("syslog-tls-key", ""),
        skip_verify=skip_verify,
    )


def validate_options(opts: Mapping[str, str]) -> None:
    reject_unknown(DRIVER, opts, ACCEPTED)
    parse_config(opts)


def tls_context(config: Config) -> ssl.SSLContext:
    """The client's TLS settings; InvalidParameter naming the option whose file cannot be used."""
    context = ssl.create_default_context()
    try:
        if config.ca_cert:
            context.load_verify_locations(cafile=config.ca_cert)
    except (OSError, ssl.SSLError) as err:
        raise InvalidParameter(f"syslog-tls-ca-cert {config.ca_cert}: cannot load a CA certificate: {err}") from None
    if config.cert or config.key:
        if not (config.cert and config.key):
            raise InvalidParameter("syslog-tls-cert and syslog-tls-key go together: give both, or neither")
        try:
            context.load_cert_chain(config.cert, config.key)
        except (OSError, ssl.SSLError) as err:
            raise InvalidParameter(
                f"syslog-tls-cert {config.cert} / syslog-tls-key {config.key}: cannot load the client certificate: "
                f"{err}"
            ) from None
    if config.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
