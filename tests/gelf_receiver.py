"""A GELF server written from the GELF 1.1 specification, for the gelf tests and benchmark (no Graylog
installs from the registries these machines reach; no code from one is used here).

What the specification says and this server does:
- UDP: a datagram is a whole message, or a chunk: magic bytes 0x1e 0x0f, an 8-byte message id, the
  chunk's sequence number, the chunk count (at most 128), then the data; chunks may come in any order and
  a message is complete when all its chunks are there. A message (whole or reassembled) is gzip (magic
  0x1f 0x8b), zlib (first byte 0x78) or plain JSON.
- TCP: messages uncompressed, each ended by a NUL byte.
- A message is a JSON object with `version` "1.1", `host`, `short_message` and `timestamp`; anything else
  is recorded in `errors` (a test asserts there are none).

    with GelfReceiver("udp") as server:     # or "tcp"
        server.address                     # for --log-opt gelf-address=...
        server.wait_for(3)                 # the messages (raw JSON bytes), once there are 3
        server.datagrams                   # UDP: every datagram as received
        server.restart(down_for=1.0)       # TCP: close everything, stay down, listen again on the port

`python -m tests.gelf_receiver udp|tcp --count` runs one in its own process for a benchmark: it prints
{"address": ...} when ready, answers `totals` on stdin with one JSON line, and counts without keeping.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any, Self

CHUNK_MAGIC = b"\x1e\x0f"
MAX_CHUNKS = 128
RECEIVE_BUFFER = 64 << 20
SO_RCVBUFFORCE = 33  # linux/socket.h; Python does not name it


def decode(data: bytes) -> bytes:
    """A whole message's JSON bytes, decompressed as its first bytes say."""
    if data[:2] == b"\x1f\x8b":
        return zlib.decompress(data, 31)
    if data[:1] == b"\x78":
        return zlib.decompress(data)
    return data


class GelfReceiver:
    def __init__(self, transport: str = "udp", *, count_only: bool = False, host: str = "127.0.0.1") -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"GELF goes over udp or tcp, not {transport!r}")
        self.transport = transport
        self.count_only = count_only
        self._host = host
        self._port = 0
        self._lock = threading.Condition()
        self.messages: list[bytes] = []
        self.datagrams: list[bytes] = []
        self.errors: list[str] = []
        self.count = 0
        self.connections = 0
        self._partial: dict[bytes, dict[int, bytes]] = {}
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._running = False

    @property
    def address(self) -> str:
        return f"{self.transport}://{self._host}:{self._port}"

    def start(self) -> None:
        if self._running:
            return
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        listener = socket.socket(socket.AF_INET, kind)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.transport == "udp":
            try:  # as root, past rmem_max: a benchmark's burst must not overflow the queue
                listener.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except OSError:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        listener.bind((self._host, self._port))
        self._port = listener.getsockname()[1]
        if kind == socket.SOCK_STREAM:
            listener.listen(64)
        self._listener = listener
        self._running = True
        target = self._receive_datagrams if self.transport == "udp" else self._accept
        self._spawn(target, listener)

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in list(self._open):
            conn.close()
        self._open.clear()

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- results ----

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "a condition") -> None:
        with self._lock:
            if not self._lock.wait_for(condition, timeout):
                raise TimeoutError(f"waited {timeout:g}s for {what}; got {self.count} messages, errors {self.errors}")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[bytes]:
        self.wait_until(lambda: self.count >= count, timeout, f"{count} messages")
        with self._lock:
            return list(self.messages)

    def fields(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(message) for message in self.messages]

    # ---- inside the threads ----

    def _spawn(self, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        thread = threading.Thread(target=target, args=(sock,), daemon=True, name="gelf-receiver")
        self._threads.append(thread)
        thread.start()

    def _receive_datagrams(self, sock: socket.socket) -> None:
        while self._running:
            if not select.select([sock], [], [], 0.1)[0]:
                continue
            while True:
                try:
                    datagram = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    return
                self._datagram(datagram)

    def _datagram(self, datagram: bytes) -> None:
        if not self.count_only:
            with self._lock:
                self.datagrams.append(datagram)
        if datagram[:2] != CHUNK_MAGIC:
            self._message(datagram)
            return
        if len(datagram) < 12:
            self._error(f"a chunk of {len(datagram)} bytes, shorter than its 12-byte header")
            return
        ident, number, count = datagram[2:10], datagram[10], datagram[11]
        if not 0 < count <= MAX_CHUNKS or number >= count:
            self._error(f"chunk {number} of {count}: the count must be 1..{MAX_CHUNKS} and the number below it")
            return
        parts = self._partial.setdefault(ident, {})
        if number in parts:
            self._error(f"chunk {number} of message {ident.hex()} came twice")
        parts[number] = datagram[12:]
        if len(parts) == count:
            del self._partial[ident]
            self._message(b"".join(parts[n] for n in range(count)))

    def _message(self, data: bytes) -> None:
        if self.count_only:
            with self._lock:
                self.count += 1
                self._lock.notify_all()
            return
        try:
            message = decode(data)
            loaded = json.loads(message)
        except (zlib.error, ValueError) as err:
            self._error(f"not a GELF message ({err}): {data[:60]!r}")
            return
        missing = [k for k in ("version", "host", "short_message", "timestamp") if k not in loaded]
        if loaded.get("version") != "1.1" or missing:
            self._error(f"GELF 1.1 needs version 1.1 and {missing}: {message[:100]!r}")
        with self._lock:
            self.messages.append(message)
            self.count += 1
            self._lock.notify_all()

    def _accept(self, listener: socket.socket) -> None:
        while self._running:
            if not select.select([listener], [], [], 0.1)[0]:
                continue
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self._open.add(conn)
            with self._lock:
                self.connections += 1
            self._spawn(self._read_stream, conn)

    def _read_stream(self, conn: socket.socket) -> None:
        pending = b""
        while self._running:
            if not select.select([conn], [], [], 0.1)[0]:
                continue
            try:
                data = conn.recv(1 << 20)
            except OSError:
                break
            if not data:
                break
            *frames, pending = (pending + data).split(b"\x00")
            for frame in frames:
                if frame[:1] != b"{":
                    self._error(f"a TCP frame that is not an uncompressed JSON message: {frame[:60]!r}")
                self._message(frame)
        if pending and self._running:
            self._error(f"the connection ended inside a message: {pending[:60]!r}")
        self._open.discard(conn)
        conn.close()

    def _error(self, description: str) -> None:
        with self._lock:
            self.errors.append(description)
            self._lock.notify_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.gelf_receiver", description=__doc__)
    parser.add_argument("transport", choices=("udp", "tcp"))
    parser.add_argument("--count", action="store_true", help="count messages, keep nothing")
    args = parser.parse_args(argv)
    receiver = GelfReceiver(args.transport, count_only=args.count)
    receiver.start()
    print(json.dumps({"address": receiver.address, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        if line.strip() == "totals":
            with receiver._lock:
                print(json.dumps({"messages": receiver.count, "errors": receiver.errors[:10]}), flush=True)
    receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
