"""The client side of an attached container: output to our stdout/stderr, our stdin to the container,
the terminal in raw mode with `-t`, window size changes forwarded."""

from __future__ import annotations

import _socket
import contextlib
import os
import signal
import socket
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator

from logship.client import STREAM_HEADER, APIError, Client

STREAM_STDERR = 2
STREAM_SYSTEMERR = 3


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Put our terminal in raw mode for a `-t -i` session, and always put it back."""
    fd = sys.stdin.fileno()
    if not enabled or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size() -> tuple[int, int] | None:
    for stream in (sys.stdout, sys.stdin):
        with contextlib.suppress(OSError, ValueError):
            size = os.get_terminal_size(stream.fileno())
            return size.lines, size.columns
    return None


def send_resize(client: Client, path: str) -> None:
    """Tell the daemon our terminal's size (`path`: a container's or an exec's resize endpoint)."""
    size = terminal_size()
    if size is None:
        return
    try:
        client.request("POST", path, {"h": size[0], "w": size[1]}).read()
    except APIError:
        pass


def on_resize(callback: Callable[[], None]) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGWINCH, lambda *_: callback())


def proxy_signals(forward: Callable[[int], None]) -> None:
    """Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 to the container while we are attached."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda number, _frame: threading.Thread(target=forward, args=(number,)).start())


def _copy_output(sock: _socket.socket, first: bytes, tty_mode: bool) -> None:
    stdout = sys.stdout.buffer
    stderr = sys.stderr.buffer
    if tty_mode:
        if first:
            stdout.write(first)
            stdout.flush()
        while data := sock.recv(65536):
            stdout.write(data)
            stdout.flush()
        return
    buffer = bytearray(first)
    while True:
        while len(buffer) >= 8:
            stream_type, size = STREAM_HEADER.unpack_from(buffer)
            if len(buffer) < 8 + size:
                break
            payload = bytes(buffer[8 : 8 + size])
            del buffer[: 8 + size]
            if stream_type == STREAM_SYSTEMERR:
                stderr.write(b"error from daemon in stream: " + payload)
                stderr.flush()
            else:
                target = stderr if stream_type == STREAM_STDERR else stdout
                target.write(payload)
                target.flush()
        data = sock.recv(65536)
        if not data:
            return
        buffer += data


def _copy_input(sock: _socket.socket) -> None:
    fd = sys.stdin.fileno()
    try:
        while data := os.read(fd, 65536):
            sock.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def stream(sock: _socket.socket, first: bytes, tty_mode: bool, send_stdin: bool) -> None:
    """Copy until the container's output ends. Input is copied from a daemon thread, so an idle
    terminal never keeps us waiting once the container has exited."""
    if send_stdin:
        threading.Thread(target=_copy_input, args=(sock,), daemon=True).start()
    try:
        _copy_output(sock, first, tty_mode)
    finally:
        sock.close()
