"""PEM files → `ssl.SSLContext`s for the daemon's tcp:// hosts and for the CLI, with errors naming the file.

The ssl module's own errors say little ("[SSL] PEM lib", or a bare "No such file or directory" without the
file), so every file is read and recognised first. Both ends require TLS 1.2 or newer, and trust only the
CA they are given, never the system's CAs: a certificate is good because the operator's CA signed it.
Stdlib only: the CLI imports this.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

CERTIFICATE_MARKER = b"-----BEGIN CERTIFICATE-----"
KEY_MARKER = b"PRIVATE KEY-----"
RECORD_READ_SIZE = 64 * 1024


class TLSFileError(Exception):
    """A certificate, key or CA file cannot be used; the message names the file and what to do."""


def server_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """The daemon's context: it shows `cert`; with `client_ca`, it also demands a client certificate signed
    by that CA (mutual TLS, `--tlsverify`), and without it accepts any client (`--tls` alone)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_key_pair(context, cert, key, "--tlscert", "--tlskey")
    if client_ca is not None:
        _load_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """The CLI's context: with `ca` the daemon's certificate must be signed by it and name the host we
    dial; without it (`--tls` alone) the daemon is not checked. `cert`/`key` are shown when asked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        _load_ca(context, ca)
    if cert is not None and key is not None:
        _load_key_pair(context, cert, key, "--tlscert", "--tlskey")
    elif cert is not None or key is not None:
        given, missing = ("--tlscert", "--tlskey") if cert is not None else ("--tlskey", "--tlscert")
        raise TLSFileError(f"{given} was given without {missing}: a client certificate needs both")
    return context


def _read_pem(path: Path, what: str, flag: str, marker: bytes) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TLSFileError(f"cannot read the TLS {what} {path}: {err.strerror} (check {flag})") from None
    if marker not in data:
        raise TLSFileError(
            f"{path} is not a PEM {what}: no line ending in {marker.decode()!r} (check {flag}; "
            "a DER file converts with `openssl x509 -inform der` or `openssl pkey -inform der`)"
        )
    return data


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    _read_pem(ca, "CA certificate", "--tlscacert", CERTIFICATE_MARKER)
    try:
        context.load_verify_locations(cafile=ca)
    except ssl.SSLError as err:
        raise TLSFileError(f"cannot load the TLS CA certificate {ca}: {err.reason or err}") from None


def _load_key_pair(context: ssl.SSLContext, cert: Path, key: Path, cert_flag: str, key_flag: str) -> None:
    _read_pem(cert, "certificate", cert_flag, CERTIFICATE_MARKER)
    key_data = _read_pem(key, "private key", key_flag, KEY_MARKER)
    if b"ENCRYPTED" in key_data:
        raise TLSFileError(
            f"the TLS private key {key} is protected by a passphrase, which logship cannot ask for: "
            f"decrypt it with `openssl pkey -in {key} -out <new file>` and keep that file private"
        )
    try:
        # A password callback that refuses keeps OpenSSL from prompting on the terminal.
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as err:
        if err.reason == "KEY_VALUES_MISMATCH":
            raise TLSFileError(f"the TLS private key {key} does not belong to the certificate {cert}") from None
        raise TLSFileError(f"cannot load the TLS certificate {cert} with key {key}: {err.reason or err}") from None


def _no_passphrase() -> bytes:
    raise TLSFileError("the TLS private key is protected by a passphrase, which logship cannot ask for")


class TLSSocket(socket.socket):
    """A client's TLS connection that one thread may read while another writes, as an attach does
    (output to our terminal one way, our stdin the other).

    ssl.SSLSocket is not safe for that: OpenSSL must not run for one connection in two threads at once.
    Here TLS runs over `ssl.MemoryBIO`s, every OpenSSL call is made under a lock, and only the waits on the
    network happen outside it. `shutdown(SHUT_WR)` sends close_notify and reading goes on: the way the
    docker CLI tells the daemon that stdin has ended.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str) -> None:
        timeout = sock.gettimeout()
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.settimeout(timeout)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._tls_lock = threading.Lock()  # guards self._tls and both BIOs
        self._send_lock = threading.Lock()  # keeps TLS records in order on the wire
        self._handshake()

    def _handshake(self) -> None:
        while True:
            with self._tls_lock:
                try:
                    self._tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
            self._send_records()
            if done:
                return
            self._receive_records()

    def _send_records(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                records = self._outgoing.read()
            if records:
                super().sendall(records)

    def _receive_records(self) -> None:
        data = super().recv(RECORD_READ_SIZE)
        with self._tls_lock:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        while True:
            with self._tls_lock:
                try:
                    data: bytes | None = self._tls.read(bufsize)
                except ssl.SSLWantReadError:
                    data = None
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    data = b""  # the daemon closed, with or without close_notify: the end of the stream
                answer_pending = self._outgoing.pending > 0  # e.g. a TLS 1.3 key update to acknowledge
            if answer_pending:
                self._send_records()
            if data is not None:
                return data
            self._receive_records()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        with self._send_lock:
            with self._tls_lock:
                self._tls.write(bytes(data))
                records = self._outgoing.read()
            super().sendall(records)

    def send(self, data: Any, flags: int = 0) -> int:
        self.sendall(data)
        return len(data)

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_RD:
            super().shutdown(how)
            return
        with self._tls_lock:
            try:
                self._tls.unwrap()
            except ssl.SSLWantReadError:
                pass  # close_notify is on its way; the daemon's answer to it will come with its last output
        self._send_records()
