"""Connections to fluentd over asyncio: TCP, TLS (system trust store; SSL_CERT_FILE honoured) or a unix
socket. Nothing here blocks the event loop; every wait has a bound."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl

import msgpack

from logship.drivers.fluentd.options import Address

CONNECT_TIMEOUT_S = 3.0  # as fluent-logger-golang


class TransportError(Exception):
    """The connection failed or broke; the message names the address."""


class Connection:
    def __init__(self, address: Address, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._unpacker = msgpack.Unpacker(raw=False)

    @property
    def broken(self) -> bool:
        return self._writer.is_closing() or self._reader.at_eof()

    async def send(self, data: bytes, timeout_s: float) -> None:
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), timeout_s or None)
        except TimeoutError:
            raise TransportError(f"writing to fluentd at {self.address} timed out after {timeout_s:g}s") from None
        except OSError as err:
            raise TransportError(f"writing to fluentd at {self.address} failed: {_reason(err)}") from None

    async def read_ack(self, timeout_s: float) -> object:
        """The next msgpack object fluentd sends (an ack map)."""
        while True:
            for item in self._unpacker:
                return item
            try:
                data = await asyncio.wait_for(self._reader.read(65536), timeout_s or None)
            except TimeoutError:
                raise TransportError(f"no ack from fluentd at {self.address} within {timeout_s:g}s") from None
            except OSError as err:
                raise TransportError(f"reading from fluentd at {self.address} failed: {_reason(err)}") from None
            if not data:
                raise TransportError(f"fluentd at {self.address} closed the connection before acking")
            self._unpacker.feed(data)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)


async def connect(address: Address, timeout_s: float = CONNECT_TIMEOUT_S) -> Connection:
    try:
        if address.scheme == "unix":
            opening = asyncio.open_unix_connection(address.path)
        else:
            context = ssl.create_default_context() if address.scheme == "tls" else None
            opening = asyncio.open_connection(address.host, address.port, ssl=context)
        reader, writer = await asyncio.wait_for(opening, timeout_s)
    except TimeoutError:
        raise TransportError(f"connecting to fluentd at {address} timed out after {timeout_s:g}s") from None
    except ssl.SSLError as err:
        raise TransportError(f"TLS handshake with fluentd at {address} failed: {err.reason or err}") from None
    except OSError as err:
        raise TransportError(f"cannot connect to fluentd at {address}: {_reason(err)}") from None
    return Connection(address, reader, writer)


def _reason(err: OSError) -> str:
    """ "Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 1)"."""
    return os.strerror(err.errno) if err.errno else str(err)
