"""A real Fluentd for the tests and benchmarks: the upstream Fluentd 1.14.4 of `../shared/peers` running on
Debian's Ruby gems (`.ci/setup` installs them when that folder is there), and the fixture glue that falls
back to the in-process receiver (tests/fluentd_receiver.py) where it is absent, e.g. on a user's clone.

`RealFluentd` writes a config (a `forward` source on a loopback port, TLS when asked, or a `unix` source;
every event written by the `file` output as one JSON line with its tag and nanosecond time), starts
`fluentd --no-supervisor`, waits until it says it is running, and reads the events back from that file.
`stop()` is a SIGTERM (Fluentd flushes its buffer, then exits); `restart(down_for)` stops it, waits and
starts it again on the same port or socket, as an operator restarting Fluentd mid-stream would; `kill()`
is a crash (SIGKILL: what Fluentd buffered in memory is lost, as it would be).

Both servers offer the same small interface (`FluentdServer`), so a test reads the same either way:

    server.address             # for --log-opt fluentd-address=...
    server.wait_for(3)         # every event so far, once there are at least 3; each has .tag .time_ns .record
    server.values("log")       # record["log"] of every event, in arrival order
    server.event_count, server.events, server.wait_until(condition, timeout, what=...)
    server.restart(down_for=1.0), server.stop(), server.start()
    server.problems()          # what the server found wrong: protocol errors, or Fluentd's warnings/errors

The peers folder is `$LOGSHIP_PEERS` when set, else `shared/peers` beside the repository (where CI lays
`shared/`). Only its `fluentd-1.14.4` is used; the suite never reads anything else from `../shared`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from tests.fluentd_receiver import ForwardReceiver
from tests.servers import ServerProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
FLUENTD_FOLDER = "fluentd-1.14.4"
RUBY = "ruby"
# The gems fluentd 1.14.4 requires at start-up, from Debian (the peers README's list).
REQUIRED_GEMS = ("msgpack", "cool.io", "serverengine", "yajl", "sigdump", "tzinfo", "strptime", "webrick")
# Fluentd log lines that are not problems with what it was sent: notices, the advice to protect a test
# key with a passphrase, and clients that gave up a TLS handshake (the tests' untrusting clients; the
# in-process receiver counts those apart from protocol errors too).
_HARMLESS = (
    "[info]",
    "[debug]",
    "[trace]",
    "setting private_key_passphrase is recommended",
    "before accepting TLS connection",
)


def peers_dir() -> Path:
    """`$LOGSHIP_PEERS`, else `shared/peers` beside the repository; in a git worktree (whose `.git` is a
    file naming `<main checkout>/.git/worktrees/<name>`), beside the main checkout."""
    override = os.environ.get("LOGSHIP_PEERS")
    if override:
        return Path(override)
    beside = REPO_ROOT.parent / "shared" / "peers"
    git = REPO_ROOT / ".git"
    if not beside.exists() and git.is_file():
        gitdir = Path(git.read_text().removeprefix("gitdir:").strip())
        if gitdir.parent.name == "worktrees":
            return gitdir.parent.parent.parent.parent / "shared" / "peers"
    return beside


def fluentd_home() -> Path:
    return peers_dir() / FLUENTD_FOLDER


@cache
def real_fluentd_problem() -> str:
    """Why the real Fluentd cannot run here ("" when it can)."""
    home = fluentd_home()
    if not (home / "bin" / "fluentd").is_file():
        return f"{home} is absent (set LOGSHIP_PEERS to the folder holding {FLUENTD_FOLDER})"
    if shutil.which(RUBY) is None:
        return f"{home} is there but ruby is not installed (run .ci/setup)"
    requires = "; ".join(f"require '{gem}'" for gem in REQUIRED_GEMS)
    checked = subprocess.run([RUBY, "-e", requires], capture_output=True, text=True)
    if checked.returncode != 0:
        return f"Debian's Ruby gems for {FLUENTD_FOLDER} are missing (run .ci/setup): {checked.stderr.strip()[-300:]}"
    return ""


def fluentd_kind() -> str:
    """Which server the fluentd tests use, and why, in one line."""
    problem = real_fluentd_problem()
    if not problem:
        return f"real Fluentd 1.14.4 ({fluentd_home()})"
    return f"in-process receiver tests/fluentd_receiver.py (no real Fluentd: {problem})"


class ReceivedEvent(Protocol):
    """What both servers say about an event."""

    @property
    def tag(self) -> str: ...

    @property
    def time_ns(self) -> int: ...

    @property
    def record(self) -> dict[str, Any]: ...


class FluentdServer(Protocol):
    """The interface tests use, met by RealFluentd and by tests/fluentd_receiver.ForwardReceiver."""

    @property
    def address(self) -> str: ...

    @property
    def events(self) -> list[Any]: ...

    @property
    def event_count(self) -> int: ...

    def start(self) -> None: ...

    def values(self, key: str) -> list[Any]: ...

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = 10.0, *, what: str = "a condition"
    ) -> None: ...

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]: ...


def problems_of(server: FluentdServer) -> list[str]:
    """What a server found wrong with what it was sent: the receiver's protocol errors, Fluentd's own
    warnings and errors."""
    if isinstance(server, RealFluentd):
        return server.problems()
    if isinstance(server, ForwardReceiver):
        return server.protocol_errors
    return []


def new_fluentd_server(
    workdir: Path,
    *,
    unix_path: str | os.PathLike[str] | None = None,
    tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> FluentdServer:
    """The real Fluentd when it can run here, else the in-process receiver; not started."""
    if not real_fluentd_problem():
        return RealFluentd(workdir, unix_path=unix_path, tls=tls)
    return ForwardReceiver(unix_path=unix_path, tls=tls)


@dataclass(frozen=True)
class Record:
    """One event as Fluentd's file output wrote it."""

    tag: str
    time_ns: int
    record: dict[str, Any]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


# Keys Fluentd's `inject` adds to each written record; chosen so that no Docker record field is overwritten.
TAG_KEY = "__fluentd_tag"
TIME_KEY = "__fluentd_time_ns"


class RealFluentd(ServerProcess):
    """Fluentd 1.14.4 from the peers folder, listening on a loopback port (optionally TLS) or a unix socket."""

    kind = "real Fluentd 1.14.4"

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        unix_path: str | os.PathLike[str] | None = None,
        tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        flush_interval: float = 0.1,
    ) -> None:
        if unix_path is not None and tls is not None:
            raise ValueError("a fluentd unix socket address cannot use TLS: give unix_path or tls, not both")
        self.workdir = Path(workdir)
        self._unix_path = os.fspath(unix_path) if unix_path is not None else None
        self._tls = (os.fspath(tls[0]), os.fspath(tls[1])) if tls is not None else None
        self._host = host
        self._port = port or (free_port(host) if unix_path is None else 0)  # known before start()
        self._flush_interval = flush_interval
        self.process: subprocess.Popen[bytes] | None = None
        self._records: list[Record] = []
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}

    # ---- address and lifecycle ----

    @property
    def address(self) -> str:
        if self._unix_path is not None:
            return f"unix://{self._unix_path}"
        return f"{'tls' if self._tls else 'tcp'}://{self._host}:{self._port}"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "output"

    @property
    def log_file(self) -> Path:
        return self.workdir / "fluentd.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start Fluentd and wait until it listens. Does nothing if it runs already."""
        if self.process is not None and self.process.poll() is None:
            return
        problem = real_fluentd_problem()
        if problem:
            raise RuntimeError(f"cannot start the real Fluentd: {problem}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(exist_ok=True)
        if self._unix_path is not None and os.path.exists(self._unix_path):
            os.unlink(self._unix_path)
        config = self.workdir / "fluent.conf"
        config.write_text(self._config())
        mark = self.log_file.stat().st_size if self.log_file.exists() else 0
        home = fluentd_home()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [RUBY, "-I", str(home / "lib"), str(home / "bin" / "fluentd"), "-c", str(config), "--no-supervisor"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C of the test run is not delivered to it twice
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Fluentd exited with {self.process.returncode}: {self._log_tail(mark)}")
            if b"is now running" in self._log_since(mark) and self._answers():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"Fluentd did not start within {timeout:g}s: {self._log_tail(mark)}")

    # ---- results ----

    @property
    def events(self) -> list[Record]:
        """Every event written so far, in the order Fluentd wrote them."""
        self._read_output()
        return list(self._records)

    @property
    def event_count(self) -> int:
        self._read_output()
        return len(self._records)

    def values(self, key: str) -> list[Any]:
        return [event.record[key] for event in self.events]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0, *, what: str = "a condition") -> None:
        """Poll until `condition()` holds (each check reads what Fluentd wrote since); TimeoutError after
        `timeout`. Fluentd writes its buffer every flush interval (0.1 s)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout}s for {what}; {self.summary()}")
            time.sleep(0.05)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Record]:
        self.wait_until(lambda: self.event_count >= count, timeout, what=f"{count} events")
        return self.events

    def wait_for_count(self, count: int, timeout: float = 10.0) -> int:
        self.wait_until(lambda: self.event_count >= count, timeout, what=f"{count} events")
        return self.event_count

    def lines_written(self) -> int:
        """How many events the output files hold, counted without decoding them (for benchmarks)."""
        return sum(_count_lines(path) for path in self.output_dir.glob("events*"))

    def problems(self) -> list[str]:
        """Fluentd's warnings and errors (its log lines above info), e.g. a request it could not decode."""
        if not self.log_file.exists():
            return []
        lines = self.log_file.read_text(errors="replace").splitlines()
        return [line for line in lines if "]: " in line and not any(level in line for level in _HARMLESS)]

    def summary(self) -> str:
        state = "running" if self.process is not None and self.process.poll() is None else "stopped"
        return f"{len(self._records)} events written, Fluentd {state}; its log ends: {self._log_tail(0)}"

    # ---- internals ----

    def _config(self) -> str:
        if self._unix_path is not None:
            source = f"<source>\n  @type unix\n  path {self._unix_path}\n</source>\n"
        else:
            transport = ""
            if self._tls is not None:
                cert, key = self._tls
                transport = f"  <transport tls>\n    cert_path {cert}\n    private_key_path {key}\n  </transport>\n"
            source = f"<source>\n  @type forward\n  bind {self._host}\n  port {self._port}\n{transport}</source>\n"
        return source + (
            "<match **>\n"
            "  @type file\n"
            f"  path {self.output_dir}/events\n"
            "  append true\n"
            "  add_path_suffix false\n"
            "  <format>\n    @type json\n  </format>\n"
            f"  <inject>\n    tag_key {TAG_KEY}\n    time_key {TIME_KEY}\n    time_type unixtime_nanos\n  </inject>\n"
            "  <buffer>\n    @type memory\n    flush_mode interval\n"
            f"    flush_interval {self._flush_interval}\n    chunk_limit_size 8m\n    total_limit_size 1g\n"
            "  </buffer>\n"
            "</match>\n"
            # Fluentd's own log stays in its log file, out of the events.
            "<label @FLUENT_LOG>\n  <match **>\n    @type null\n  </match>\n</label>\n"
        )

    def _answers(self) -> bool:
        family = socket.AF_UNIX if self._unix_path is not None else socket.AF_INET
        target: Any = self._unix_path if self._unix_path is not None else (self._host, self._port)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(2.0)
            try:
                probe.connect(target)
                if self._tls is not None:  # a whole handshake, or Fluentd logs a client that gave up on one
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    context.wrap_socket(probe).unwrap()  # with close_notify: a clean goodbye
            except OSError:
                return False
        return True

    def _read_output(self) -> None:
        """Parse the complete JSON lines added to the output file(s) since the last read. The file output
        adds a date to the path, so a run over midnight has two files: read in name order."""
        for path in sorted(self.output_dir.glob("events*")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as file:
                file.seek(offset)
                data = file.read()
            if not data:
                continue
            self._offsets[path] = offset + len(data)
            data = self._partial.pop(path, b"") + data
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[path] = rest
            for line in lines:
                item = json.loads(line)
                tag, time_ns = item.pop(TAG_KEY), item.pop(TIME_KEY)
                self._records.append(Record(tag, int(time_ns), item))

    def _log_since(self, offset: int) -> bytes:
        if not self.log_file.exists():
            return b""
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return log.read()

    def _log_tail(self, offset: int) -> str:
        return self._log_since(offset)[-2000:].decode(errors="replace")


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as file:
        while block := file.read(1 << 22):
            count += block.count(b"\n")
    return count
