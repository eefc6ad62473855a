"""The CLI's HTTP/1.1 client (`logship.http1`) against scripted peers on a socket pair: every body framing
a daemon may answer with, streaming without waiting for more than is there, and broken answers."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest

from logship.http1 import ProtocolError, Response, read_response, send_request

Pair = tuple[socket.socket, socket.socket]  # ours, the peer's
NO_HANG_S = 10.0  # a read that would wait for bytes the peer never sends fails instead of hanging the suite


@pytest.fixture
def pair() -> Iterator[Pair]:
    ours, peer = socket.socketpair()
    ours.settimeout(NO_HANG_S)
    peer.settimeout(NO_HANG_S)
    yield ours, peer
    ours.close()
    peer.close()


def answer(pair: Pair, raw: bytes, method: str = "GET") -> Response:
    ours, peer = pair
    peer.sendall(raw)
    peer.shutdown(socket.SHUT_WR)
    return read_response(ours, method)


def test_a_content_length_body_is_read_exactly_and_headers_are_case_insensitive(pair: Pair) -> None:
    response = answer(pair, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello")
    assert (response.status, response.reason) == (200, "OK")
    assert response.getheader("content-type") == response.getheader("Content-Type") == "application/json"
    assert response.getheader("X-Missing", "none") == "none"
    assert response.read() == b"hello"
    assert response.read() == b""


def test_a_chunked_body_loses_its_framing_extensions_and_trailers(pair: Pair) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6;name=value\r\nhello \r\n"
        b"5\r\nworld\r\n"
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    assert answer(pair, raw).read() == b"hello world"


def test_a_chunked_body_is_read_line_by_line_and_through_a_text_wrapper(pair: Pair) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na\nb\n\r\n3\r\nc\nd\r\n0\r\n\r\n"
    assert list(answer(pair, raw)) == [b"a\n", b"b\n", b"c\n", b"d"]
    other, peer = socket.socketpair()
    with other, peer:
        text = io.TextIOWrapper(answer((other, peer), raw), encoding="utf-8")
        assert text.read() == "a\nb\nc\nd"


def test_a_body_without_length_ends_with_the_connection(pair: Pair) -> None:
    assert answer(pair, b"HTTP/1.1 200 OK\r\n\r\nuntil the end").read() == b"until the end"


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE"),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", "POST"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD"),
    ],
)
def test_answers_that_have_no_body_by_definition_read_as_empty(pair: Pair, raw: bytes, method: str) -> None:
    assert answer(pair, raw, method).read() == b""


def test_100_continue_is_skipped(pair: Pair) -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
    response = answer(pair, raw, "POST")
    assert (response.status, response.read()) == (201, b"{}")


def test_a_streamed_chunk_is_handed_out_before_the_next_one_is_sent(pair: Pair) -> None:
    """`logs -f`: a chunk already received must not wait for more bytes (the peer sends nothing more until
    the first chunk has been read; a client that waits would fail with a timeout here)."""
    ours, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n")
    response = read_response(ours)
    assert response.read1(1 << 20) == b"one"
    peer.sendall(b"3\r\ntwo\r\n")
    assert response.read1(1 << 20) == b"two"
    peer.sendall(b"0\r\n\r\n")
    assert response.read1(1 << 20) == b""


def test_the_connection_is_closed_once_the_body_has_been_read(pair: Pair) -> None:
    ours = pair[0]
    response = answer(pair, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert response.read() == b"ok"
    assert ours.fileno() == -1


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"", "closed before a response came"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1.1 response"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
    ],
)
def test_a_head_that_is_not_http_is_a_protocol_error(pair: Pair, raw: bytes, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        answer(pair, raw)


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed in the middle of a response"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "closed in the middle of a response"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", "longer than its size"),
    ],
)
def test_a_body_cut_short_or_framed_wrongly_is_a_protocol_error(pair: Pair, raw: bytes, complaint: str) -> None:
    response = answer(pair, raw)
    with pytest.raises(ProtocolError, match=complaint):
        response.read()


def test_a_protocol_error_is_a_connection_error() -> None:
    assert issubclass(ProtocolError, ConnectionError)


def received_request(peer: socket.socket) -> bytes:
    data = b""
    while chunk := peer.recv(65536):
        data += chunk
    return data


def test_a_bytes_body_goes_out_with_its_length(pair: Pair) -> None:
    ours, peer = pair
    send_request(ours, "POST", "/v1.47/containers/create?name=x", {"Host": "logship"}, b'{"Image":"busybox"}')
    ours.shutdown(socket.SHUT_WR)
    assert received_request(peer) == (
        b"POST /v1.47/containers/create?name=x HTTP/1.1\r\nHost: logship\r\nContent-Length: 19\r\n\r\n"
        b'{"Image":"busybox"}'
    )


def test_a_post_without_body_says_its_length_is_zero_and_a_get_says_nothing(pair: Pair) -> None:
    ours, peer = pair
    send_request(ours, "POST", "/start", {"Host": "logship"})
    send_request(ours, "GET", "/json", {"Host": "logship"})
    ours.shutdown(socket.SHUT_WR)
    assert received_request(peer) == (
        b"POST /start HTTP/1.1\r\nHost: logship\r\nContent-Length: 0\r\n\r\nGET /json HTTP/1.1\r\nHost: logship\r\n\r\n"
    )


def test_an_iterable_body_streams_in_chunks_and_skips_empty_ones(pair: Pair) -> None:
    ours, peer = pair
    send_request(ours, "POST", "/images/load", {"Host": "logship"}, iter([b"tar", b"", b"ball" * 10]))
    ours.shutdown(socket.SHUT_WR)
    assert received_request(peer) == (
        b"POST /images/load HTTP/1.1\r\nHost: logship\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\ntar\r\n28\r\n" + b"ball" * 10 + b"\r\n0\r\n\r\n"
    )
