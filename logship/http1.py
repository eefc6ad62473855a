"""HTTP/1.1 on a socket that is already connected (unix, TCP or TLS): write one request, read its response.

The CLI's client speaks this instead of using http.client, whose imports (the email package parses its
headers) cost more start-up time than a whole `logship logs --tail 10` request. Only what talking to
logship's daemon (or dockerd) needs: Content-Length and chunked bodies both ways, responses without a
body (1xx, 204, 304, HEAD), bodies that end when the connection closes, and reading a body as a stream.

A `Response` is a buffered binary file over its body (read, read1, readline, iteration, io.TextIOWrapper)
with `status` and `getheader()`. One request per connection: the socket is closed once the body has been
read to its end, or by `close()`.
"""

from __future__ import annotations

import io

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms of the CLI's start-up)
if TYPE_CHECKING:
    import _socket
    from collections.abc import Iterable, Mapping
    from typing import Any

MAX_HEAD_LINE = 64 * 1024  # longer status or header lines are not from a daemon we can talk to
MAX_HEADERS = 100
RECV_SIZE = 64 * 1024
SMALL_BODY = 64 * 1024  # a bytes body up to this size goes out in one write with the head


class ProtocolError(ConnectionError):
    """The peer's answer is not HTTP/1.1 we can read, or the connection ended in the middle of it.
    A ConnectionError, so callers handle it as the broken connection it amounts to."""


def send_request(
    sock: _socket.socket,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | Iterable[bytes] | None = None,
) -> None:
    """Write a request: a bytes body with its Content-Length, any other iterable of chunks with chunked
    transfer encoding (so an upload of unknown size streams), no body with none."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if isinstance(body, bytes):
        lines.append(f"Content-Length: {len(body)}")
    elif body is not None:
        lines.append("Transfer-Encoding: chunked")
    elif method in ("POST", "PUT"):
        lines.append("Content-Length: 0")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is None:
        sock.sendall(head)
    elif isinstance(body, bytes):
        if len(body) <= SMALL_BODY:
            sock.sendall(head + body)
        else:
            sock.sendall(head)
            sock.sendall(body)
    else:
        sock.sendall(head)
        for chunk in body:
            if chunk:  # an empty chunk would end the body
                sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")


def read_response(sock: _socket.socket, method: str = "GET") -> Response:
    """Read the status line and headers (skipping `100 Continue`s); the body is read as it is consumed."""
    reader = SocketReader(sock)
    while True:
        status, reason, headers = read_head(reader)
        if status != 100:
            break
    return response_after_head(reader, method, status, reason, headers)


def response_after_head(
    reader: SocketReader, method: str, status: int, reason: str, headers: dict[str, str]
) -> Response:
    """The response whose head `reader` has just read, its body still to come."""
    return Response(_Body(reader, _body_framing(method, status, headers)), status, reason, headers)


class SocketReader:
    """Reads a socket through a small buffer of its own: lines for heads and chunk sizes, and bodies.

    Not socket.makefile(): its buffered reader, asked for more than it holds, waits for the socket even
    when it already has bytes to give, which would hold back a streamed body (`logs -f`).
    """

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()

    def read_line(self) -> str:
        """One line without its line ending; "" for an empty line. ProtocolError at the end of the stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line.rstrip(b"\r").decode("latin-1")
            if len(self._buffer) > MAX_HEAD_LINE:
                raise ProtocolError(f"a line of a response is longer than {MAX_HEAD_LINE} bytes")
            data = self.sock.recv(RECV_SIZE)
            if not data:
                raise ProtocolError("the connection was closed in the middle of a response")
            self._buffer += data

    def readinto(self, view: memoryview) -> int:
        """Bytes already buffered if there are any, else one read from the socket; 0 at its end."""
        if self._buffer:
            count = min(len(view), len(self._buffer))
            view[:count] = self._buffer[:count]
            del self._buffer[:count]
            return count
        return self.sock.recv_into(view)

    def take_buffered(self) -> bytes:
        """What was read past the last line: the first bytes of a hijacked stream."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def read_head(reader: SocketReader) -> tuple[int, str, dict[str, str]]:
    """A response's status code, reason and headers (names in lower case)."""
    try:
        status_line = reader.read_line()
    except ProtocolError:
        raise ProtocolError("the connection was closed before a response came") from None
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.1 response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while line := reader.read_line():
        if len(headers) >= MAX_HEADERS:
            raise ProtocolError(f"more than {MAX_HEADERS} header lines in a response")
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError(f"malformed header line in a response: {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        # Repeated headers are joined as one comma-separated value (RFC 9110 5.3).
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(code), reason.strip(), headers


CHUNKED = -1  # framing: chunked transfer encoding
UNTIL_CLOSE = -2  # framing: the body ends when the connection does


def _body_framing(method: str, status: int, headers: Mapping[str, str]) -> int:
    """The body's length, or CHUNKED or UNTIL_CLOSE (RFC 9112 6.3)."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return CHUNKED
    length = headers.get("content-length")
    if length is None:
        return UNTIL_CLOSE
    if not length.isdigit():
        raise ProtocolError(f"invalid Content-Length in a response: {length[:40]!r}")
    return int(length)


class _Body(io.RawIOBase):
    """The bytes of a response body, with chunked framing taken off. Each `readinto` makes at most one
    read from the socket, so a streamed body (`logs -f`) hands out data as soon as it arrives."""

    def __init__(self, reader: SocketReader, framing: int) -> None:
        self._reader = reader
        self._chunked = framing == CHUNKED
        self._until_close = framing == UNTIL_CLOSE
        self._left = 0 if framing < 0 else framing  # of the body, or of the current chunk when chunked
        self._chunk_ended = False  # a chunk's data was read; its CRLF is still to come
        self._done = False
        if framing == 0:
            self._finish()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        if not view:
            return 0
        if self._until_close:
            count = self._reader.readinto(view)
            if not count:
                self._finish()
            return count
        if self._chunked and not self._left:
            self._left = self._next_chunk_size()
            if not self._left:
                self._finish()
                return 0
        count = self._reader.readinto(view[: self._left])
        if not count:
            raise ProtocolError("the connection was closed in the middle of a response")
        self._left -= count
        if not self._left:
            if self._chunked:
                self._chunk_ended = True
            else:
                self._finish()
        return count

    def readall(self) -> bytes:
        parts = []
        while data := self.read(RECV_SIZE):  # larger reads than io's default 8 KiB
            parts.append(data)
        return b"".join(parts)

    def _next_chunk_size(self) -> int:
        if self._chunk_ended and self._reader.read_line():
            raise ProtocolError("a chunk of a response is longer than its size says")
        self._chunk_ended = False
        line = self._reader.read_line()
        size = line.partition(";")[0].strip()  # chunk extensions are allowed and mean nothing here
        if not size or any(c not in "0123456789abcdefABCDEF" for c in size):
            raise ProtocolError(f"invalid chunk size in a response: {line[:40]!r}")
        value = int(size, 16)
        if not value:
            while self._reader.read_line():  # trailer fields, up to the empty line that ends the body
                pass
        return value

    def _finish(self) -> None:
        """The body is complete: the connection has done its job (one request per connection)."""
        self._done = True
        self._reader.sock.close()

    def close(self) -> None:
        self._reader.sock.close()
        super().close()


class Response(io.BufferedReader):
    """A response: `status`, `reason`, `getheader()`, and its body as a buffered binary file."""

    def __init__(self, body: _Body, status: int, reason: str, headers: dict[str, str]) -> None:
        super().__init__(body)
        self.status = status
        self.reason = reason
        self.headers = headers  # names in lower case

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)
