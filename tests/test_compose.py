"""docker-compose (Debian's 1.29, built on docker-py) runs a project against logship: the README's example
file, read from README.md so that the example stays true, brought up, followed, listed, restarted,
stopped and torn down; what logship cannot do (overlay networks, ports published beyond the host's loopback)
is a clear error naming it. Projects on their default network: tests/test_compose_networks.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, Result, docker_env, docker_ok, needs_docker

pytestmark = [
    pytest.mark.integration,
    needs_docker,
    pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/setup)"),
]

README = Path(__file__).parent.parent / "README.md"
PROJECT = "demo"


def readme_compose_file() -> str:
    text = README.read_text()
    match = re.search(r"<!-- compose example -->\n```yaml\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its compose example (a ```yaml block after <!-- compose example -->)"
    return match.group(1)


def compose(daemon: Daemon, folder: Path, *args: str, timeout: float = 90) -> Result:
    env = {**docker_env(daemon), "COMPOSE_PROJECT_NAME": PROJECT, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
    done = subprocess.run(
        ["docker-compose", *args], cwd=folder, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Result(done.returncode, done.stdout, done.stderr)


def compose_ok(daemon: Daemon, folder: Path, *args: str) -> str:
    result = compose(daemon, folder, *args)
    assert result.code == 0, f"docker-compose {' '.join(args)} failed ({result.code}): {result.err}"
    return result.out + result.err


@pytest.fixture(scope="module")
def project(shared_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("compose")
    (folder / "docker-compose.yml").write_text(readme_compose_file())
    yield folder
    compose(shared_daemon, folder, "down", "--timeout", "1")


def test_config_up_ps_and_what_the_containers_got(shared_daemon: Daemon, project: Path) -> None:
    config = compose_ok(shared_daemon, project, "config")
    assert "network_mode: host" in config and "driver: local" in config
    compose_ok(shared_daemon, project, "up", "-d")
    listing = compose_ok(shared_daemon, project, "ps")
    rows = [line.split() for line in listing.splitlines() if line.startswith(f"{PROJECT}_")]
    assert sorted(row[0] for row in rows) == ["demo_web_1", "demo_worker_1"] and all("Up" in row for row in rows)
    web = shared_daemon.inspect("demo_web_1")
    assert web["Config"]["Labels"]["team"] == "logs" and web["Config"]["Labels"]["com.docker.compose.project"] == "demo"
    assert web["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "1m"}}
    assert web["HostConfig"]["NetworkMode"] == "host" and web["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    worker = shared_daemon.inspect("demo_worker_1")
    assert worker["HostConfig"]["LogConfig"]["Type"] == "local" and worker["HostConfig"]["NetworkMode"] == "none"


def test_logs_follow_restart_stop_and_down(shared_daemon: Daemon, project: Path) -> None:
    env = {**docker_env(shared_daemon), "COMPOSE_PROJECT_NAME": PROJECT}
    follower = subprocess.Popen(
        ["docker-compose", "logs", "-f", "--no-color", "web", "worker"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    assert follower.stdout is not None
    seen: list[str] = []

    def enough() -> bool:  # compose interleaves the two services' streams as they come
        worker = any(line.startswith("worker_1") and "worker started" in line for line in seen)
        return worker and sum("web: hello" in line for line in seen) >= 3

    try:
        deadline = time.monotonic() + 30
        while not enough() and time.monotonic() < deadline:
            seen.append(follower.stdout.readline().decode())
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert sum("web: hello" in line for line in seen) >= 3, seen
    assert any(line.startswith("worker_1") and "worker started" in line for line in seen), seen
    started = shared_daemon.inspect("demo_worker_1")["State"]["StartedAt"]
    compose_ok(shared_daemon, project, "restart", "worker")
    assert shared_daemon.inspect("demo_worker_1")["State"]["StartedAt"] != started
    compose_ok(shared_daemon, project, "stop")
    states = {name: shared_daemon.inspect(name)["State"]["Status"] for name in ("demo_web_1", "demo_worker_1")}
    assert states == {"demo_web_1": "exited", "demo_worker_1": "exited"}
    compose_ok(shared_daemon, project, "down")
    assert "demo_" not in docker_ok(shared_daemon, "ps", "-a", "--format", "{{.Names}}")


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            "    command: sleep 1\n    ports: ['192.0.2.1:8080:80']\n",
            "logship publishes ports on the host's IPv4 loopback only",
        ),
        (
            "    networks: [mesh]\nnetworks:\n  mesh:\n    driver: overlay\n",
            'network driver "overlay" is not supported',
        ),
    ],
    ids=["a port published on a remote address", "an overlay network"],
)
def test_what_logship_cannot_do_is_a_clear_error(
    shared_daemon: Daemon, tmp_path: Path, service: str, message: str
) -> None:
    (tmp_path / "docker-compose.yml").write_text(f"services:\n  app:\n    image: busybox\n{service}")
    result = compose(shared_daemon, tmp_path, "up", "-d")
    assert result.code != 0 and message in result.err and "Traceback" not in result.err
    compose(shared_daemon, tmp_path, "down")
    assert os.path.exists(tmp_path / "docker-compose.yml")
