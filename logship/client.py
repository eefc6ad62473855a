"""A small client for the daemon's API, for the CLI: over a unix socket, plain TCP, or TCP with TLS
(docker's `--tls`/`--tlsverify` rules, mutual TLS with a client certificate).

The CLI's start-up time is part of `logs --tail 10` latency, so this module imports little: HTTP is
`logship.http1` (not http.client, nor aiohttp, whose import alone costs more than the whole request),
and ssl, subprocess and tempfile are imported only by the paths that use them (a TLS daemon, starting
a daemon). Neither dataclasses (it imports inspect: ~10 ms), pathlib, typing nor urllib.parse (~3 ms each)
is imported on the way of a plain request.
"""

from __future__ import annotations

import _socket  # socket's C core: enough for a unix socket, while `socket` (enums, selectors) costs ~4 ms
import errno
import json
import os
import re
import struct
import sys
import time

from logship import API_VERSION, http1, paths

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; type checkers know the name
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path
    from typing import IO, Any

    from logship.http1 import Response

STREAM_HEADER = struct.Struct(">BxxxI")
STREAM_NOTICE = 4  # logship's frame type for a notice to the person reading `logs` (asked for with notices=1)
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW_STREAM = "application/vnd.docker.raw-stream"
AUTOSTART_ENV = "LOGSHIP_NO_AUTOSTART"
AUTOSTART_WAIT_S = 20.0
PLAIN_HTTP_REFUSED = "Client sent an HTTP request to an HTTPS server."
CERT_FILES_HINT = f"by default ca.pem, cert.pem and key.pem are read from ${paths.CERT_PATH_ENV} or ~/.logship"


def multiplexed(response: Response, tty: bool) -> bool:
    """Whether a logs or attach response is framed: as its Content-Type says (logship frames a tty
    container's logs for a client that takes notices), else as dockerd does, unless the container has a tty."""
    kind = response.getheader("Content-Type")
    return kind == MULTIPLEXED if kind in (MULTIPLEXED, RAW_STREAM) else not tty


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


class UnusableTLSFiles(Exception):
    """A CA, certificate or key file for talking TLS to the daemon cannot be used; the message names it.
    (The CLI's own class, not logship.tls.TLSFileError: catching that would import ssl for every command.)"""


class TLSOptions:
    """How to speak TLS to a tcp:// daemon. `verify`: check its certificate against `ca` (and its name);
    `cert`/`key`: our certificate, which a daemon with --tlsverify demands."""

    __slots__ = ("ca", "cert", "key", "verify")

    def __init__(self, verify: bool, ca: Path, cert: Path | None, key: Path | None) -> None:
        self.verify = verify
        self.ca = ca
        self.cert = cert
        self.key = key


def resolve_tls(use_tls: bool, verify: bool, ca: str | None, cert: str | None, key: str | None) -> TLSOptions | None:
    """docker's CLI rules: --tlsverify (or a non-empty $LOGSHIP_TLS_VERIFY) implies --tls; files not given
    come from $LOGSHIP_CERT_PATH or ~/.logship, and a default client certificate or key that does not exist
    is simply not sent. None: no TLS."""
    verify = verify or bool(os.environ.get(paths.TLS_VERIFY_ENV))
    if not (use_tls or verify):
        return None
    from pathlib import Path  # only here: TLS is rare, and pathlib costs every command's start-up

    folder = paths.default_cert_dir()

    def our(given: str | None, name: str) -> Path | None:
        if given:
            return Path(given)
        default = folder / name
        return default if default.exists() else None

    return TLSOptions(verify, Path(ca) if ca else folder / "ca.pem", our(cert, "cert.pem"), our(key, "key.pem"))


def _unreachable(host: str, err: OSError) -> DaemonUnreachable:
    if isinstance(err, http1.ProtocolError):
        return DaemonUnreachable(f"no usable answer from the logship daemon at {host}: {err}")
    if err.errno in (errno.EACCES, errno.EPERM):
        return DaemonUnreachable(
            f"permission denied while trying to connect to the logship daemon socket at {host}: "
            "add your user to the 'logship' group (sudo usermod -aG logship $USER, then log in again) "
            "or run the command with sudo",
            permission_denied=True,
        )
    if host.startswith("tcp://") and err.strerror:
        return DaemonUnreachable(
            f"Cannot connect to the logship daemon at {host}: {err.strerror}. Is the logship daemon running?"
        )
    return DaemonUnreachable(f"Cannot connect to the logship daemon at {host}. Is the logship daemon running?")


# Alerts a daemon sends when it does not accept our certificate (OpenSSL's names for them).
REJECTED_CERTIFICATE_ALERTS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_DECRYPT_ERROR",
    "ALERT_ACCESS_DENIED",
)
NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")


def _tls_failure(host: str, err: ssl.SSLError) -> DaemonUnreachable:
    """Say which side refused and what to change, instead of OpenSSL's reason code."""
    import ssl  # loaded already: only a TLS connection fails with an ssl.SSLError

    reason = err.reason or ""
    if isinstance(err, ssl.SSLCertVerificationError):
        return DaemonUnreachable(
            f"cannot connect to the logship daemon at {host}: we do not trust its TLS certificate "
            f"({err.verify_message}); give the CA that signed it with --tlscacert ({CERT_FILES_HINT})"
        )
    if reason.endswith("ALERT_CERTIFICATE_REQUIRED"):
        return DaemonUnreachable(
            f"the logship daemon at {host} refused the connection: it requires a TLS client certificate; "
            f"give one signed by the daemon's CA with --tlscert and --tlskey ({CERT_FILES_HINT})"
        )
    if reason.endswith(REJECTED_CERTIFICATE_ALERTS):
        return DaemonUnreachable(
            f"the logship daemon at {host} rejected our TLS client certificate ({_readable(reason)}): it accepts "
            "only certificates signed by its own CA (its --tlscacert); give one with --tlscert and --tlskey"
        )
    if reason in NOT_TLS_REASONS:
        return DaemonUnreachable(
            f"the logship daemon at {host} does not answer in TLS: if it serves plain TCP (--insecure-tcp), "
            f"drop --tls/--tlsverify and ${paths.TLS_VERIFY_ENV}"
        )
    return DaemonUnreachable(f"TLS with the logship daemon at {host} failed: {_readable(reason) or err}")


def _readable(reason: str) -> str:
    return reason.lower().replace("_", " ")


class Client:
    def __init__(
        self, host: str | None = None, tls_options: TLSOptions | None = None, start_daemon: bool = False
    ) -> None:
        """`host` defaults to $LOGSHIP_HOST or the default socket; `tls_options` apply to tcp:// hosts only.
        With `start_daemon`, the first connection that finds no daemon on a unix socket starts one (the
        CLI's habit; see `start_daemon`). Raises ValueError for a host that cannot be parsed and
        UnusableTLSFiles for unusable TLS files."""
        self.host = host or paths.host_from_env()
        self._may_start_daemon = start_daemon
        self.endpoint = paths.parse_host(self.host, tls=tls_options is not None)
        self._tls_context: ssl.SSLContext | None = None
        if isinstance(self.endpoint, paths.TcpHost) and tls_options is not None:
            from logship import tls  # only here: ssl's import is for TLS daemons alone

            try:
                self._tls_context = tls.client_context(
                    tls_options.ca if tls_options.verify else None, tls_options.cert, tls_options.key
                )
            except tls.TLSFileError as err:
                raise UnusableTLSFiles(f"{err} ({CERT_FILES_HINT})") from None

    @property
    def is_local(self) -> bool:
        """A unix socket: the only kind of daemon the CLI may start by itself."""
        return isinstance(self.endpoint, paths.UnixHost)

    def open_socket(self, timeout: float | None = None) -> _socket.socket:
        """A connected socket to the daemon, TLS handshake done; OSError (ssl.SSLError for TLS) otherwise."""
        if isinstance(self.endpoint, paths.UnixHost):
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(self.endpoint.socket_path)
            except OSError:
                sock.close()
                raise
            return sock
        import socket  # only here: see `_socket` above

        sock = socket.create_connection((self.endpoint.address, self.endpoint.port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # requests are small: never wait to send
        if self._tls_context is None:
            return sock
        from logship import tls  # imported by __init__ already, as the context came from it

        try:
            return tls.TLSSocket(sock, self._tls_context, self.endpoint.address)
        except OSError:
            sock.close()
            raise

    # ---- plumbing -------------------------------------------------------------------------------

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        url = f"/v{API_VERSION}{path}"
        if query:
            url += "?" + _query_string([(k, v) for k, v in query.items() if v is not None])
        return url

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send a request; return the response (its body still to read) for status < 400, raise APIError
        otherwise, and DaemonUnreachable when the connection fails. Bytes go out with a Content-Length,
        any other iterable of chunks streams with chunked encoding."""
        sock = self._connect(timeout)
        try:
            http1.send_request(sock, method, self._url(path, query), {"Host": "logship", **(headers or {})}, body)
            response = http1.read_response(sock, method)
            if response.status >= 400:
                raise self._refusal(response)
        except OSError as err:
            sock.close()
            raise self._unreachable(err) from None
        return response

    def json(self, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        response = self.request(method, path, query, data, headers)
        try:
            raw = response.read()
        except OSError as err:
            raise self._unreachable(err) from None
        return json.loads(raw) if raw else None

    def ping(self, timeout: float = 5.0) -> bool:
        try:
            self.request("GET", "/_ping", timeout=timeout).read()
            return True
        except DaemonUnreachable:
            return False

    def _connect(self, timeout: float | None = None) -> _socket.socket:
        """open_socket(), starting a daemon first if none answers and this client may. Starting one on
        demand, rather than asking `/_ping` before every command, saves each command a round trip."""
        try:
            return self.open_socket(timeout)
        except OSError as err:
            unreachable = self._unreachable(err)
        if not (self._may_start_daemon and self.is_local) or unreachable.permission_denied:
            raise unreachable
        self._may_start_daemon = False  # once: a daemon that did not come up is reported, not started again
        start_daemon(self)
        return self._connect(timeout)

    def _unreachable(self, err: OSError) -> DaemonUnreachable:
        if self._tls_context is not None:
            import ssl  # loaded already: the context is an ssl.SSLContext

            if isinstance(err, ssl.SSLError):
                return _tls_failure(self.host, err)
        return _unreachable(self.host, err)

    def _refusal(self, response: Response) -> Exception:
        """The exception for an error response: the daemon's message, or what to do about plain HTTP sent
        to a TLS daemon."""
        message = _message_of(response.read())
        if response.status == 400 and message == PLAIN_HTTP_REFUSED:
            return DaemonUnreachable(
                f"the logship daemon at {self.host} speaks TLS and we sent plain HTTP: add --tlsverify "
                f"(with --tlscacert, --tlscert, --tlskey) or set {paths.TLS_VERIFY_ENV}=1"
            )
        return APIError(response.status, message)

    # ---- streams --------------------------------------------------------------------------------

    def hijack(self, path: str, query: Mapping[str, Any], body: Any = None) -> tuple[_socket.socket, bytes]:
        """POST (with a JSON `body` if given) with `Connection: Upgrade` and take the raw socket over, as the
        docker CLI attaches. Returns the socket and any stream bytes that arrived with the response headers."""
        sock = self._connect()
        content_type = "application/json" if body is not None else "text/plain"
        headers = {"Host": "logship", "Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"}
        data = json.dumps(body).encode() if body is not None else None
        try:
            http1.send_request(sock, "POST", self._url(path, query), headers, data)
            reader = http1.SocketReader(sock)
            status, reason, response_headers = http1.read_head(reader)
            if status >= 400:
                raise self._refusal(http1.response_after_head(reader, "POST", status, reason, response_headers))
        except OSError as err:
            sock.close()
            raise self._unreachable(err) from None
        return sock, reader.take_buffered()


def _message_of(body: bytes) -> str:
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    except ValueError:
        pass
    return body.decode(errors="replace").strip() or "unknown error"


def iter_frames(reader: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream: (stream type, payload) pairs until EOF."""
    while True:
        header = _read_exact(reader, 8)
        if not header:
            return
        stream_type, size = STREAM_HEADER.unpack(header)
        yield stream_type, _read_exact(reader, size)


def _read_exact(reader: IO[bytes], size: int) -> bytes:
    data = reader.read(size)
    if data is None:
        return b""
    while len(data) < size:
        more = reader.read(size - len(data))
        if not more:
            break
        data += more
    return data


# What urllib.parse's quote() and urlencode() leave as they are. Names, ids and the CLI's query values are
# made of these, and then urllib.parse (~3 ms of start-up) is not imported.
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*")


def path_quote(ref: str) -> str:
    if _UNQUOTED.fullmatch(ref):
        return ref
    from urllib.parse import quote

    return quote(ref, safe="")


def _query_string(items: list[tuple[str, Any]]) -> str:
    """urlencode(items, doseq=True)."""
    if all(isinstance(v, str) and _UNQUOTED.fullmatch(k) and _UNQUOTED.fullmatch(v) for k, v in items):
        return "&".join(f"{k}={v}" for k, v in items)
    from urllib.parse import urlencode

    return urlencode(items, doseq=True)


def start_daemon(client: Client) -> None:
    """Start a daemon in the background for a unix socket where none answers, and wait until it does
    (unless LOGSHIP_NO_AUTOSTART=1). A tcp:// daemon is another machine's business: never started here."""
    if os.environ.get(AUTOSTART_ENV, "") not in ("", "0"):
        raise DaemonUnreachable(
            f"Cannot connect to the logship daemon at {client.host}. Is the logship daemon running? "
            f"(automatic start is off because {AUTOSTART_ENV} is set)"
        )
    import subprocess  # only here: most commands find a daemon, and start faster without these imports
    import tempfile

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
