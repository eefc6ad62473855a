"""A small client for the daemon's API over its unix socket, for the CLI.

Deliberately stdlib-only (http.client, socket): the CLI's start-up time is part of `logs --tail 10`
latency, and aiohttp's import alone costs more than the whole request.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any
from urllib.parse import quote, urlencode

from logship import API_VERSION, paths

STREAM_HEADER = struct.Struct(">BxxxI")
AUTOSTART_ENV = "LOGSHIP_NO_AUTOSTART"
AUTOSTART_WAIT_S = 20.0


class APIError(Exception):
    """The daemon answered with an error; `str()` is its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DaemonUnreachable(Exception):
    """No daemon answers; the message says what to do."""

    def __init__(self, message: str, permission_denied: bool = False) -> None:
        super().__init__(message)
        self.permission_denied = permission_denied


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def _unreachable(host: str, err: OSError) -> DaemonUnreachable:
    if err.errno in (errno.EACCES, errno.EPERM):
        return DaemonUnreachable(
            f"permission denied while trying to connect to the logship daemon socket at {host}: "
            "add your user to the 'logship' group (sudo usermod -aG logship $USER, then log in again) "
            "or run the command with sudo",
            permission_denied=True,
        )
    return DaemonUnreachable(f"Cannot connect to the logship daemon at {host}. Is the logship daemon running?")


class Client:
    def __init__(self, host: str | None = None) -> None:
        self.host = host or paths.host_from_env()
        self.socket_path = str(paths.socket_path_of(self.host))

    # ---- plumbing -------------------------------------------------------------------------------

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        url = f"/v{API_VERSION}{path}"
        if query:
            items = [(k, v) for k, v in query.items() if v is not None]
            url += "?" + urlencode(items, doseq=True)
        return url

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> http.client.HTTPResponse:
        """Send a request; return the response for status < 400, raise APIError otherwise."""
        connection = _UnixConnection(self.socket_path, timeout)
        all_headers = {"Host": "logship"}
        if headers:
            all_headers.update(headers)
        chunked = body is not None and not isinstance(body, bytes)
        try:
            connection.request(method, self._url(path, query), body=body, headers=all_headers, encode_chunked=chunked)
            response = connection.getresponse()
        except OSError as err:
            connection.close()
            raise _unreachable(self.host, err) from None
        if response.status >= 400:
            raise APIError(response.status, _error_message(response))
        return response

    def json(self, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        response = self.request(method, path, query, data, headers)
        raw = response.read()
        return json.loads(raw) if raw else None

    def ping(self, timeout: float = 5.0) -> bool:
        try:
            self.request("GET", "/_ping", timeout=timeout).read()
            return True
        except DaemonUnreachable:
            return False

    # ---- streams --------------------------------------------------------------------------------

    def hijack(self, path: str, query: Mapping[str, Any]) -> tuple[socket.socket, bytes]:
        """POST with `Connection: Upgrade` and take the raw socket over, as the docker CLI attaches.
        Returns the socket and any stream bytes that arrived with the response headers."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.socket_path)
        except OSError as err:
            sock.close()
            raise _unreachable(self.host, err) from None
        request = (
            f"POST {self._url(path, query)} HTTP/1.1\r\nHost: logship\r\nContent-Type: text/plain\r\n"
            "Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        sock.sendall(request.encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise APIError(500, "the daemon closed the connection while attaching")
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status >= 400:
            body = rest
            length = _header(head, b"content-length")
            while length is not None and len(body) < int(length):
                more = sock.recv(65536)
                if not more:
                    break
                body += more
            sock.close()
            raise APIError(status, _message_of(body))
        return sock, rest


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _message_of(body: bytes) -> str:
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    except ValueError:
        pass
    return body.decode(errors="replace").strip() or "unknown error"


def _error_message(response: http.client.HTTPResponse) -> str:
    return _message_of(response.read())


def iter_frames(reader: IO[bytes] | http.client.HTTPResponse) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream: (stream type, payload) pairs until EOF."""
    while True:
        header = _read_exact(reader, 8)
        if not header:
            return
        stream_type, size = STREAM_HEADER.unpack(header)
        yield stream_type, _read_exact(reader, size)


def _read_exact(reader: IO[bytes] | http.client.HTTPResponse, size: int) -> bytes:
    data = reader.read(size)
    if data is None:
        return b""
    while len(data) < size:
        more = reader.read(size - len(data))
        if not more:
            break
        data += more
    return data


def path_quote(ref: str) -> str:
    return quote(ref, safe="")


def autostart(client: Client) -> None:
    """Start a daemon in the background when none answers (unless LOGSHIP_NO_AUTOSTART=1)."""
    try:
        client.request("GET", "/_ping", timeout=5.0).read()
        return
    except DaemonUnreachable as err:
        if err.permission_denied:
            raise
    if os.environ.get(AUTOSTART_ENV, "") not in ("", "0"):
        raise DaemonUnreachable(
            f"Cannot connect to the logship daemon at {client.host}. Is the logship daemon running? "
            f"(automatic start is off because {AUTOSTART_ENV} is set)"
        )
    # The daemon's start-up errors land in a temporary file (not a pipe, which would break once we leave).
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this block when the start fails
    process = subprocess.Popen(
        [sys.executable, "-m", "logship", "daemon", "-H", client.host],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,
    )
    print(
        f"logship: no daemon answered on {client.host}; started one in the background (pid {process.pid})",
        file=sys.stderr,
    )
    deadline = time.monotonic() + AUTOSTART_WAIT_S
    while time.monotonic() < deadline:
        if client.ping(timeout=1.0):
            errors.close()
            return
        if process.poll() is not None:
            errors.seek(0)
            reason = errors.read().decode(errors="replace").strip()
            reason = reason or f"exit code {process.returncode}"
            raise DaemonUnreachable(f"the logship daemon failed to start: {reason}")
        time.sleep(0.05)
    raise DaemonUnreachable(f"started a logship daemon (pid {process.pid}) but it did not answer on {client.host}")
