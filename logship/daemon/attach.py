"""Attached clients: the live bytes of a container's streams, and its stdin.

Attach sees the output as the container wrote it (before line splitting, so a prompt without a newline
shows at once). Like Docker, a slow attached client slows the container down rather than losing output;
a client that goes away is unsubscribed and never holds anything back.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections import deque
from collections.abc import Callable

SUBSCRIBER_LIMIT = 1 << 20


class Subscriber:
    def __init__(self, streams: frozenset[str]) -> None:
        self.streams = streams
        self._chunks: deque[tuple[str, bytes]] = deque()
        self._size = 0
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = False

    def push(self, stream: str, chunk: bytes) -> None:
        self._chunks.append((stream, chunk))
        self._size += len(chunk)
        self._ready.set()
        if self._size > SUBSCRIBER_LIMIT:
            self._drained.clear()

    @property
    def full(self) -> bool:
        return not self._drained.is_set()

    async def wait_drained(self) -> None:
        await self._drained.wait()

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self._drained.set()

    async def get(self) -> tuple[str, bytes] | None:
        """The next chunk, or None once the container's output has ended and everything was taken."""
        while not self._chunks:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        stream, chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._size <= SUBSCRIBER_LIMIT:
            self._drained.set()
        return stream, chunk


class Attachments:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    def subscribe(self, streams: frozenset[str]) -> Subscriber:
        sub = Subscriber(streams)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        sub.close()

    async def publish(self, stream: str, chunk: bytes) -> None:
        if not self._subscribers:
            return
        waiting = []
        for sub in self._subscribers:
            if stream in sub.streams:
                sub.push(stream, chunk)
                if sub.full:
                    waiting.append(sub.wait_drained())
        if waiting:
            await asyncio.gather(*waiting)

    def close(self) -> None:
        """The container's output ended: every subscriber gets what is queued, then EOF."""
        for sub in self._subscribers:
            sub.close()
        self._subscribers.clear()


class StdinPipe:
    """Writes an attached client's input to the container's stdin (FIFO or pty master) without blocking."""

    def __init__(self, fd: int, on_eof: Callable[[], None] | None) -> None:
        self.fd = fd
        self._on_eof = on_eof
        self._pending = bytearray()
        self._loop = asyncio.get_running_loop()
        self._writing = False
        self._eof = False
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.broken or self._eof:
            return
        self._pending += data
        self._flush()

    def write_eof(self) -> None:
        self._eof = True
        if not self._pending:
            self._finish()

    def _flush(self) -> None:
        while self._pending:
            try:
                written = os.write(self.fd, self._pending)
            except BlockingIOError:
                if not self._writing:
                    self._writing = True
                    self._loop.add_writer(self.fd, self._on_writable)
                return
            except OSError as err:
                if err.errno in (errno.EPIPE, errno.EBADF, errno.EIO):
                    self.broken = True
                    self._pending.clear()
                    return
                raise
            del self._pending[:written]
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self.fd)
        if self._eof:
            self._finish()

    def _on_writable(self) -> None:
        self._flush()

    def _finish(self) -> None:
        if self._on_eof is not None:
            on_eof, self._on_eof = self._on_eof, None
            on_eof()
