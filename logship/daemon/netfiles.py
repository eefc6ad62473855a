"""A bridged container's /etc/hosts and /etc/resolv.conf, as dockerd writes them.

/etc/hosts: Docker's fixed lines, then one line per network the container is on: its address there and its
hostname (with the domain name first when one is set: `172.19.0.2	web.example.com web`).

/etc/resolv.conf: on the default bridge, the host's file without loopback name servers (a container cannot
reach the host's 127.0.0.53), or Google's two if none is left, as dockerd does; on a user-defined network,
the network's DNS server (dockerd's embedded resolver, aardvark-dns here) with the host's search domains and
`options ndots:0`. dockerd's resolver listens on 127.0.0.11 inside the container through NAT rules in the
container's namespace; aardvark-dns listens on the network's gateway address, which is the name server
written instead. Names it does not know it asks the host's name servers.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from logship.runtime.spawn import DOCKER_HOSTS
from logship.runtime.statedir import read_or

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
SYSTEMD_RESOLVED = Path("/run/systemd/resolve/resolv.conf")  # the upstream servers behind 127.0.0.53
FALLBACK_SERVERS = ("8.8.8.8", "8.8.4.4")


def hosts(hostname: str, domainname: str, addresses: list[str]) -> str:
    names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    return DOCKER_HOSTS + "".join(f"{address}\t{names}\n" for address in addresses)


def host_resolv_conf() -> str:
    """The host's file; systemd-resolved's upstream one when the host's names only its stub (as dockerd)."""
    text = read_or(HOST_RESOLV_CONF, "")
    servers = _servers(text)
    if servers and all(_loopback(server) for server in servers) and SYSTEMD_RESOLVED.exists():
        return read_or(SYSTEMD_RESOLVED, text)
    return text


def resolv_conf(dns_servers: list[str], host_text: str | None = None) -> str:
    """`dns_servers`: the networks' resolvers (user-defined networks), or none (the default bridge)."""
    text = host_resolv_conf() if host_text is None else host_text
    if not dns_servers:
        kept = [line for line in text.splitlines() if not (_is_nameserver(line) and _loopback(line.split()[1]))]
        if not any(_is_nameserver(line) for line in kept):
            kept += [f"nameserver {server}" for server in FALLBACK_SERVERS]
        return "\n".join(kept).rstrip("\n") + "\n"
    search = [line for line in text.splitlines() if line.split()[:1] in (["search"], ["domain"])]
    options = [
        word
        for line in text.splitlines()
        if line.split()[:1] == ["options"]
        for word in line.split()[1:]
        if not word.startswith("ndots:")
    ]
    lines = search[-1:] + [f"nameserver {server}" for server in dns_servers]
    lines.append("options " + " ".join([*options, "ndots:0"]))
    return "\n".join(lines) + "\n"


def _is_nameserver(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and words[0] == "nameserver"


def _servers(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if _is_nameserver(line)]


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
