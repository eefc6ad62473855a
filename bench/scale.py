"""Scale benchmark: 500 containers running at once, each a shell loop writing a line a second, on logship
and (with --dockerd) on a real dockerd, in the same run.

    .venv/bin/python bench/scale.py [--containers 500] [--dockerd]

Both engines are driven by docker-py (one process: a CLI per container would measure Python start-ups)
and by the real docker CLI for the commands a person types. Printed for each engine:
- the start latency (create + start, one after another) of each container: median and p99;
- the engine's RSS (logship: its daemon; dockerd: dockerd, containerd and the containers' shims) and the
  memory used system-wide per container (MemAvailable before the first and after the last, over N);
- the wall time of `ps`, `logs --tail 10` of one container and `stats --no-stream` with all of them
  running (the engine's own CLI for logship, the docker CLI for dockerd; the docker CLI against logship too);
- the time from a restart of the engine until it answers `ps` with every container running: logship is
  killed with SIGKILL and started again (its live restore); dockerd is stopped and started again with
  live-restore on.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker as docker_py  # type: ignore[import-untyped]

from bench.dockerd import Dockerd, docker_cli, print_side_by_side
from tests.harness import LOGSHIP, Daemon

WRITER = "trap 'exit 0' TERM; while true; do echo tick; sleep 1; done"


@dataclass
class Figures:
    starts_ms: list[float] = field(default_factory=list)
    rss_mib: float = 0.0
    used_per_container_mib: float = 0.0
    commands_ms: dict[str, float] = field(default_factory=dict)
    restart_s: float = 0.0

    def start_p(self, fraction: float) -> float:
        ordered = sorted(self.starts_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable")


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def timed_ms(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=600)
    return (time.monotonic() - started) * 1e3


def start_all(client: Any, count: int, figures: Figures) -> list[str]:
    ids = []
    for _ in range(count):
        started = time.monotonic()
        container = client.containers.run("busybox", ["sh", "-c", WRITER], detach=True, network_mode="none")
        figures.starts_ms.append((time.monotonic() - started) * 1e3)
        ids.append(container.id)
    return ids


def until_all_running(list_running: Callable[[], int], count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while list_running() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not all {count} containers running after {timeout}s")
        time.sleep(0.2)


def measure_logship(work: Path, count: int) -> Figures:
    figures = Figures()
    daemon = Daemon(work / "logship")
    with daemon.started():
        client = docker_py.DockerClient(base_url=daemon.host, version="1.41")
        before = mem_available()
        ids = start_all(client, count, figures)
        time.sleep(3)
        assert daemon.process is not None
        figures.rss_mib = rss_mib([daemon.process.pid])
        figures.used_per_container_mib = (before - mem_available()) / count / 2**20
        env = daemon.env()
        figures.commands_ms["ps"] = timed_ms([*LOGSHIP, "ps"], env)
        figures.commands_ms["logs --tail 10"] = timed_ms([*LOGSHIP, "logs", "--tail", "10", ids[count // 2]], env)
        figures.commands_ms["stats --no-stream"] = timed_ms([*LOGSHIP, "stats", "--no-stream"], env)
        docker = docker_cli()
        if docker is not None:
            docker_env = {**os.environ, "DOCKER_HOST": daemon.host}
            figures.commands_ms["docker ps (against logship)"] = timed_ms([docker, "ps"], docker_env)
        daemon.kill9()
        restarted = time.monotonic()
        daemon.start(timeout=600)
        until_all_running(lambda: len(daemon.ok("ps", "-q").split()), count)
        figures.restart_s = time.monotonic() - restarted
        client = docker_py.DockerClient(base_url=daemon.host, version="1.41")
        for container_id in ids:
            client.api.remove_container(container_id, force=True)
    return figures


def measure_dockerd(work: Path, count: int) -> Figures:
    figures = Figures()
    with Dockerd(work / "dockerd", install_if_missing=True, extra_args=["--live-restore"]) as engine:
        engine.import_busybox()
        client = docker_py.DockerClient(base_url=f"unix://{engine.socket}", version="1.41")
        before = mem_available()
        ids = start_all(client, count, figures)
        time.sleep(3)
        figures.rss_mib = rss_mib(engine.pids())
        figures.used_per_container_mib = (before - mem_available()) / count / 2**20
        docker = docker_cli()
        assert docker is not None
        env = engine.env()
        figures.commands_ms["ps"] = timed_ms([docker, "ps"], env)
        figures.commands_ms["logs --tail 10"] = timed_ms([docker, "logs", "--tail", "10", ids[count // 2]], env)
        figures.commands_ms["stats --no-stream"] = timed_ms([docker, "stats", "--no-stream"], env)
        restarted = time.monotonic()
        engine.restart_daemon(signal.SIGTERM)
        until_all_running(lambda: len(engine.cli("ps", "-q").stdout.split()), count)
        figures.restart_s = time.monotonic() - restarted
        for container_id in ids:
            client.api.remove_container(container_id, force=True)
    return figures


def report(name: str, figures: Figures) -> None:
    commands = ", ".join(f"{command} {ms:.0f} ms" for command, ms in figures.commands_ms.items())
    print(
        f"{name:8} start median {statistics.median(figures.starts_ms):6.0f} ms, p99 {figures.start_p(0.99):6.0f} ms;"
        f" RSS {figures.rss_mib:7.1f} MiB; used per container {figures.used_per_container_mib:5.2f} MiB;"
        f" {commands}; restart until all {len(figures.starts_ms)} run and ps answers {figures.restart_s:5.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--dockerd", action="store_true", help="measure a real dockerd too, in the same run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        results = {"logship": measure_logship(Path(tmp), args.containers)}
        if args.dockerd:
            results["dockerd"] = measure_dockerd(Path(tmp), args.containers)
    print(f"{args.containers} containers, each `{WRITER}`")
    for name, figures in results.items():
        report(name, figures)
    if "dockerd" in results:
        print_side_by_side(
            results["dockerd"],
            results["logship"],
            [
                ("start, median ms", lambda f: statistics.median(f.starts_ms), ".0f", "lower"),
                ("start, p99 ms", lambda f: f.start_p(0.99), ".0f", "lower"),
                ("engine RSS, MiB", lambda f: f.rss_mib, ".1f", "lower"),
                ("used per container, MiB", lambda f: f.used_per_container_mib, ".2f", "lower"),
                ("ps, ms", lambda f: f.commands_ms["ps"], ".0f", "lower"),
                ("logs --tail 10, ms", lambda f: f.commands_ms["logs --tail 10"], ".0f", "lower"),
                ("stats --no-stream, ms", lambda f: f.commands_ms["stats --no-stream"], ".0f", "lower"),
                ("restart until all run, s", lambda f: f.restart_s, ".1f", "lower"),
            ],
        )


if __name__ == "__main__":
    main()
