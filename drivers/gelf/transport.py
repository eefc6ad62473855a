"""Connections to a GELF server: a connected UDP socket (one datagram per message or chunk) or a TCP
stream (NUL-framed messages), both from drivers/util/netsink.py."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

from logship.drivers.gelf.options import Config
from logship.drivers.util.netsink import Connection, open_datagram, open_stream


def dialer(config: Config) -> Callable[[], Awaitable[Connection]]:
    name = f"gelf at {config.address}"

    async def dial() -> Connection:
        if config.scheme == "udp":
            family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
            return await open_datagram(name, family, (config.host, config.port))
        return await open_stream(name, host=config.host, port=config.port)

    return dial
