"""A Fluentd Forward Protocol v1 server for logship's tests and benchmarks (no real fluentd needed).

`ForwardReceiver` checks every request strictly (tests/fluentd_protocol.py) and keeps its events; anything the
spec does not allow is recorded in `protocol_errors` and the connection is closed. `CountingReceiver` only
counts events, for benchmarks. Both listen on TCP, a unix socket or TLS, in a background thread that runs its
own asyncio loop, answer {"ack": chunk} on the same connection when a request carries a chunk, and can
misbehave on purpose (`refuse`, `reset_after_events`, `ack_delay`, `drop_acks`) to drive a driver's retries.

    receiver = ForwardReceiver()            # or unix_path=..., or tls=(cert, key)
    receiver.start()
    ... run a container with --log-opt fluentd-address=<receiver.address> ...
    events = receiver.wait_for(3)
    assert receiver.protocol_errors == []
    receiver.stop()

A benchmark runs the receiver in its own process so that it measures the daemon's CPU alone:

    python -m tests.fluentd_receiver [--count] [--host H] [--port N | --unix PATH] [--tls CERT KEY]

prints one JSON line {"address": ..., "pid": ...} once it listens, answers the stdin commands `totals` and
`wait COUNT TIMEOUT` with its totals as one JSON line, and on SIGTERM, SIGINT or end of stdin prints its final
totals and exits. `ReceiverProcess` drives all that from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import select
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import msgpack

from tests.fluentd_protocol import (
    Event,
    ForwardProtocolError,
    RawStr,
    Request,
    count_request,
    decode_request,
    encode_ack,
    event_time,
    new_unpacker,
)

__all__ = [
    "CountingReceiver",
    "Event",
    "ForwardReceiver",
    "RawStr",
    "ReceiverProcess",
    "event_time",
]

READ_SIZE = 256 * 1024
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # msgpack's own default limit for one value
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    task: asyncio.Task[None]
    # Closed by the receiver (stop, restart, reset): a request cut short is then not the client's doing.
    dropped: bool = False


@dataclass
class _Batch:
    """Requests accepted on one connection and not yet published to the receiver's results."""

    events: list[Event] = field(default_factory=list)
    event_count: int = 0
    messages: int = 0

    def add(self, request: Request) -> None:
        self.events.extend(request.events)
        self.event_count += request.event_count
        self.messages += 1

    def clear(self) -> None:
        self.events.clear()
        self.event_count = 0
        self.messages = 0


class ForwardReceiver:
    """A strict Forward Protocol v1 server that keeps every event it accepts.

    Results (safe to read from any thread): `events`, `event_count`, `messages` (accepted requests, not events),
    `protocol_errors`, `acks_sent`, `connections` (accepted), `refused`, `resets`, and `incomplete_requests`:
    connections the client closed in the middle of a request (a client that gives up mid-write, as Docker's does
    on a write timeout, is not breaking the protocol, so this is counted apart from protocol errors), and
    `handshake_failures`: TLS clients that did not complete the handshake (e.g. they do not trust the CA).

    Failure injection, settable at any time:
      refuse              accept each new connection and close it at once without reading (the client's dial
                          succeeds, its writes are lost); to get "connection refused", use stop() or restart().
      reset_after_events  after N more events have been accepted, reset (RST) the connection delivering them,
                          once; the request holding the N-th event is kept but not acknowledged. With 0, the
                          connection delivering the next request is reset and that request is dropped.
      ack_delay           seconds to wait before sending each ack (the event is accepted first).
      drop_acks           accept requests but never acknowledge them.

    With unix_path, a stale socket file at that path is replaced, and the file is removed while the receiver is
    down, so a client gets "no such file" where a TCP client gets "connection refused".
    """

    def __init__(
        self,
        *,
        unix_path: str | os.PathLike[str] | None = None,
        tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if unix_path is not None and tls is not None:
            raise ValueError("a fluentd unix socket address cannot use TLS: give unix_path or tls, not both")
        self._unix_path = os.fspath(unix_path) if unix_path is not None else None
        self._host = host
        self._port = port
        self._tls_context: ssl.SSLContext | None = None
        if tls is not None:
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(os.fspath(tls[0]), os.fspath(tls[1]))

        self.refuse = False
        self.ack_delay = 0.0
        self.drop_acks = False
        self._reset_remaining: int | None = None

        # Every result changes under this condition, so wait_until() wakes on any of them.
        self._changed = threading.Condition()
        self._events: list[Event] = []
        self._protocol_errors: list[str] = []
        self.event_count = 0
        self.messages = 0
        self.acks_sent = 0
        self.connections = 0
        self.refused = 0
        self.resets = 0
        self.incomplete_requests = 0
        self.handshake_failures = 0

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Our own accept loop rather than asyncio.Server: on Python 3.11 a connection accepted in the same loop
        # pass as Server.close() leaks its socket, and stop() must close every connection.
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._setting_up: set[asyncio.Task[None]] = set()  # accepted, TLS handshake under way
        # Bumped by every listen and every close: a connection accepted by an earlier listener is turned away.
        self._generation = 0
        self._open: set[_Connection] = set()

    # ---- address and lifecycle ----

    @property
    def address(self) -> str:
        """The value for --log-opt fluentd-address: tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH."""
        if self._unix_path is not None:
            return f"unix://{self._unix_path}"
        if self._port == 0:
            raise RuntimeError("the port is chosen when the receiver starts: call start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'tls' if self._tls_context else 'tcp'}://{host}:{self._port}"

    def start(self) -> None:
        """Listen, in a background thread with its own event loop. Does nothing if already running.

        After stop(), start() listens again on the same address (the same port, even if it was chosen).
        """
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run_loop, args=(loop,), name="fluentd-receiver", daemon=True)
        self._thread.start()
        try:
            self._in_loop(self._listen())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop listening, close every connection and end the thread. Does nothing if not running."""
        if self._thread is None or self._loop is None:
            return
        try:
            self._in_loop(self._close_everything())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._thread = None
            self._loop = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop listening and drop every connection, stay down for `down_for` seconds (connections are refused
        meanwhile), then listen again on the same address. Blocks for `down_for`."""
        if self._thread is None:
            raise RuntimeError("restart() needs a started receiver")
        self._in_loop(self._close_everything())
        time.sleep(down_for)
        self._in_loop(self._listen())

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- results ----

    @property
    def events(self) -> list[Event]:
        """A copy of every event accepted so far, in arrival order."""
        with self._changed:
            return list(self._events)

    @property
    def protocol_errors(self) -> list[str]:
        """A copy of the descriptions of every spec violation seen so far."""
        with self._changed:
            return list(self._protocol_errors)

    @property
    def reset_after_events(self) -> int | None:
        return self._reset_remaining

    @reset_after_events.setter
    def reset_after_events(self, count: int | None) -> None:
        if count is not None and count < 0:
            raise ValueError(f"reset_after_events must be None or >= 0, got {count}")
        self._reset_remaining = count

    def values(self, key: str) -> list[Any]:
        """record[key] of every event, in order (KeyError names an event without it)."""
        return [event.record[key] for event in self.events]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0, *, what: str = "a condition") -> None:
        """Block until `condition()` (checked whenever a result changes) is true; TimeoutError after `timeout`."""
        with self._changed:
            if not self._changed.wait_for(condition, timeout):
                raise TimeoutError(f"waited {timeout}s for {what}; {self.summary()}")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        """Block until at least `count` events were accepted and return all events so far."""
        self.wait_for_count(count, timeout)
        return self.events

    def wait_for_count(self, count: int, timeout: float = 10.0) -> int:
        """Block until at least `count` events were accepted; returns how many were."""
        self.wait_until(lambda: self.event_count >= count, timeout, what=f"{count} events")
        return self.event_count

    def totals(self) -> dict[str, Any]:
        """Every counter and the protocol errors, as printed by the command line."""
        with self._changed:
            return {
                "events": self.event_count,
                "messages": self.messages,
                "acks": self.acks_sent,
                "connections": self.connections,
                "refused": self.refused,
                "resets": self.resets,
                "incomplete_requests": self.incomplete_requests,
                "handshake_failures": self.handshake_failures,
                "protocol_errors": list(self._protocol_errors),
            }

    def summary(self) -> str:
        """The totals on one line, for failure messages."""
        totals = self.totals()
        errors = totals.pop("protocol_errors")
        counts = ", ".join(f"{name} {value}" for name, value in totals.items())
        return f"{counts}; protocol errors: {errors or 'none'}"

    # ---- inside the loop thread ----

    # How a request becomes a Request; CountingReceiver swaps in count_request.
    _decode: Callable[[object], Request] = staticmethod(decode_request)

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            _finish_leftover_tasks(loop)
        finally:
            loop.close()

    def _in_loop(self, coroutine: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _listen(self) -> None:
        self._generation += 1
        if self._unix_path is not None:
            _remove_stale_socket(self._unix_path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = self._unix_path
        else:
            family, _, _, _, address = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)[0]
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart() rebinds the same port
        try:
            listener.bind(address)
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        if self._unix_path is None:
            self._port = listener.getsockname()[1]
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept_connections(listener, self._generation))

    async def _accept_connections(self, listener: socket.socket, generation: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            client, _ = await loop.sock_accept(listener)
            setup = asyncio.create_task(self._set_up(client, generation))
            self._setting_up.add(setup)
            setup.add_done_callback(self._setting_up.discard)

    async def _set_up(self, client: socket.socket, generation: int) -> None:
        if self.refuse:
            self._count("refused")
            client.close()
            return

        def new_protocol() -> asyncio.StreamReaderProtocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(), functools.partial(self._serve, generation))

        try:
            await asyncio.get_running_loop().connect_accepted_socket(new_protocol, client, ssl=self._tls_context)
        except OSError:  # includes ssl.SSLError: the client did not finish a TLS handshake
            self._count("handshake_failures")
            client.close()

    async def _close_everything(self) -> None:
        self._generation += 1
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
            self._accepting = None
        if self._listener is not None:
            self._listener.close()  # connections still in its backlog are reset by the kernel
            self._listener = None
        setups = list(self._setting_up)
        for setup in setups:
            setup.cancel()
        connections = list(self._open)
        for connection in connections:
            connection.dropped = True
            connection.writer.transport.abort()
            connection.task.cancel()
        await asyncio.gather(*setups, *(connection.task for connection in connections), return_exceptions=True)
        if self._unix_path is not None:
            _remove_stale_socket(self._unix_path)

    async def _serve(self, generation: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if generation != self._generation:  # set up just as stop() or restart() ran
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(writer, task)
        self._open.add(connection)
        self._count("connections")
        try:
            await self._read_requests(reader, connection)
            if not connection.dropped:
                writer.close()  # after any ack still buffered
                await writer.wait_closed()
        except OSError:
            pass  # the client went away while we wrote or closed
        except asyncio.CancelledError:
            pass  # stop() or restart() dropped it; ending normally keeps asyncio's stream server quiet
        except Exception as error:  # a bug here must fail the test, not vanish into asyncio's log
            self._protocol_error(f"receiver internal error: {error!r}")
        finally:
            self._open.discard(connection)
            writer.transport.abort()  # no-op once closed; never leaves a transport behind

    async def _read_requests(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        unpacker = new_unpacker(MAX_REQUEST_BYTES)
        received = 0
        consumed = 0  # Unpacker.tell() is only exact after a complete value
        while True:
            try:
                data = await reader.read(READ_SIZE)
            except OSError:  # reset by the client, or a broken TLS stream: the end of this connection
                data = b""
            if not data:
                if received > consumed and not connection.dropped:
                    self._count("incomplete_requests")
                return
            received += len(data)
            try:
                unpacker.feed(data)
            except msgpack.BufferFull:
                self._protocol_error(f"a request is larger than the receiver's limit of {MAX_REQUEST_BYTES} bytes")
                return
            # Results are published once per read, not per request (that lock would cost more than decoding),
            # but always before an ack, a reset or a protocol error, so what a client sees is already counted.
            batch = _Batch()
            try:
                while True:
                    try:
                        message = unpacker.unpack()
                    except msgpack.OutOfData:
                        break
                    except (ValueError, TypeError, msgpack.UnpackException) as error:
                        self._publish(batch)
                        self._protocol_error(f"not valid msgpack at byte {consumed} of the connection: {error}")
                        return
                    consumed = unpacker.tell()
                    if message is None:
                        continue  # a heartbeat
                    request = self._take(message, connection, batch)
                    if request is None:
                        return
                    if request.chunk is not None and not self.drop_acks:
                        self._publish(batch)
                        await self._ack(request.chunk, connection)
            finally:
                self._publish(batch)

    def _take(self, message: object, connection: _Connection, batch: _Batch) -> Request | None:
        """Decode one request into `batch`; None when it ended the connection (protocol error or reset)."""
        try:
            request = self._decode(message)
        except ForwardProtocolError as error:
            self._publish(batch)
            self._protocol_error(str(error))
            return None
        if self._reset_remaining == 0:
            self._publish(batch)
            self._reset(connection)
            return None
        batch.add(request)
        if self._reset_remaining is not None:
            self._reset_remaining -= request.event_count
            if self._reset_remaining <= 0:
                self._publish(batch)
                self._reset(connection)
                return None
        return request

    async def _ack(self, chunk: str, connection: _Connection) -> None:
        if self.ack_delay > 0:
            await asyncio.sleep(self.ack_delay)
        self._count("acks_sent")  # before the write, so a client holding the ack always sees it counted
        connection.writer.write(encode_ack(chunk))
        await connection.writer.drain()

    def _publish(self, batch: _Batch) -> None:
        if batch.messages:
            with self._changed:
                self._events.extend(batch.events)
                self.event_count += batch.event_count
                self.messages += batch.messages
                self._changed.notify_all()
            batch.clear()

    def _reset(self, connection: _Connection) -> None:
        """Close with RST (SO_LINGER 0) on TCP; a unix socket has no RST, its peer sees the close."""
        self._reset_remaining = None
        connection.dropped = True
        sock = connection.writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.writer.transport.abort()
        self._count("resets")

    def _count(self, counter: str) -> None:
        with self._changed:
            setattr(self, counter, getattr(self, counter) + 1)
            self._changed.notify_all()

    def _protocol_error(self, description: str) -> None:
        with self._changed:
            self._protocol_errors.append(description)
            self._changed.notify_all()


class CountingReceiver(ForwardReceiver):
    """A receiver for benchmarks: it counts events (`event_count`) and still acks, but keeps no events
    (`events` stays empty; use `wait_for_count`). It checks each request's shape, option and size only."""

    _decode = staticmethod(count_request)


def _finish_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Run what stop() left behind: a connection accepted just before it is set up by one task, which then
    starts its handler in another, and that handler turns it away and closes it. Cancel whatever still hangs
    (a TLS handshake that never completes)."""
    for _ in range(10):
        leftovers = asyncio.all_tasks(loop)
        if not leftovers:
            return
        _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=2))
        for task in pending:
            task.cancel()


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


# ---- in a separate process ----
#
# The child reads commands from stdin, one per line, and answers each with one JSON line of totals:
#   totals                  the totals now
#   wait COUNT TIMEOUT      the totals once at least COUNT events arrived, or after TIMEOUT seconds
# SIGTERM, SIGINT or the end of stdin stop it; it then prints its final totals and exits 0.


class ReceiverProcess:
    """A receiver in a child process (`python -m tests.fluentd_receiver`), so its CPU is not the caller's.

    stop() drops whatever the receiver has not read yet: call wait_for_count() first when every event counts.
    """

    def __init__(
        self,
        *,
        count: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        unix_path: str | os.PathLike[str] | None = None,
        tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    ) -> None:
        self._arguments = ["--host", host, "--port", str(port)]
        if count:
            self._arguments.append("--count")
        if unix_path is not None:
            self._arguments += ["--unix", os.fspath(unix_path)]
        if tls is not None:
            self._arguments += ["--tls", os.fspath(tls[0]), os.fspath(tls[1])]
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""

    @property
    def pid(self) -> int:
        return self._running().pid

    def start(self, timeout: float = 10.0) -> None:
        """Spawn the receiver and wait until it listens."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fluentd_receiver", *self._arguments],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,  # it also stops if this process dies and the pipe closes
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.address = self._read_answer(timeout)["address"]

    def totals(self) -> dict[str, Any]:
        """Its totals now (see ForwardReceiver.totals)."""
        return self._ask("totals", timeout=10.0)

    def wait_for_count(self, count: int, timeout: float = 60.0) -> dict[str, Any]:
        """Block until it has counted at least `count` events; returns its totals. TimeoutError after `timeout`."""
        totals = self._ask(f"wait {count} {timeout}", timeout=timeout + 10.0)
        if totals["events"] < count:
            raise TimeoutError(f"waited {timeout}s for {count} events; the receiver process has {totals}")
        return totals

    def stop(self, how: Literal["sigterm", "eof"] = "sigterm", timeout: float = 10.0) -> dict[str, Any]:
        """Stop it by SIGTERM or by closing its stdin, and return its final totals."""
        process = self._running()
        if how == "sigterm":
            process.send_signal(signal.SIGTERM)
            process.wait(timeout)
            assert process.stdout is not None and process.stderr is not None
            stdout, stderr = process.stdout.read(), process.stderr.read()
        else:
            stdout, stderr = process.communicate(timeout=timeout)  # closes stdin
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        if process.returncode != 0 or not stdout.strip():
            raise RuntimeError(
                f"the receiver process exited with {process.returncode}: {stderr.decode(errors='replace')}"
            )
        totals: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
        return totals

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError("the receiver process is not started: call start() first")
        return self.process

    def _ask(self, command: str, timeout: float) -> dict[str, Any]:
        stdin = self._running().stdin
        assert stdin is not None
        stdin.write(command.encode() + b"\n")
        stdin.flush()
        answer = self._read_answer(timeout)
        if "error" in answer:
            raise RuntimeError(f"the receiver process rejected {command!r}: {answer['error']}")
        return answer

    def _read_answer(self, timeout: float) -> dict[str, Any]:
        process = self._running()
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else b""
        if not line:
            process.kill()
            _, stderr = process.communicate()
            raise RuntimeError(f"the receiver process did not answer: {stderr.decode(errors='replace').strip()}")
        answer: dict[str, Any] = json.loads(line)
        return answer


def _print_json(value: object) -> None:
    # os.write, not print(): the stdin thread may still be writing when the main thread exits.
    os.write(sys.stdout.fileno(), json.dumps(value).encode() + b"\n")


def _answer_commands(receiver: ForwardReceiver, done: threading.Event) -> None:
    """Answer the commands on stdin until it ends, then set `done`."""
    pending = b""
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts interpreter shutdown.
    while data := os.read(sys.stdin.fileno(), 65536):
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            match line.decode(errors="replace").split():
                case ["totals"]:
                    pass
                case ["wait", count, timeout] if count.isdigit():
                    with contextlib.suppress(TimeoutError, ValueError):
                        receiver.wait_for_count(int(count), float(timeout))
                case _:
                    _print_json({"error": f"unknown command {line!r}: use `totals` or `wait COUNT TIMEOUT`"})
                    continue
            _print_json(receiver.totals())
    done.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fluentd_receiver",
        description="A Fluentd Forward Protocol v1 receiver. Prints {address} when ready and its totals on "
        "SIGTERM, SIGINT or end of stdin. With stdin a pipe, it answers the commands `totals` and "
        "`wait COUNT TIMEOUT` with its totals.",
    )
    parser.add_argument("--count", action="store_true", help="only count events (CountingReceiver)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--unix", metavar="PATH", help="listen on a unix socket instead of TCP")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve TLS with this certificate and key")
    args = parser.parse_args(argv)

    kind = CountingReceiver if args.count else ForwardReceiver
    receiver = kind(unix_path=args.unix, tls=tuple(args.tls) if args.tls else None, host=args.host, port=args.port)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    receiver.start()
    _print_json({"address": receiver.address, "pid": os.getpid()})
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        # A parent holding the pipe asks through it, and stops us by closing it (or by dying).
        threading.Thread(target=_answer_commands, args=(receiver, done), daemon=True).start()
    done.wait()
    receiver.stop()
    _print_json(receiver.totals())
    return 0


if __name__ == "__main__":
    sys.exit(main())
