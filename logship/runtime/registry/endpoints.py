"""Where a registry name leads, and how to speak TLS to it, as dockerd decides.

- A registry is reached over HTTPS, trusting the system's CAs plus any `*.crt` in
  `<certs.d>/<host:port>/`; a `client.cert` and `client.key` there are presented to it (mutual TLS).
  `certs.d` sits beside daemon.json (`/etc/logship/certs.d`, as `/etc/docker/certs.d`).
- daemon.json `insecure-registries` (host:port names, or CIDR networks such as "10.0.0.0/8") and, as in
  Docker, every registry on a loopback address (127.0.0.0/8, ::1) are insecure: HTTPS is tried without
  checking the certificate, then plain HTTP. One difference from dockerd: a loopback registry with a CA
  in certs.d (and not listed in insecure-registries by name) is checked against that CA, where dockerd
  ignores the CA it was given; whoever put a CA there wants the certificate checked.
- daemon.json `registry-mirrors` ("https://mirror.example" URLs) serve pulls of Docker Hub images
  only: each mirror is tried in order, then Docker Hub itself. Pushes never go to a mirror.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from logship.errors import InvalidParameter
from logship.runtime.reference import DEFAULT_DOMAIN

DOCKER_HUB_URL = "https://registry-1.docker.io"
DEFAULT_INSECURE_NETWORKS = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class RegistryConfig:
    """daemon.json's `insecure-registries` and `registry-mirrors`, and the certs.d directory."""

    insecure_registries: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()
    certs_dir: Path = field(default_factory=lambda: Path("/etc/logship/certs.d"))

    def __post_init__(self) -> None:
        for mirror in self.mirrors:
            check_mirror(mirror)


@dataclass(frozen=True)
class Endpoint:
    url: str  # "https://127.0.0.1:5000", no trailing slash
    ssl: ssl.SSLContext | bool  # a context, or False for plain HTTP or an unchecked certificate
    host: str  # host:port, as certs.d names it and as messages show it
    mirror: bool = False
    # Only when the registry is insecure: a TLS failure is followed by a try over plain HTTP.
    insecure: bool = False


def check_mirror(url: str) -> str:
    """A registry-mirrors entry, normalised (no trailing slash); InvalidParameter naming it otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParameter(
            f"invalid mirror: unsupported scheme or missing host in {url!r}: use https://host[:port]"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidParameter(f"invalid mirror: path, query or fragment are not allowed in {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def endpoints(config: RegistryConfig, domain: str, for_push: bool = False) -> list[Endpoint]:
    """The endpoints to try, in order, for the registry `domain` ("docker.io", "127.0.0.1:5000")."""
    found: list[Endpoint] = []
    if domain == DEFAULT_DOMAIN:
        if not for_push:
            for mirror in config.mirrors:
                url = check_mirror(mirror)
                host = urlsplit(url).netloc
                insecure = is_insecure(config, host)
                tls = _tls_context(config, host, verify=not insecure) if url.startswith("https:") else False
                found.append(Endpoint(url, tls, host, mirror=True))
        host = urlsplit(DOCKER_HUB_URL).netloc
        found.append(Endpoint(DOCKER_HUB_URL, _tls_context(config, host, verify=True), host))
        return found
    insecure = domain in config.insecure_registries or (is_insecure(config, domain) and not _has_ca(config, domain))
    found.append(
        Endpoint(f"https://{domain}", _tls_context(config, domain, verify=not insecure), domain, insecure=insecure)
    )
    if insecure:
        found.append(Endpoint(f"http://{domain}", False, domain, insecure=True))
    return found


def is_insecure(config: RegistryConfig, host: str) -> bool:
    """Docker's isSecureIndex, inverted: listed by name, or an address inside a listed network (loopback
    networks always)."""
    if host in config.insecure_registries:
        return True
    hostname = urlsplit(f"//{host}").hostname or host
    networks = []
    for entry in (*DEFAULT_INSECURE_NETWORKS, *config.insecure_registries):
        if "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
    try:
        addresses = {ipaddress.ip_address(hostname)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(hostname, None)}
        except (OSError, ValueError):
            return False
    return any(address in network for address in addresses for network in networks)


def _has_ca(config: RegistryConfig, host: str) -> bool:
    directory = config.certs_dir / host
    return directory.is_dir() and any(directory.glob("*.crt"))


def _tls_context(config: RegistryConfig, host: str, verify: bool) -> ssl.SSLContext:
    """The context for `host`, made once while its certs.d files stay as they are (loading the system's
    CAs costs tens of milliseconds, every pull)."""
    directory = config.certs_dir / host
    try:
        files = tuple(sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(directory)))
    except OSError:
        files = ()
    return _cached_context(directory, host, verify, files)


@functools.lru_cache(maxsize=64)
def _cached_context(directory: Path, host: str, verify: bool, files: tuple[tuple[str, int], ...]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if files:
        for ca in sorted(directory.glob("*.crt")):
            try:
                context.load_verify_locations(cafile=str(ca))
            except (OSError, ssl.SSLError) as err:
                raise InvalidParameter(f"cannot use the CA certificate {ca} for the registry {host}: {err}") from None
        for cert in sorted(directory.glob("*.cert")):
            key = cert.with_suffix(".key")
            if not key.exists():
                raise InvalidParameter(f"missing key {key.name} for client certificate {cert} (registry {host})")
            try:
                context.load_cert_chain(str(cert), str(key))
            except (OSError, ssl.SSLError) as err:
                raise InvalidParameter(
                    f"cannot use the client certificate {cert} for the registry {host}: {err}"
                ) from None
    return context
