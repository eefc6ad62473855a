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

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.rootfs import build_busybox_rootfs

START_TIMEOUT_S = 60.0


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

    def __init__(self, root: Path, install_if_missing: bool = False) -> None:
        self.root = root
        self._install = install_if_missing
        self._containerd: subprocess.Popen[bytes] | None = None
        self._dockerd: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

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
        containerd_socket = containerd_dir / "containerd.sock"
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
            str(containerd_socket),
            "--storage-driver",
            "overlay2",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
        ]
        with (self.root / "dockerd.log").open("ab") as log:
            self._dockerd = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.cli("version", check=False).returncode != 0:
            if self._dockerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {self.root / 'dockerd.log'}")
            time.sleep(0.2)

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


def _unmount_under(root: Path) -> None:
    """Mounts dockerd left under `root` (overlay layers, its data root), deepest first, so the temporary
    directory can be removed."""
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
