"""fluentd's log-opts, all checked at create time as Docker does (its validator parses the whole config),
with Docker's error texts; plus `fluentd-address` in every form Docker accepts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from logship.drivers.options import ATTRIBUTE_OPTIONS, parse_bool, reject_unknown
from logship.errors import InvalidParameter
from logship.units import SizeError, parse_go_duration, ram_in_bytes

DRIVER = "fluentd"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 24224
DEFAULT_BUFFER_LIMIT = 8 << 20  # bytes (Docker counts messages: 1,048,576 of them, moby#40073)
DEFAULT_RETRY_WAIT_S = 1.0
DEFAULT_MAX_RETRIES = 2**31 - 1
ACCEPTED = (
    frozenset(
        {
            "fluentd-address",
            "fluentd-async",
            "fluentd-async-reconnect-interval",
            "fluentd-buffer-limit",
            "fluentd-retry-wait",
            "fluentd-max-retries",
            "fluentd-sub-second-precision",
            "fluentd-request-ack",
            "fluentd-write-timeout",
            "fluentd-read-timeout",
        }
    )
    | ATTRIBUTE_OPTIONS
)


@dataclass(frozen=True)
class Address:
    scheme: str  # "tcp", "tls" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Config:
    address: Address
    async_connect: bool = False
    reconnect_interval_s: float = 0.0
    buffer_limit: int = DEFAULT_BUFFER_LIMIT
    retry_wait_s: float = DEFAULT_RETRY_WAIT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    sub_second_precision: bool = False
    request_ack: bool = False
    write_timeout_s: float = 0.0  # 0: none
    read_timeout_s: float = 0.0  # 0: none (acks)


def _address_error(value: str, reason: str) -> InvalidParameter:
    return InvalidParameter(f"invalid fluentd-address ({value}): {reason}")


_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$")


def parse_address(value: str) -> Address:
    """`host`, `host:port`, `[::1]:24224`, `tcp://...`, `tls://...`, `unix:///path`; "" is the default."""
    if not value:
        return Address("tcp", DEFAULT_HOST, DEFAULT_PORT)
    match = _URL.match(value)
    if match is None:
        match = _URL.match("tcp://" + value)
        assert match is not None
    scheme, rest = match.group("scheme").lower(), match.group("rest")
    if scheme == "unix":
        if not rest:
            raise _address_error(value, "path is empty")
        return Address("unix", path=rest)
    if scheme not in ("tcp", "tls"):
        raise _address_error(value, f"unsupported scheme: '{scheme}'")
    hostport, slash, path = rest.partition("/")
    if slash and path:
        raise _address_error(value, "should not contain a path element")
    host, port_text = _split_host_port(hostport)
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            raise _address_error(value, f'invalid port: parsing "{port_text}": invalid syntax')
        port = int(port_text)
    return Address(scheme, host or DEFAULT_HOST, port)


def _split_host_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return hostport, ""
        return hostport[1:end], hostport[end + 2 :] if hostport[end + 1 : end + 2] == ":" else ""
    if hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
        return host, port
    return hostport, ""


def _bool(opts: Mapping[str, str], key: str) -> bool:
    if key not in opts:
        return False
    try:
        return parse_bool(opts[key])
    except ValueError as err:
        raise InvalidParameter(str(err)) from None


def _duration(opts: Mapping[str, str], key: str, default: float) -> float:
    if key not in opts:
        return default
    try:
        return parse_go_duration(opts[key])
    except ValueError as err:
        raise InvalidParameter(str(err)) from None


def _timeout(opts: Mapping[str, str], key: str) -> float:
    if key not in opts:
        return 0.0
    try:
        value = parse_go_duration(opts[key])
    except ValueError:
        raise InvalidParameter(f"invalid value for {key}: value must be a duration") from None
    if value < 0:
        raise InvalidParameter(f"invalid value for {key}: value must be a duration that is non-negative")
    return value


def parse_config(opts: Mapping[str, str]) -> Config:
    address = parse_address(opts.get("fluentd-address", ""))
    buffer_limit = DEFAULT_BUFFER_LIMIT
    if opts.get("fluentd-buffer-limit"):
        try:
            buffer_limit = ram_in_bytes(opts["fluentd-buffer-limit"])
        except SizeError as err:
            raise InvalidParameter(str(err)) from None
    retry_wait = _duration(opts, "fluentd-retry-wait", DEFAULT_RETRY_WAIT_S)
    max_retries = DEFAULT_MAX_RETRIES
    if "fluentd-max-retries" in opts:
        text = opts["fluentd-max-retries"]
        if not text.isdigit():
            raise InvalidParameter(f'strconv.ParseUint: parsing "{text}": invalid syntax')
        max_retries = int(text)
        if max_retries > DEFAULT_MAX_RETRIES:
            raise InvalidParameter("invalid fluentd-max-retries: value out of range")
    reconnect = 0.0
    if "fluentd-async-reconnect-interval" in opts:
        text = opts["fluentd-async-reconnect-interval"]
        try:
            reconnect = parse_go_duration(text)
        except ValueError as err:
            raise InvalidParameter(f"invalid value for fluentd-async-reconnect-interval: {err}") from None
        if reconnect != 0 and not 0.1 <= reconnect <= 10:
            raise InvalidParameter(
                f'invalid value for fluentd-async-reconnect-interval: value ("{text}") must be between 100ms and 10s'
            )
    return Config(
        address=address,
        async_connect=_bool(opts, "fluentd-async"),
        reconnect_interval_s=reconnect,
        buffer_limit=buffer_limit,
        retry_wait_s=retry_wait,
        max_retries=max_retries,
        sub_second_precision=_bool(opts, "fluentd-sub-second-precision"),
        request_ack=_bool(opts, "fluentd-request-ack"),
        write_timeout_s=_timeout(opts, "fluentd-write-timeout"),
        read_timeout_s=_timeout(opts, "fluentd-read-timeout"),
    )


def validate_options(opts: Mapping[str, str]) -> None:
    reject_unknown(DRIVER, opts, ACCEPTED)
    parse_config(opts)
