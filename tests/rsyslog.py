"""A real rsyslog (Debian's `rsyslog`, and `rsyslog-gnutls` for TLS) for the syslog tests and benchmark,
never the system's: its own config, work directory and pid file in a temporary folder, listening on free
loopback ports (imudp, imtcp, and imtcp with TLS when asked) and on a unix socket of its own (imuxsock,
without the system socket), writing every message it receives with omfile and a template that keeps the
raw message (`%rawmsg%`): what a test reads back is what rsyslog got, minus the framing.

rsyslog's own change to a message, on by default and kept so that a test sees what a user's rsyslog
stores: control characters are written as `#` and three octal digits (a tab as `#011`, NUL as `#000`;
`rsyslog_escaped` does the same to the expected bytes). A datagram's final newline is kept
(`parser.dropTrailingLFOnReception` off), so it reads back as `#012`: a UDP message is checked whole.

    with Rsyslog(tmp_path) as server:      # or Rsyslog(tmp_path, tls=(cert, key, ca))
        server.tcp_address, server.udp_address, server.unix_address, server.tls_address
        server.wait_for(3)                 # [Received(input, raw bytes)], once there are 3
        server.restart(down_for=1.0)       # SIGTERM, wait, start again on the same ports
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ServerProcess

RSYSLOGD = "/usr/sbin/rsyslogd"
SEPARATOR = b"\n\x1e\x1e\n"  # after each message in the output file: a record separator the tests never send
_GNUTLS_MODULE = "lmnsd_gtls.so"


def rsyslog_problem(tls: bool = False) -> str:
    """Why a real rsyslog cannot run here ("" when it can)."""
    if not os.path.exists(RSYSLOGD):
        return "need Debian's rsyslog (run .ci/setup)"
    if tls and not list(Path("/usr/lib").glob(f"**/rsyslog/{_GNUTLS_MODULE}")):
        return "need Debian's rsyslog-gnutls for TLS (run .ci/setup)"
    return ""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    input: str  # "udp", "tcp", "tls" or "imuxsock"
    raw: bytes  # the message as rsyslog stored it, without framing


class Rsyslog(ServerProcess):
    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        tls: tuple[str, str, str] | None = None,  # server cert, key, and the CA its clients' certs come from
        max_message_size: str = "64k",
        fast_output: bool = False,  # buffered, asynchronous file writes (benchmarks); else each batch flushed
    ) -> None:
        self.workdir = Path(workdir)
        self.tls = tls
        self.max_message_size = max_message_size
        self.fast_output = fast_output
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.tcp_port = free_port()
        self.tls_port = free_port() if tls else 0
        self.unix_path = str(self.workdir / "log.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._pending = b""
        self._received: list[Received] = []

    @property
    def udp_address(self) -> str:
        return f"udp://127.0.0.1:{self.udp_port}"

    @property
    def tcp_address(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}"

    @property
    def tls_address(self) -> str:
        return f"tcp+tls://127.0.0.1:{self.tls_port}"

    @property
    def unix_address(self) -> str:
        return f"unixgram://{self.unix_path}"

    @property
    def output(self) -> Path:
        return self.workdir / "messages"

    @property
    def log_file(self) -> Path:
        return self.workdir / "rsyslogd.out"

    def config(self) -> str:
        work = self.workdir / "work"
        lines = [
            f'global(workDirectory="{work}" maxMessageSize="{self.max_message_size}"',
            '       parser.dropTrailingLFOnReception="off")',
            'module(load="imudp")',
            'module(load="imuxsock" SysSock.Use="off")',
            f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}" name="udp")',
            f'input(type="imuxsock" Socket="{self.unix_path}" CreatePath="on" UseSpecialParser="off")',
        ]
        lines.append('module(load="imtcp")')
        lines.append(f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}" name="tcp")')
        if self.tls is not None:
            cert, key, ca = self.tls
            # Mutual TLS: a client must show a certificate from `ca` (x509/certvalid).
            lines += [
                f'global(DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}"'
                f' DefaultNetstreamDriverKeyFile="{key}")',
                f'input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" name="tls" StreamDriver.Name="gtls"'
                ' StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")',
            ]
        lines += [
            'template(name="raw" type="list") {',
            '  property(name="inputname") constant(value=" ") property(name="rawmsg")',
            '  constant(value="\\n\\036\\036\\n")',
            "}",
            f'action(type="omfile" file="{self.output}" template="raw" {self._writing()})',
        ]
        return "\n".join(lines) + "\n"

    def _writing(self) -> str:
        if self.fast_output:
            return 'asyncWriting="on" ioBufferSize="1m" flushInterval="1" flushOnTXEnd="off"'
        return 'asyncWriting="off" flushOnTXEnd="on"'

    def start(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "work").mkdir(exist_ok=True)
        config = self.workdir / "rsyslog.conf"
        config.write_text(self.config())
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(config), "-i", str(self.workdir / "rsyslogd.pid")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited with {self.process.returncode}: {self._log_tail()}")
            if self._listening():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rsyslogd did not listen within {timeout:g}s: {self._log_tail()}")

    def _listening(self) -> bool:
        ports = [self.tcp_port] + ([self.tls_port] if self.tls else [])
        for port in ports:
            with socket.socket() as probe:
                probe.settimeout(1)
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    return False
        return os.path.exists(self.unix_path)

    # ---- what it stored ----

    @property
    def received(self) -> list[Received]:
        if self.output.exists():
            with self.output.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
            self._offset += len(data)
            *records, self._pending = (self._pending + data).split(SEPARATOR)
            for record in records:
                name, _, raw = record.partition(b" ")
                self._received.append(Received(name.decode(), raw))
        return list(self._received)

    def wait_until(self, condition: Callable[[list[Received]], bool], timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.received):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"waited {timeout:g}s for {what or 'messages'}; rsyslog stored {len(self._received)}; "
                    f"its output: {self._log_tail()}"
                )
            time.sleep(0.05)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        self.wait_until(lambda got: len(got) >= count, timeout, f"{count} messages")
        return self.received

    def _log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""


def rsyslog_escaped(message: bytes) -> bytes:
    """A message as rsyslog stores it: each control character (below 0x20) as `#ooo`, so a datagram's
    final newline reads `#012`."""
    return b"".join(b"#%03o" % byte if byte < 0x20 else bytes([byte]) for byte in message)
