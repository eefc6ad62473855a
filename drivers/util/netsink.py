"""The sending half shared by the network drivers that speak a plain stream or datagram protocol (syslog,
gelf): a byte-bounded queue filled by `log`, one sender task that keeps a connection, sends many messages
per system call, reconnects with backoff whenever the server goes away, and says when lines have left.

Delivery over a stream (TCP, TLS, unix) has no acknowledgement in these protocols: a server that stops
drops what sat unread in its receive buffer and what was still in flight, and the client's writes had
succeeded. So each connection keeps what it sent beyond what the server has surely read, and after a
break that is sent again on the next connection (at least once; duplicates only from that window):

- over TCP, the kernel's count of bytes the server's kernel acknowledged (`TCP_INFO`), less a margin for
  what may still have sat unread in its receive buffer: twice the largest receive window it advertised
  (measured: a stopped rsyslog left 186 KiB unread with a window of 281 KiB);
- over a unix stream socket, our send buffer's size (unread data there is charged to it).

A datagram (UDP, unixgram) is delivered once the kernel took it. Lines count as delivered (the delivery
listener, for the disk buffer's ledger) once written to the socket, in the order `log` received them.

A full queue makes `put` wait: that is the container's backpressure in blocking mode and the disk
buffer's pace. `close` flushes with a bound (10 s), trying a dead server again every 0.25 s meanwhile,
then gives up loudly (`Undelivered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from logship.drivers.base import DeliveryCounters, Undelivered
from logship.drivers.util.tasks import finish_within

FLUSH_TIMEOUT_S = 10.0
CLOSING_RETRY_S = 0.25
MAX_SEND_BYTES = 1 << 20  # queued messages joined into one write of up to this much
CONNECT_TIMEOUT_S = 5.0
MIN_RESEND_MARGIN = 256 * 1024
# struct tcp_info (linux/tcp.h), fields only ever appended: tcpi_bytes_acked (u64) and tcpi_snd_wnd (u32).
_TCPI_BYTES_ACKED = 120
_TCPI_SND_WND = 228
_TCP_INFO_SIZE = 232


class TransportError(Exception):
    """The connection failed or broke; the message names the server and the reason."""


def reason(err: OSError) -> str:
    """ "Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 1)"."""
    if isinstance(err, ssl.SSLError):
        return f"TLS: {err.reason or err}"
    return os.strerror(err.errno) if err.errno else str(err)


class Connection(Protocol):
    @property
    def broken(self) -> bool: ...

    async def send(self, payload: list[bytes], timeout_s: float) -> None:
        """Write the messages (a stream joins them; a datagram socket sends one datagram each)."""

    def surely_read(self) -> int:
        """Bytes of this connection the server has surely read (a stream's resend point after a break)."""

    @property
    def sent(self) -> int: ...

    async def close(self) -> None: ...


class StreamConnection:
    """TCP, TLS or a unix stream socket, written with no user-space buffering: `send` returns once the
    kernel took every byte, so a daemon killed after a confirmation cannot lose what was confirmed."""

    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        writer.transport.set_write_buffer_limits(high=0)
        self.sent = 0
        sock = writer.get_extra_info("socket")
        self._sock: socket.socket | None = sock
        self._tcp = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        self._acked_at_start = self._tcp_info()[0] if self._tcp else 0  # a TLS handshake's bytes
        self._widest_window = 0
        self._sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) if sock is not None else 0

    @property
    def broken(self) -> bool:
        return self._writer.is_closing() or self._reader.at_eof()

    async def send(self, payload: list[bytes], timeout_s: float) -> None:
        data = payload[0] if len(payload) == 1 else b"".join(payload)
        if not data:
            return
        if self._writer.is_closing():  # a closed TLS transport's write trips asyncio (3.11) into an error log
            raise TransportError(f"{self.name} closed the connection")
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), timeout_s or None)
        except TimeoutError:
            raise TransportError(f"writing to {self.name} timed out after {timeout_s:g}s") from None
        except OSError as err:
            raise TransportError(f"writing to {self.name} failed: {reason(err)}") from None
        if self._writer.is_closing():
            raise TransportError(f"{self.name} closed the connection")
        self.sent += len(data)
        if self._tcp:
            self._widest_window = max(self._widest_window, self._tcp_info()[1])

    def surely_read(self) -> int:
        if self._tcp:
            acked = self._tcp_info()[0] - self._acked_at_start
            margin = max(2 * self._widest_window, MIN_RESEND_MARGIN)
            return max(0, min(acked, self.sent) - margin)
        return max(0, self.sent - max(self._sndbuf, MIN_RESEND_MARGIN))

    def _tcp_info(self) -> tuple[int, int]:
        """(bytes the peer acknowledged, the receive window it advertised last)."""
        if self._sock is None:
            return 0, 0
        try:
            info = self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        except OSError:
            return 0, 0
        acked = struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)[0] if len(info) >= 128 else 0
        window = struct.unpack_from("I", info, _TCPI_SND_WND)[0] if len(info) >= 232 else 0
        return acked, window

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)


class DatagramConnection:
    """A connected UDP or unixgram socket: one datagram per message."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self._sock = sock
        sock.setblocking(False)
        self.sent = 0
        self._closed = False

    @property
    def broken(self) -> bool:
        return self._closed

    async def send(self, payload: list[bytes], timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        send = self._sock.send
        for datagram in payload:
            try:
                send(datagram)
            except BlockingIOError:  # a full unixgram queue: wait for room
                try:
                    await asyncio.wait_for(loop.sock_sendall(self._sock, datagram), timeout_s or None)
                except TimeoutError:
                    raise TransportError(f"sending to {self.name} timed out after {timeout_s:g}s") from None
                except OSError as err:
                    raise TransportError(f"sending to {self.name} failed: {reason(err)}") from None
            except ConnectionRefusedError:
                # UDP: an earlier datagram met a closed port (ICMP); UDP has no delivery, send on.
                with contextlib.suppress(OSError):
                    send(datagram)
            except OSError as err:
                raise TransportError(f"sending to {self.name} failed: {reason(err)}") from None
            self.sent += len(datagram)

    def surely_read(self) -> int:
        return self.sent

    async def close(self) -> None:
        self._closed = True
        self._sock.close()


async def open_stream(
    name: str,
    *,
    host: str = "",
    port: int = 0,
    path: str = "",
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> StreamConnection:
    try:
        if path:
            opening = asyncio.open_unix_connection(path)
        else:
            opening = asyncio.open_connection(
                host, port, ssl=context, server_hostname=server_hostname if context else None
            )
        reader, writer = await asyncio.wait_for(opening, CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise TransportError(f"connecting to {name} timed out after {CONNECT_TIMEOUT_S:g}s") from None
    except OSError as err:
        raise TransportError(f"cannot connect to {name}: {reason(err)}") from None
    return StreamConnection(name, reader, writer)


async def open_datagram(name: str, family: int, address: str | tuple[str, int]) -> DatagramConnection:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        target: object = address
        if isinstance(address, tuple):  # a name is resolved off the loop
            host, port = address
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
            target = infos[0][4]
        sock.connect(target)  # type: ignore[arg-type]
    except OSError as err:
        sock.close()
        raise TransportError(f"cannot connect to {name}: {reason(err)}") from None
    return DatagramConnection(name, sock)


class RetryPolicy(Protocol):
    def delay_s(self, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt` + 1, or None to give up on the oldest message."""


@dataclass
class _Chunk:
    payload: list[bytes]  # messages, framed
    lines: int  # lines of the container's output it stands for (empty ones included)
    size: int
    confirmed: bool = False  # already reported to the delivery listener (a resend)
    end: int = 0  # the connection's byte count after it was written


class NetworkSender:
    """The queue and the sender task of one container's network driver."""

    def __init__(
        self,
        server: str,
        container: str,
        dial: Callable[[], Awaitable[Connection]],
        retry: RetryPolicy,
        log: logging.Logger,
        buffer_limit: int = 8 << 20,
        write_timeout_s: float = 30.0,
    ) -> None:
        self.server = server  # "syslog at tcp://host:514", for messages
        self.container = container[:12]
        self._dial = dial
        self._retry = retry
        self._log = log
        self.buffer_limit = buffer_limit
        self._write_timeout_s = write_timeout_s
        self._connection: Connection | None = None
        self._queue: deque[_Chunk] = deque()
        self._window: deque[_Chunk] = deque()  # sent on this connection, maybe not yet read
        self._buffered = 0
        self._space = asyncio.Event()
        self._space.set()
        self._work = asyncio.Event()
        self._closing = False
        self._close_requested = asyncio.Event()
        self._listener: Callable[[int], None] | None = None
        self.counters = DeliveryCounters()
        self._failing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"netsink-{self.container}")

    def set_delivery_listener(self, listener: Callable[[int], None]) -> None:
        self._listener = listener

    def delivery_counters(self) -> DeliveryCounters:
        self.counters.buffered_bytes = self._buffered
        return self.counters

    async def put(self, payload: list[bytes], lines: int) -> None:
        """Queue messages standing for `lines` lines; waits while the queue is full."""
        size = sum(map(len, payload))
        while self._queue and self._buffered + size > self.buffer_limit:
            self._space.clear()
            await self._space.wait()
        self._queue.append(_Chunk(payload, lines, size))
        self._buffered += size
        self._work.set()

    # ---- the sender -----------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            if not self._queue and self._connection is not None and self._connection.broken:
                await self._drop_connection()  # the server went away: what it may not have read goes again
            if not self._queue:
                if self._closing:
                    return
                self._work.clear()
                await self._work.wait()
                continue
            try:
                connection = await self._ensure_connection()
                taken = self._next_send()
                payload = [message for chunk in taken for message in chunk.payload]
                await connection.send(payload, self._write_timeout_s)
            except TransportError as err:
                attempt += 1
                await self._drop_connection()
                self.counters.error(str(err))
                if not self._failing:
                    self._log.warning(
                        "%s; container %s keeps its lines queued and retries (attempt %d)", err, self.container, attempt
                    )
                    self._failing = True
                delay = self._retry.delay_s(attempt)
                if delay is None:
                    self._give_up(str(err), attempt)
                    attempt = 0
                    continue
                await self._pause(delay)
                continue
            if self._failing:
                self._log.info("%s reachable again; container %s sends its queue", self.server, self.container)
                self._failing = False
            attempt = 0
            self._sent(taken, connection)

    def _next_send(self) -> list[_Chunk]:
        taken: list[_Chunk] = []
        size = 0
        for chunk in self._queue:
            if taken and size + chunk.size > MAX_SEND_BYTES:
                break
            taken.append(chunk)
            size += chunk.size
        return taken

    def _sent(self, taken: list[_Chunk], connection: Connection) -> None:
        confirmed = 0
        for chunk in taken:
            self._queue.popleft()
            self._buffered -= chunk.size
            if not chunk.confirmed:
                confirmed += chunk.lines
                chunk.confirmed = True
            chunk.end = connection.sent
            self._window.append(chunk)
        read = connection.surely_read()
        while self._window and self._window[0].end <= read:
            self._window.popleft()
        self._space.set()
        if confirmed and self._listener is not None:
            self._listener(confirmed)

    async def _ensure_connection(self) -> Connection:
        if self._connection is not None and self._connection.broken:
            await self._drop_connection()
        if self._connection is None:
            self._connection = await self._dial()
        return self._connection

    async def _drop_connection(self) -> None:
        """Close the connection; what it sent past the server's surely-read point goes out again first."""
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        read = connection.surely_read()
        again = [chunk for chunk in self._window if chunk.end > read]
        self._window.clear()
        for chunk in reversed(again):
            self._queue.appendleft(chunk)
            self._buffered += chunk.size
        resent = sum(chunk.lines for chunk in again)
        if resent:
            self.counters.lines_retried += resent
            self._log.info(
                "%s: container %s sends again %d lines the server may not have read before the connection broke",
                self.server,
                self.container,
                resent,
            )
        await connection.close()

    def _give_up(self, why: str, attempts: int) -> None:
        chunk = self._queue.popleft()
        self._buffered -= chunk.size
        self._space.set()
        if not chunk.confirmed:
            self.counters.lines_failed += chunk.lines
            if self._listener is not None:
                self._listener(chunk.lines)
        self._log.error(
            "%s: gave up on %d lines of container %s after %d attempts: %s",
            self.server,
            chunk.lines,
            self.container,
            attempts,
            why,
        )

    async def _pause(self, seconds: float) -> None:
        if self._closing:
            await asyncio.sleep(min(seconds, CLOSING_RETRY_S))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._close_requested.wait(), seconds)

    # ---- close ----------------------------------------------------------------------------------

    async def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        self._closing = True
        self._work.set()
        self._close_requested.set()
        await finish_within(self._task, timeout_s)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()
        unsent = sum(chunk.lines for chunk in self._queue if not chunk.confirmed)
        self._queue.clear()
        self._buffered = 0
        if unsent:
            why = f"{self.server} did not take them within {timeout_s:g}s of the container's end"
            self._log.error("%d lines of container %s were not delivered: %s", unsent, self.container, why)
            raise Undelivered(unsent, why)


class Backoff:
    """Reconnect forever: `first_s` doubling up to `max_s`."""

    def __init__(self, first_s: float = 0.1, max_s: float = 5.0) -> None:
        self.first_s = first_s
        self.max_s = max_s

    def delay_s(self, attempt: int) -> float | None:
        exponent = min(max(attempt - 1, 0), 32)
        return float(min(self.first_s * 2.0**exponent, self.max_s))


class SenderDriver:
    """A driver whose delivery is a NetworkSender's: its abilities (ConfirmsDelivery, ReportsDelivery) and
    its close are the sender's. A subclass encodes batches in `log` and `put`s them."""

    def __init__(self, sender: NetworkSender) -> None:
        self._sender = sender

    def set_delivery_listener(self, listener: Callable[[int], None]) -> None:
        self._sender.set_delivery_listener(listener)

    def delivery_counters(self) -> DeliveryCounters:
        return self._sender.delivery_counters()

    async def close(self) -> None:
        await self._sender.close()
