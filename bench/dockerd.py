"""A real dockerd for benchmarks: Debian's `docker.io`, started by hand in a temporary data root.

As the project's issue 9 describes: `containerd` on a private socket, then `dockerd --data-root <dir>
--storage-driver overlay2` with no iptables, no bridge and no userland proxy, listening on a private
unix socket (never the system's /var/run/docker.sock), and a `busybox` image made with `docker import`
from the same busybox-static rootfs the tests use (no registry needed). Everything is stopped and the
temporary directory removed on leaving the `with` block.

    with Dockerd(Path(tmp), install=True) as docker:
        docker.run("run", "-d", "--name", "x", "busybox", "true")

Not part of the test suite or CI: only bench/ uses it.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds
from tests.rootfs import build_busybox_rootfs

START_TIMEOUT_S = 60.0

T = TypeVar("T")  # one engine's results, in print_side_by_side


class UnixConnection(http.client.HTTPConnection):
    """HTTP to an engine's API on its unix socket (dockerd's or logship's), for timing requests with the
    least client in the way."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self._path))


def available() -> bool:
    return all(shutil.which(tool) for tool in ("dockerd", "containerd")) and docker_cli() is not None


def docker_cli() -> str | None:
    """The docker CLI that comes with docker.io (or any on PATH)."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")


def install() -> None:
    """`apt-get install docker.io`: only when a bench was asked to compare with dockerd and it is absent."""
    print("dockerd not found: installing Debian's docker.io ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "docker.io"], check=True, env=env, stdout=subprocess.DEVNULL)


class Dockerd:
    """containerd + dockerd under `root`, for one benchmark run."""

    def __init__(
        self,
        root: Path,
        install_if_missing: bool = False,
        extra_env: Mapping[str, str] | None = None,
        extra_args: Iterable[str] = (),
        bridge: bool = False,
    ) -> None:
        """`extra_env` goes into dockerd's own environment: its logging drivers read their settings there
        (e.g. AWS credentials for awslogs), not from the CLI's. `extra_args` go on dockerd's command line
        (e.g. --insecure-registry 127.0.0.1:5000)."""
        self.root = root
        self._extra_args = list(extra_args)
        # dockerd's default bridge (docker0, without iptables): only inside a network namespace of the caller's
        # own (bench/docker_shapes.py runs under `unshare --net`), never on the host.
        self._bridge = bridge
        self._install = install_if_missing
        self._extra_env = dict(extra_env or {})
        self._containerd: subprocess.Popen[bytes] | None = None
        self._dockerd: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def __enter__(self) -> Dockerd:
        if not available():
            if not self._install:
                raise RuntimeError("dockerd is not installed (apt-get install -y docker.io)")
            install()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop()

    def _start(self) -> None:
        containerd_dir = self.root / "containerd"
        containerd_dir.mkdir(exist_ok=True)
        containerd_socket = self.containerd_socket
        config = containerd_dir / "config.toml"
        # Its own root, state and socket; no CRI plugin (it would look for CNI and Kubernetes).
        config.write_text(
            "version = 2\n"
            f'root = "{containerd_dir / "root"}"\n'
            f'state = "{containerd_dir / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{containerd_socket}"\n'
            f'[ttrpc]\n  address = "{containerd_socket}.ttrpc"\n'
        )
        with (self.root / "containerd.log").open("ab") as log:
            self._containerd = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
        self._wait_for(containerd_socket, self._containerd, "containerd")
        self._start_dockerd()

    def _start_dockerd(self) -> None:
        args = [
            "dockerd",
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "dockerd.pid"),
            "-H",
            f"unix://{self.socket}",
            "--containerd",
            str(self.containerd_socket),
            "--storage-driver",
            "overlay2",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            *([] if self._bridge else ["--bridge=none"]),
            "--userland-proxy=false",
            *self._extra_args,
        ]
        with (self.root / "dockerd.log").open("ab") as log:
            self._dockerd = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ, **self._extra_env})
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.cli("version", check=False).returncode != 0:
            if self._dockerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {self.root / 'dockerd.log'}")
            time.sleep(0.2)

    def restart_daemon(self, sig: int = signal.SIGTERM) -> None:
        """dockerd alone stopped by `sig` and started again (containerd and, with --live-restore, the
        containers stay)."""
        assert self._dockerd is not None
        self._dockerd.send_signal(sig)
        self._dockerd.wait(timeout=120)
        self._start_dockerd()

    def _wait_for(self, socket: Path, process: subprocess.Popen[bytes], name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see the logs in {self.root}")
            time.sleep(0.1)

    def cli(self, *args: str, check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess[bytes]:
        docker = docker_cli()
        assert docker is not None
        return subprocess.run([docker, *args], env=self.env(), capture_output=True, check=check, timeout=timeout)

    def import_busybox(self, name: str = "busybox") -> None:
        rootfs = build_busybox_rootfs(self.root / "rootfs")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        docker = docker_cli()
        assert docker is not None and tar.stdout is not None
        subprocess.run([docker, "import", "-", name], stdin=tar.stdout, env=self.env(), check=True, capture_output=True)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of the busybox rootfs failed")

    def shim_pids(self) -> list[int]:
        """The containerd-shim of each of this engine's containers. They daemonize (their parent is init, not
        containerd), so they are found by the containerd socket on their command line."""
        address = f"-address\0{self.containerd_socket}\0".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if not (entry / "comm").read_text().startswith("containerd-shim"):
                    continue
                if address in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # it exited meanwhile
                continue
        return found

    def daemon_pids(self) -> list[int]:
        """dockerd and containerd, while they run."""
        return [p.pid for p in (self._dockerd, self._containerd) if p is not None and p.poll() is None]

    def pids(self) -> list[int]:
        """dockerd, containerd and the shims: every process that does this engine's work (log copying
        included), as opposed to the containers' own processes."""
        return self.daemon_pids() + self.shim_pids()

    def cpu_seconds(self) -> float:
        """User + system CPU time of `pids()` now. A shim exits with its container (dockerd deletes the task
        as soon as it stops) and takes its CPU time with it: across containers that stop, use CpuMeter."""
        total = 0.0
        for pid in self.pids():
            try:
                total += cpu_seconds(pid)
            except OSError:  # a shim that exited meanwhile
                continue
        return total

    def _stop(self) -> None:
        if self._dockerd is not None and self._dockerd.poll() is None:
            ids = self.cli("ps", "-aq", check=False).stdout.split()
            if ids:
                self.cli("rm", "-f", *(i.decode() for i in ids), check=False)
        for process in (self._dockerd, self._containerd):  # dockerd first: it unmounts, then containerd
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._dockerd = self._containerd = None
        _unmount_under(self.root)


Better = Literal["lower", "higher", ""]  # which way a figure is better ("": a count equal by design)


def print_side_by_side(dockerd: T, logship: T, rows: Iterable[tuple[str, Callable[[T], float], str, Better]]) -> None:
    """Figures measured in this run for both engines, one row each as bench/read.py prints them. A row is
    (label, the figure taken from an engine's results, its format spec, which way it is better). The last
    column is how many times better logship's figure is (below 1: worse), whichever way that is."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"side by side, measured in this run (load average {load})")
    print(f"  {'':34}{'dockerd':>12}{'logship':>12}{'logship better by':>20}")
    for label, figure, spec, better in rows:
        theirs, ours = figure(dockerd), figure(logship)
        edge = theirs / ours if better == "lower" and ours else ours / theirs if better == "higher" and theirs else 0
        print(f"  {label:34}{format(theirs, spec):>12}{format(ours, spec):>12}{f'{edge:19.1f}x' if edge else ''}")


def _unmount_under(root: Path) -> None:
    """Mounts dockerd left under `root` (overlay layers, its data root), deepest first, so the temporary
    directory can be removed."""
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


class CpuMeter:
    """User + system CPU seconds of dockerd, containerd and every containerd-shim of `docker` from entering
    the `with` block to leaving it: what the engine spent on the containers run meanwhile (their own
    processes are the shims' children, so not in these figures).

    A container's shim exits when dockerd deletes its task, before `wait` returns, and takes its CPU time
    with it: it daemonized, so nothing here can reap it and read its usage. `Dockerd.cpu_seconds()` read
    after `wait` misses the shims altogether; this meter reads them every `interval` while the block runs and
    keeps each process's last reading, so only what a shim spends after it (its exit) is missed."""

    def __init__(self, docker: Dockerd, interval: float = 0.05) -> None:
        self._docker = docker
        self._interval = interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._watched: list[int] = []
        self._seen: set[str] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_done, name="dockerd-cpu", daemon=True)

    def __enter__(self) -> CpuMeter:
        self._sample()
        self._first = dict(self._last)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        """Processes started inside the block count from zero."""
        return sum(last - self._first.get(pid, 0.0) for pid, last in self._last.items())

    def _sample_until_done(self) -> None:
        while not self._done.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        # Looking for shims reads every process's comm (~4 ms on this machine): only when a process appeared,
        # not every `interval`, so the meter itself takes little from the two cores it measures on.
        running = {name for name in os.listdir("/proc") if name.isdigit()}
        if running - self._seen:
            self._watched = self._docker.pids()
        self._seen = running
        for pid in self._watched:
            try:
                self._last[pid] = cpu_seconds(pid)
            except OSError:  # it exited: its last reading stands
                continue
