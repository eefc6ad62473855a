"""A real logship daemon on a temporary socket and data root, driven through the real CLI.

`Daemon` starts `logship daemon` as a subprocess, waits until it answers, and on `stop()` terminates it
(which stops its containers) and then kills anything still running under its data root, so no test
leaves a process behind.
"""

from __future__ import annotations

import http.client
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.rootfs import build_busybox_rootfs

LOGSHIP = [sys.executable, "-m", "logship"]
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
needs_docker = pytest.mark.skipif(not os.path.exists(DOCKER), reason=f"the docker CLI is not installed ({DOCKER})")


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")


@dataclass
class Daemon:
    root: Path
    config: dict[str, Any] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # for the daemon (e.g. SSL_CERT_FILE)
    # The default bridge network, as users get it. Off unless a test asks (its tests are test_networks.py and
    # test_compose_networks.py): a bridged start costs netavark's setup and teardown (about 0.15 s), which the
    # suite's hundreds of logging tests would pay for nothing; they run with "bridge": "none" as before.
    bridge: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def logship(self) -> list[str]:
        """The command that runs logship (the daemon and the CLI): as root here; as another user in
        tests/rootless.py."""
        return LOGSHIP

    @property
    def daemon_command(self) -> list[str]:
        """What `daemon` and its flags follow when the daemon starts (logship's command, by default)."""
        return self.logship

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "logship.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def config_file(self) -> Path:
        return self.root / "daemon.json"

    @property
    def stderr_file(self) -> Path:
        return self.root / "daemon.stderr"

    @property
    def log_file(self) -> Path:
        return self.data_root / "daemon.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LOGSHIP_NO_AUTOSTART"] = "1"
        env["LOGSHIP_HOST"] = self.host
        return env

    def start(self, timeout: float = 20.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.config if self.bridge or "bridge" in self.config else {"bridge": "none", **self.config}
        self.config_file.write_text(json.dumps(config))
        args = [
            *self.daemon_command,
            "daemon",
            "-H",
            self.host,
            "--data-root",
            str(self.data_root),
            "--config-file",
            str(self.config_file),
            *self.extra_args,
        ]
        # A file, not a pipe: nobody reads a pipe while tests run, and a full one would block the daemon.
        with self.stderr_file.open("ab") as stderr:
            self.process = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=stderr, env={**self.env(), **self.extra_env}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.stderr_file.read_text(errors='replace')}")
            if self.socket.exists() and self.cli("version").code == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("daemon did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        kill_processes_under(self.data_root)

    @contextmanager
    def started(self) -> Iterator[Daemon]:
        """Started, with the busybox image imported; stopped on leaving (whatever happened inside)."""
        self.start()
        try:
            self.import_busybox()
            yield self
        finally:
            self.stop()

    def kill9(self) -> None:
        """A crash: the daemon dies at once, its containers keep running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60.0) -> Result:
        completed = subprocess.run(
            [*self.logship, *args], input=input, capture_output=True, env=self.env(), timeout=timeout
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def ok(self, *args: str, input: bytes | None = None, timeout: float = 60.0) -> str:
        result = self.cli(*args, input=input, timeout=timeout)
        assert result.code == 0, f"logship {' '.join(args)} failed ({result.code}): {result.err}"
        return result.out

    def inspect(self, ref: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.ok("inspect", ref))
        return data[0]

    def import_busybox(self, name: str = "busybox") -> str:
        rootfs = build_busybox_rootfs(self.root / f"rootfs-{name.replace(':', '-')}")
        return self.ok("import", str(rootfs), name).strip()

    def api(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """One request to the daemon's API on its socket: status, headers, body."""

        class Connection(http.client.HTTPConnection):
            def connect(inner) -> None:
                inner.sock = socket.socket(socket.AF_UNIX)
                inner.sock.connect(str(self.socket))

        connection = Connection("localhost")
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def daemon_log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""


def docker_env(daemon: Daemon) -> dict[str, str]:
    """The real docker CLI (and docker-compose) pointed at `daemon`, with a config dir of its own."""
    return {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}


def docker(daemon: Daemon, *args: str, input: bytes | None = None, timeout: float = 60) -> Result:
    done = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=docker_env(daemon), timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def docker_ok(daemon: Daemon, *args: str, input: bytes | None = None, timeout: float = 60) -> str:
    result = docker(daemon, *args, input=input, timeout=timeout)
    assert result.code == 0, f"docker {' '.join(args)} failed ({result.code}): {result.err}"
    return result.out


def terminal_session(command: list[str], env: dict[str, str], typed: bytes, marker: bytes) -> tuple[int, bytes]:
    """Run `command` (a shell in a container) on a new pseudo-terminal, wait for the shell's prompt (`# `,
    which has no newline), type `typed`, read until `marker` appears; its exit code and all it showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        command, stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True
    )
    os.close(terminal)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 20
        while marker not in seen and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.2)[0]:
                try:
                    seen += os.read(controller, 4096)
                except OSError:
                    break
        assert marker in seen, seen

    try:
        read_until(b"# ")
        os.write(controller, typed)
        read_until(marker)
        return process.wait(timeout=20), seen
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)


def kill_processes_under(data_root: Path) -> None:
    """Kill every process whose working directory lies under `data_root` (container supervisors run in
    their state directory), or that serves its networks (see `network_servers`), then wait for them to go,
    and unmount the network namespaces a killed daemon left."""
    prefix = str(data_root.resolve())
    network = _network_prefix(data_root)
    victims = [
        pid for pid, cwd, cmdline in _processes() if cwd == prefix or cwd.startswith(prefix + "/") or network in cmdline
    ]
    for pid in victims:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    kill_and_wait(victims)
    namespaces = data_root / "network" / "netns"
    for path in sorted(namespaces.iterdir()) if namespaces.is_dir() else []:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def network_servers(data_root: Path) -> list[int]:
    """The pids serving the networks of the daemon at `data_root` (pasta, aardvark-dns, namespace holders:
    their command lines name a path under its network folder)."""
    network = _network_prefix(data_root)
    return [pid for pid, _, cmdline in _processes() if network in cmdline]


def _network_prefix(data_root: Path) -> str:
    return str(data_root.resolve()) + "/network"


def _processes() -> Iterator[tuple[int, str, str]]:
    """(pid, working directory, command line) of every process whose /proc entries can still be read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        yield int(entry.name), cwd, cmdline


def kill_and_wait(victims: list[int]) -> None:
    """SIGKILL each of `victims`, then wait (10 s at most) until each is gone or a zombie."""
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while victims and time.monotonic() < deadline:
        victims = [pid for pid in victims if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)]
        time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def awslogs_args(endpoint: str, group: str, opts: Iterable[str] = ()) -> list[str]:
    """`--log-driver awslogs --log-opt ...`: CloudWatch at `endpoint`, group `group` (created), flushed every
    second, and `opts`."""
    log_opts = [
        f"awslogs-group={group}",
        "awslogs-create-group=true",
        f"awslogs-endpoint={endpoint}",
        "awslogs-force-flush-interval-seconds=1",
        *opts,
    ]
    return ["--log-driver", "awslogs", *(item for opt in log_opts for item in ("--log-opt", opt))]


def run_with_awslogs(daemon: Daemon, endpoint: str, group: str, script: str, opts: Iterable[str] = ()) -> str:
    """`logship run -d` of `sh -c SCRIPT` logging to CloudWatch (`awslogs_args`); the container's id."""
    return daemon.ok("run", "-d", *awslogs_args(endpoint, group, opts), "busybox", "sh", "-c", script).strip()


def fluentd_args(address: str, opts: Iterable[str] = ()) -> list[str]:
    """`--log-driver fluentd --log-opt fluentd-address=ADDRESS [--log-opt OPT]...`"""
    return [
        "--log-driver",
        "fluentd",
        *(item for opt in (f"fluentd-address={address}", *opts) for item in ("--log-opt", opt)),
    ]


def run_with_fluentd(daemon: Daemon, address: str, *args: str, opts: Iterable[str] = ()) -> str:
    """`logship run -d` with `fluentd_args(ADDRESS, opts)` and ARGS; the container's id."""
    return daemon.ok("run", "-d", *fluentd_args(address, opts), *args).strip()
