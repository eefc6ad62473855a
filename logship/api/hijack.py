"""Docker's connection hijack for `attach`: after `101 UPGRADED` the HTTP connection is a raw
two-way byte stream (the client's stdin one way, the container's output the other).

aiohttp answers the upgrade; then this module takes the transport over by swapping its protocol, so it
receives the client's bytes and its half-close (the client is done typing, but still wants output)
instead of aiohttp's parser. When the stream ends the connection is closed, and aiohttp's own protocol is
told, so nothing of the request lingers.
"""

from __future__ import annotations

import asyncio
from collections import deque

from aiohttp import web

from logship.daemon.attach import Subscriber
from logship.errors import InvalidParameter


class _Protocol(asyncio.Protocol):
    def __init__(self, original: asyncio.BaseProtocol, connection: Connection) -> None:
        self._original = original
        self._connection = connection

    def data_received(self, data: bytes) -> None:
        self._connection._received(data)

    def eof_received(self) -> bool:
        self._connection._received(None)
        return True  # keep the write side open: output keeps flowing after the client's stdin ends

    def pause_writing(self) -> None:
        self._connection._can_write.clear()

    def resume_writing(self) -> None:
        self._connection._can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection.closed = True
        self._connection._gone.set()
        self._connection._received(None)
        self._connection._can_write.set()
        self._original.connection_lost(exc)


class Connection:
    def __init__(self, transport: asyncio.Transport, response: web.StreamResponse) -> None:
        self.transport = transport
        self.response = response
        self.closed = False
        self._incoming: deque[bytes | None] = deque()
        self._has_incoming = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._gone = asyncio.Event()

    async def wait_closed(self) -> None:
        await self._gone.wait()

    def _received(self, data: bytes | None) -> None:
        self._incoming.append(data)
        self._has_incoming.set()

    async def read(self) -> bytes | None:
        """The client's next bytes, or None once it closed its side."""
        while not self._incoming:
            self._has_incoming.clear()
            await self._has_incoming.wait()
        data = self._incoming.popleft()
        if data is None:
            self._incoming.appendleft(None)  # stay at EOF
        return data

    async def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.transport.write(data)
        await self._can_write.wait()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._gone.set()
            self.transport.close()


def wants_upgrade(request: web.Request) -> bool:
    return "upgrade" in request.headers.get("Connection", "").lower() and bool(request.headers.get("Upgrade"))


async def hijack(request: web.Request, content_type: str) -> Connection:
    if not wants_upgrade(request):
        raise InvalidParameter("attach needs a hijacked connection: send 'Connection: Upgrade' and 'Upgrade: tcp'")
    response = web.StreamResponse(
        status=101,
        reason="UPGRADED",
        headers={"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
    )
    await response.prepare(request)
    await response.write(b"")  # push the headers out before the stream starts
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away before attaching")
    connection = Connection(transport, response)
    transport.set_protocol(_Protocol(transport.get_protocol(), connection))
    return connection


async def next_output(subscriber: Subscriber, connection: Connection) -> tuple[str, bytes] | None:
    """The container's next output chunk; None when it ended or the client went away."""
    output = asyncio.ensure_future(subscriber.get())
    gone = asyncio.ensure_future(connection.wait_closed())
    await asyncio.wait((output, gone), return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if not output.done():
        output.cancel()
        return None
    return output.result()
