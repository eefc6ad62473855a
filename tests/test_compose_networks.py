"""docker-compose (Debian's 1.29) with its default project network, as most compose files are written (no
network_mode): the client reaches the server by its service name, the published port answers on the
host's loopback, and `docker-compose down` leaves no namespace, interface, rule or process behind."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from logship.runtime import netavark
from tests.harness import Daemon, Result, docker_env, needs_docker
from tests.hostnet import fetch, free_port, host_network

pytestmark = [
    pytest.mark.integration,
    needs_docker,
    pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/setup)"),
    pytest.mark.skipif(
        bool(netavark.missing_tools()) or shutil.which("pasta") is None,
        reason="needs netavark, aardvark-dns and passt (.ci/setup installs them)",
    ),
]

PROJECT = """\
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /etc
    ports: ["127.0.0.1:{port}:80"]
  client:
    image: busybox
    depends_on: [web]
    command: sh -c 'for i in $$(seq 50); do wget -q -O- http://web/hostname && exit; sleep 0.1; done; exit 1'
"""


def compose(daemon: Daemon, folder: Path, *args: str) -> Result:
    env = {**docker_env(daemon), "COMPOSE_PROJECT_NAME": "shop", "COMPOSE_INTERACTIVE_NO_CLI": "1"}
    done = subprocess.run(
        ["docker-compose", *args], cwd=folder, env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, f"docker-compose {' '.join(args)} failed: {done.stderr.decode()}"
    return Result(done.returncode, done.stdout, done.stderr)


def serving(data_root: Path) -> list[str]:
    """Processes that serve the daemon's networks (pasta, aardvark-dns name a path under it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if entry.name.isdigit() and str(data_root / "network") in cmdline:
            found.append(cmdline)
    return found


def test_services_reach_each_other_by_name_and_down_leaves_nothing(tmp_path: Path) -> None:
    before = host_network()
    port = free_port()
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(PROJECT.format(port=port))
    with Daemon(tmp_path / "logship", bridge=True).started() as daemon:
        compose(daemon, folder, "up", "-d")
        web_id = daemon.inspect("shop_web_1")["Id"][:12]
        assert fetch(port).endswith(web_id + "\n")  # the published port, from the host's loopback
        deadline = time.monotonic() + 30
        while daemon.inspect("shop_client_1")["State"]["Running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        client = daemon.inspect("shop_client_1")
        assert client["State"]["ExitCode"] == 0 and compose(daemon, folder, "logs", "client").out.endswith(
            f"{web_id}\n"
        )
        assert client["HostConfig"]["NetworkMode"] == "shop_default"
        assert "web" in daemon.inspect("shop_web_1")["NetworkSettings"]["Networks"]["shop_default"]["DNSNames"]
        compose(daemon, folder, "down", "--timeout", "1")  # httpd as pid 1 ignores SIGTERM: no 10 s wait
        assert "shop_default" not in daemon.ok("network", "ls")
        namespaces = daemon.data_root / "network" / "netns"
        assert not namespaces.exists() or not list(namespaces.iterdir())
        assert serving(daemon.data_root) == []
        with pytest.raises(AssertionError):
            fetch(port, timeout=0.5)
    assert host_network() == before
