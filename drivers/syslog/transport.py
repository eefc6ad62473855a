"""Connections to a syslog server: UDP, TCP, TCP with TLS, a unix stream or datagram socket, or the local
syslog socket (as Go's log/syslog: /dev/log, /var/run/syslog, /var/run/log, each as a datagram socket,
then as a stream socket). Nothing here blocks the event loop; every wait has a bound."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Awaitable, Callable

from logship.drivers.syslog.options import LOCAL_SOCKETS, Address
from logship.drivers.util.netsink import Connection, TransportError, open_datagram, open_stream


def is_datagram(address: Address) -> bool:
    """Whether messages go one per datagram. The local socket is tried as a datagram socket first, so its
    messages are encoded as datagrams either way (a stream gets them back to back, each with its newline)."""
    return not address.stream


def dialer(address: Address, context: ssl.SSLContext | None) -> Callable[[], Awaitable[Connection]]:
    name = f"syslog at {address}"

    async def dial() -> Connection:
        if address.scheme == "udp":
            return await open_datagram(
                name, socket.AF_INET6 if ":" in address.host else socket.AF_INET, (address.host, address.port)
            )
        if address.scheme == "unixgram":
            return await open_datagram(name, socket.AF_UNIX, address.path)
        if address.scheme == "unix":
            return await open_stream(name, path=address.path)
        if address.scheme in ("tcp", "tcp+tls"):
            return await open_stream(
                name, host=address.host, port=address.port, context=context, server_hostname=address.host
            )
        return await _local(name)

    return dial


async def _local(name: str) -> Connection:
    problems = []
    for path in LOCAL_SOCKETS:
        if not os.path.exists(path):
            continue
        try:
            return await open_datagram(f"syslog at unixgram://{path}", socket.AF_UNIX, path)
        except TransportError as err:
            problems.append(str(err))
        try:
            return await open_stream(f"syslog at unix://{path}", path=path)
        except TransportError as err:
            problems.append(str(err))
    tried = "; ".join(problems) or "none of " + ", ".join(LOCAL_SOCKETS) + " exists"
    raise TransportError(f"no syslog daemon answers on this host: {tried}")
