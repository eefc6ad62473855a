"""Reading benchmark (issue 9): the same container log read back by logship and, with --dockerd, by a
real dockerd started for the run (bench/dockerd.py), printed side by side with ratios.

One container per engine writes N lines of 100 bytes to stdout (json-file, Docker's default driver, or
`--driver local`; `run -d`, then `wait`), then each engine serves, `--runs` times (median shown):

- `logs` of the whole log to /dev/null, and `logs -t` of it;
- `logs --since T` with T the time of the record 99.5% of the way through the log;
- `logs --tail 10`;

each as the whole CLI process (`logship logs` / `docker logs`, Python start-up included; wall time and
the process's CPU time, which other work on the machine disturbs less), and the same three requests over
the Engine API with a minimal HTTP client (the daemon's share alone).

    .venv/bin/python bench/read.py [--lines 2000000] [--runs 3] [--dockerd] [--driver local]

Needs root and busybox-static. --dockerd installs Debian's docker.io when dockerd is absent. Without
it, the dockerd column shows the figures measured on this kind of machine for issue 9 (quoted).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import Dockerd, UnixConnection, docker_cli
from bench.ingest import LINE_BYTES, producer
from tests.harness import LOGSHIP, Daemon

NAME = "readbench"
SINCE_FRACTION = 0.995
# dockerd 20.10.24 on this kind of machine, 2M lines of 101 bytes (issue 9), for runs without --dockerd.
QUOTED_DOCKERD = {"logs (CLI)": 19.0, "logs --since (CLI)": 5.3, "logs --tail 10 (CLI)": 0.025}


@dataclass
class Engine:
    """One daemon under test: how to run its CLI, and where its API listens."""

    name: str
    driver: str
    command: list[str]
    env: dict[str, str]
    socket: Path
    figures: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, stdout: int | None = subprocess.DEVNULL, timeout: float = 3600) -> bytes:
        result = subprocess.run(
            [*self.command, *args], env=self.env, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout or b""


def api_read(engine: Engine, query: dict[str, str]) -> int:
    """GET /containers/NAME/logs and drain the body; returns its size."""
    connection = UnixConnection(engine.socket)
    try:
        connection.request("GET", f"/containers/{NAME}/logs?{urlencode({'stdout': '1', 'stderr': '1', **query})}")
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{engine.name} logs API: {response.status} {response.read()!r}")
        size = 0
        while chunk := response.read1(1 << 20):
            size += len(chunk)
        return size
    finally:
        connection.close()


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def median_cli(engine: Engine, key: str, args: Sequence[str], stdout: int, runs: int) -> None:
    """Wall time of the whole CLI process, and its CPU time (user + sys), which a busy machine
    disturbs less than the wall time: both medians go into the engine's figures."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        engine.run(*args, stdout=stdout)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    engine.figures[key] = statistics.median(walls)
    engine.figures[key.replace("(CLI)", "(CLI CPU)")] = statistics.median(cpus)


def time_near_end(engine: Engine, lines: int) -> str:
    """The time (RFC 3339, nine digits) of the record SINCE_FRACTION of the way through the log, as the
    engine's own `logs -t --tail` shows it: works for any driver."""
    last = max(1, int(lines * (1 - SINCE_FRACTION)))
    shown = engine.run("logs", "-t", "--tail", str(last), NAME, stdout=subprocess.PIPE)
    return shown.split(b" ", 1)[0].decode()


def ingest(engine: Engine, lines: int, extra: Sequence[str]) -> None:
    started = time.perf_counter()
    engine.run(
        "run", "-d", "--name", NAME, "--log-driver", engine.driver, *extra, "busybox", "sh", "-c", producer(lines)
    )
    engine.run("wait", NAME)
    engine.figures["ingest (run -d .. wait)"] = time.perf_counter() - started


def measure(engine: Engine, runs: int, lines: int) -> None:
    since = time_near_end(engine, lines)
    since_api = f"{_epoch(since):.9f}"
    with open(os.devnull, "wb") as sink:
        sink_fd = sink.fileno()
        median_cli(engine, "logs (CLI)", ["logs", NAME], sink_fd, runs)
        median_cli(engine, "logs -t (CLI)", ["logs", "-t", NAME], sink_fd, runs)
        median_cli(engine, "logs --since (CLI)", ["logs", "--since", since, NAME], sink_fd, runs)
        median_cli(engine, "logs --tail 10 (CLI)", ["logs", "--tail", "10", NAME], sink_fd, max(runs, 10))
    full = engine.figures
    full["logs (API)"] = median_seconds(lambda: api_read(engine, {}), runs)
    full["logs --since (API)"] = median_seconds(lambda: api_read(engine, {"since": since_api}), runs)
    full["logs --tail 10 (API)"] = median_seconds(lambda: api_read(engine, {"tail": "10"}), max(runs, 10))
    # A check that both read everything: the full body holds every line (plus 8-byte frame headers).
    body = api_read(engine, {})
    if engine.driver == "json-file" and body < lines * LINE_BYTES:  # (local rotates by default)
        raise RuntimeError(f"{engine.name} served {body} bytes, less than the {lines * LINE_BYTES} written")


def _epoch(rfc3339: str) -> float:
    from logship.drivers.util.timestamps import parse_rfc3339nano

    return parse_rfc3339nano(rfc3339) / 1e9


def with_logship(work: Path, driver: str, lines: int, runs: int) -> Engine:
    daemon = Daemon(work / "logship")
    daemon.start()
    try:
        daemon.import_busybox()
        env = daemon.env()
        # As users run it: with compiled bytecode cached (see bench/cli.py); time_near_end's run warms it.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        engine = Engine("logship", driver, list(LOGSHIP), env, daemon.socket)
        ingest(engine, lines, [])
        measure(engine, runs, lines)
        return engine
    finally:
        daemon.stop()


def with_dockerd(work: Path, driver: str, lines: int, runs: int) -> Engine:
    with Dockerd(work / "dockerd", install_if_missing=True) as docker:
        docker.import_busybox()
        cli = docker_cli()
        assert cli is not None
        engine = Engine("dockerd", driver, [cli], docker.env(), docker.socket)
        ingest(engine, lines, ["--network", "none"])
        measure(engine, runs, lines)
        return engine


def report(logship: Engine, dockerd: Engine | None, lines: int) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{lines:,} lines x {LINE_BYTES} bytes, {logship.driver} driver; median times (load average {load})")
    quoted = logship.driver == "json-file" and lines == 2_000_000  # what issue 9's figures are for
    other = "dockerd" if dockerd is not None else "dockerd (quoted)" if quoted else "dockerd"
    print(f"  {'':28}{other:>18}{'logship':>12}{'dockerd/logship':>18}")
    for key, ours in logship.figures.items():
        theirs = dockerd.figures.get(key) if dockerd is not None else QUOTED_DOCKERD.get(key) if quoted else None
        theirs_text = _seconds(theirs) if theirs is not None else "-"
        ratio = f"{theirs / ours:17.1f}x" if theirs is not None else ""
        print(f"  {key:28}{theirs_text:>18}{_seconds(ours):>12}{ratio}")


def _seconds(value: float) -> str:
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dockerd", action="store_true", help="also measure a real dockerd (docker.io)")
    parser.add_argument("--driver", choices=["json-file", "local"], default="json-file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        # One engine at a time: they would share the two cores.
        logship = with_logship(work, args.driver, args.lines, args.runs)
        dockerd = with_dockerd(work, args.driver, args.lines, args.runs) if args.dockerd else None
    report(logship, dockerd, args.lines)


if __name__ == "__main__":
    main()
