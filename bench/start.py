"""Container start-up benchmark (issue 20): the whole-process wall time of `run --rm busybox true`, median
and p99 over the runs, with Docker's default seccomp profile on in both engines.

Rows, one run of each per round, interleaved so that a busy moment of this shared machine hits all alike:
- `logship run --rm busybox true`: logship's CLI and daemon (seccomp on: the default profile);
- `docker run ... -> logship`: the docker CLI against logship's daemon (the same client as the next row);
- `docker run ... -> dockerd` (with --dockerd): the docker CLI against a real dockerd started for the run
  (bench/dockerd.py: Debian's docker.io, containerd and runc, bridge and iptables off);
- `logship ... seccomp=unconfined`: what the filter costs at start (compiling is cached per daemon).

    .venv/bin/python bench/start.py [--runs 50] [--dockerd]

Issue 20's target: logship no slower than Docker. Needs root, busybox-static, and for --dockerd docker.io
(installed when missing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dockerd
from tests.harness import LOGSHIP, Daemon

DOCKER_CLI = "/usr/local/bin/docker"  # the tests' docker CLI (28.x); dockerd.docker_cli() otherwise


def time_once(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.decode()}")
    return elapsed


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@contextlib.contextmanager
def engines(root: Path, with_dockerd: bool) -> Iterator[dict[str, tuple[list[str], dict[str, str]]]]:
    docker = DOCKER_CLI if os.path.exists(DOCKER_CLI) else dockerd.docker_cli()
    with Daemon(root / "logship").started() as daemon:
        logship_env = {**daemon.env(), "LOGSHIP_NO_AUTOSTART": "1"}
        docker_env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(root / "docker-config")}
        commands = {
            "logship run --rm busybox true": ([*LOGSHIP, "run", "--rm", "busybox", "true"], logship_env),
            "docker run ... -> logship": ([str(docker), "run", "--rm", "busybox", "true"], docker_env),
            "logship ... seccomp=unconfined": (
                [*LOGSHIP, "run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "true"],
                logship_env,
            ),
        }
        if not with_dockerd:
            yield commands
            return
        with dockerd.Dockerd(root / "dockerd", install_if_missing=True) as real:
            real.import_busybox()
            dockerd_env = {**real.env(), "DOCKER_CONFIG": str(root / "docker-config")}
            commands["docker run ... -> dockerd"] = ([str(docker), "run", "--rm", "busybox", "true"], dockerd_env)
            yield commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--dockerd", action="store_true", help="also measure a real dockerd in the same rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-start-") as tmp, engines(Path(tmp), args.dockerd) as commands:
        for command, env in commands.values():  # warm up: page cache, the seccomp program's compilation
            time_once(command, env)
        samples: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.runs):
            for label, (command, env) in commands.items():
                samples[label].append(time_once(command, env))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"run --rm busybox true, {args.runs} runs each, interleaved (load average {load})")
    print(f"  {'':34}{'median ms':>12}{'p99 ms':>10}")
    for label, values in samples.items():
        print(f"  {label:34}{statistics.median(values) * 1000:12.1f}{p99(values) * 1000:10.1f}")
    if "docker run ... -> dockerd" in samples:
        theirs = statistics.median(samples["docker run ... -> dockerd"])
        for label in ("logship run --rm busybox true", "docker run ... -> logship"):
            print(f"  {label}: {theirs / statistics.median(samples[label]):.2f}x dockerd's speed (median)")


if __name__ == "__main__":
    main()
