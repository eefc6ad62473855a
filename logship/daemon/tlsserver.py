"""tcp:// hosts over TLS: TLS is done here, and the decrypted HTTP goes to aiohttp over a socketpair.

Why not aiohttp's TCPSite(ssl_context=...): asyncio's TLS transport cannot half-close. A client that ends
its side of an attach (the docker CLI sends TLS close_notify at once when it has no stdin to send, and
when stdin ends with `-i`) gets the whole connection closed, so the container's output never arrives.
dockerd keeps sending after close_notify, and so does this: each connection runs TLS through
`ssl.MemoryBIO`s and gives aiohttp one end of a socketpair, which it serves exactly like a unix-socket
client, half-close included.

A client the handshake rejects (no certificate, one signed by another CA) is told why by the TLS alert,
and the daemon log says who was rejected and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl

from aiohttp import web

from logship.paths import TcpHost

log = logging.getLogger("logship.daemon")

READ_SIZE = 256 * 1024
HANDSHAKE_TIMEOUT_S = 30.0
# After a refused handshake: how long the alert may take to reach a client that keeps sending. Closing at
# once with its bytes unread would make the kernel send a reset, which can destroy the alert on its way.
LINGER_S = 5.0
# What Go's HTTPS servers (dockerd) answer to plain HTTP, so a client without --tls learns what is wrong.
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


class TLSListener:
    """One listening tcp:// host and the TLS connections it accepted."""

    def __init__(self, api: web.Server, context: ssl.SSLContext) -> None:
        self._api = api
        self._context = context
        self._server: asyncio.Server | None = None
        self.connections: set[TLSConnection] = set()

    async def start(self, host: TcpHost) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: TLSConnection(self._api, self._context, self.connections), host.address, host.port
        )

    async def close(self) -> None:
        """Stop listening and drop every connection still open (aiohttp already closed its side of the
        ones it was serving)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connection in list(self.connections):
            connection.abort()


class TLSConnection(asyncio.Protocol):
    """One client: TLS records to and from the network on one side, plain bytes to and from aiohttp on
    the other (through `_ApiSide`)."""

    def __init__(self, api: web.Server, context: ssl.SSLContext, registry: set[TLSConnection]) -> None:
        self._api = api
        self._registry = registry
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._network: asyncio.Transport | None = None
        self._api_transport: asyncio.Transport | None = None
        self._attaching: asyncio.Task[None] | None = None
        self._to_api: list[bytes] = []  # decrypted before aiohttp's side was connected
        self._peer = "unknown peer"
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._handshaken = False
        self._input_ended = False  # the client will send nothing more (close_notify or its FIN)
        self._closed = False

    # ---- the network side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._network = transport
        self._registry.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self._peer = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        self._handshake_timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT_S, self._handshake_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._input_ended:
            return  # a refused client lingering, or bytes after close_notify: nothing to do with them
        self._incoming.write(data)
        if not self._handshaken:
            self._continue_handshake()
        if self._handshaken:
            self._decrypt()
        self._send_records()

    def eof_received(self) -> bool:
        if not self._handshaken:
            return False  # gone before the handshake finished: close
        # A TCP half-close without close_notify: the client's input ended all the same. Passing the EOF
        # to OpenSSL would make it refuse to write any more, so it is taken here.
        self._end_input()
        return True  # keep sending the container's output

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._registry.discard(self)
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._api_transport is not None:
            self._api_transport.close()

    def pause_writing(self) -> None:
        if self._api_transport is not None:
            self._api_transport.pause_reading()  # the client reads slowly: stop taking output from aiohttp

    def resume_writing(self) -> None:
        if self._api_transport is not None and not self._api_transport.is_closing():
            self._api_transport.resume_reading()

    def abort(self) -> None:
        if self._network is not None:
            self._network.abort()

    # ---- TLS ----------------------------------------------------------------------------------

    def _continue_handshake(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError as err:
            self._refuse(err)
            return
        self._handshaken = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self._attaching = asyncio.get_running_loop().create_task(self._connect_api())

    def _decrypt(self) -> None:
        while not self._input_ended:
            try:
                data = self._tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLError as err:
                log.debug("TLS error from %s, closing the connection: %s", self._peer, err)
                self.abort()
                return
            if not data:  # close_notify: the client is done sending, and still reading
                self._end_input()
                return
            self._pass_to_api(data)

    def _send_records(self) -> None:
        records = self._outgoing.read()
        if records and self._network is not None and not self._network.is_closing():
            self._network.write(records)

    def _refuse(self, err: ssl.SSLError) -> None:
        self._send_records()  # the alert: tells the client why ("certificate required", "unknown ca")
        reason = getattr(err, "verify_message", None) or err.reason or str(err)
        if err.reason == "HTTP_REQUEST":
            reason = "plain HTTP request (the client does not use TLS)"
            if self._network is not None:
                self._network.write(PLAIN_HTTP_ANSWER)
        log.warning("refused a TLS connection from %s: %s", self._peer, reason)
        self._input_ended = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._network is not None and self._network.can_write_eof():
            self._network.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.abort)

    def _handshake_timed_out(self) -> None:
        log.info("closed the connection from %s: no TLS handshake within %.0f s", self._peer, HANDSHAKE_TIMEOUT_S)
        self.abort()

    # ---- the aiohttp side ---------------------------------------------------------------------

    async def _connect_api(self) -> None:
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self._api, theirs)
            await loop.connect_accepted_socket(lambda: _ApiSide(self), ours)
        except OSError as err:
            log.error("cannot hand the TLS connection from %s to the API: %s", self._peer, err)
            ours.close()
            theirs.close()
            self.abort()

    def _api_connected(self, transport: asyncio.Transport) -> None:
        self._api_transport = transport
        if self._closed:
            transport.close()
            return
        for data in self._to_api:
            transport.write(data)
        self._to_api.clear()
        if self._input_ended:
            transport.write_eof()

    def _pass_to_api(self, data: bytes) -> None:
        if self._api_transport is None:
            self._to_api.append(data)
        else:
            self._api_transport.write(data)

    def _end_input(self) -> None:
        if self._input_ended:
            return
        self._input_ended = True
        if self._api_transport is not None and not self._api_transport.is_closing():
            self._api_transport.write_eof()  # aiohttp sees the client's half-close, as on a unix socket

    def _from_api(self, data: bytes) -> None:
        if self._closed:
            return
        self._tls.write(data)
        self._send_records()

    def _api_finished(self) -> None:
        """aiohttp closed its side: say close_notify and close once everything is sent."""
        if self._closed or self._network is None or self._network.is_closing():
            return
        with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: close_notify is out, the client's is not in
            self._tls.unwrap()
        self._send_records()
        self._network.close()

    def _api_pause(self) -> None:
        if self._network is not None:
            self._network.pause_reading()  # aiohttp is not keeping up with the client: stop reading it

    def _api_resume(self) -> None:
        if self._network is not None and not self._network.is_closing():
            self._network.resume_reading()


class _ApiSide(asyncio.Protocol):
    """Our end of the socketpair: aiohttp's answers go out through the TLS connection."""

    def __init__(self, connection: TLSConnection) -> None:
        self._connection = connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._connection._api_connected(transport)

    def data_received(self, data: bytes) -> None:
        self._connection._from_api(data)

    def eof_received(self) -> bool:
        self._connection._api_finished()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection._api_finished()

    def pause_writing(self) -> None:
        self._connection._api_pause()

    def resume_writing(self) -> None:
        self._connection._api_resume()
