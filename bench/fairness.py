"""Fairness benchmark: one container floods its json-file log while 20 containers each write 10
timestamped lines a second, on logship and (with --dockerd) on a real dockerd in the same run.

    .venv/bin/python bench/fairness.py [--lines 2000000] [--quiet 20] [--dockerd]

The quiet containers run `ticker`, a 20-line static C program built here (no busybox applet prints the
time in nanoseconds): every 100 ms it prints CLOCK_REALTIME in ns. A watcher in this process polls their
json-file logs every millisecond and takes, for each line, the time it appeared in the file minus the time
written in it: the latency from write to file. The flood is `yes <99 chars> | head -n LINES` (as
bench/ingest.py); its rate is LINES over the time from its start to its exit (a writer blocked by the
daemon exits late), alone and then with the quiet ones running. Both engines run the same image (busybox
and ticker, imported from the same rootfs), through the real docker CLI, json-file without rotation.

Targets (issue 16): the quiet containers' p99 latency <= 50 ms; the flood >= 0.8x of the flood alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import Dockerd, docker_cli, print_side_by_side
from bench.ingest import producer
from tests.harness import Daemon
from tests.rootfs import build_busybox_rootfs

TICKER_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec now, pause = {0, 100000000};
    for (;;) {
        clock_gettime(CLOCK_REALTIME, &now);
        printf("%lld\n", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
        fflush(stdout);
        nanosleep(&pause, NULL);
    }
}
"""


@dataclass
class Figures:
    flood_alone_lps: float = 0.0
    flood_busy_lps: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def build_rootfs(work: Path) -> Path:
    rootfs = build_busybox_rootfs(work / "rootfs")
    source = work / "ticker.c"
    source.write_text(TICKER_C)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(rootfs / "bin" / "ticker"), str(source)], check=True)
    return rootfs


class Engine:
    """The docker CLI against one engine's socket."""

    def __init__(self, name: str, socket: Path) -> None:
        self.name = name
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{socket}"}
        docker = docker_cli()
        assert docker is not None, "the docker CLI is needed"
        self.docker = docker

    def cli(self, *args: str) -> str:
        done = subprocess.run([self.docker, *args], env=self.env, capture_output=True, check=True, timeout=600)
        return done.stdout.decode().strip()

    def import_rootfs(self, rootfs: Path, name: str) -> None:
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [self.docker, "import", "-", name], stdin=tar.stdout, env=self.env, check=True, capture_output=True
        )
        assert tar.wait() == 0

    def log_path(self, container_id: str) -> str:
        return self.cli("inspect", "--format", "{{.LogPath}}", container_id)


class Watcher(threading.Thread):
    """Polls log files every millisecond; each line's latency is when it appeared minus the time in it."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(daemon=True)
        self.paths = paths
        self.latencies_ms: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        files = [open(path, "rb") for path in self.paths]  # noqa: SIM115 (closed below)
        pending = [b"" for _ in files]
        try:
            while not self.stop.is_set():
                for index, file in enumerate(files):
                    data = file.read()
                    if not data:
                        continue
                    seen = time.time_ns()
                    pending[index] += data
                    *lines, pending[index] = pending[index].split(b"\n")
                    for line in lines:
                        written = int(json.loads(line)["log"])
                        self.latencies_ms.append((seen - written) / 1e6)
                time.sleep(0.001)
        finally:
            for file in files:
                file.close()


def run_flood(engine: Engine, lines: int) -> float:
    """Lines per second of a detached flood, from its start to its exit."""
    started = time.monotonic()
    container_id = engine.cli("run", "-d", "--network", "none", "fairbox", "sh", "-c", producer(lines))
    engine.cli("wait", container_id)
    rate = lines / (time.monotonic() - started)
    engine.cli("rm", container_id)
    return rate


def measure(engine: Engine, lines: int, quiet: int, settle_s: float) -> Figures:
    figures = Figures()
    figures.flood_alone_lps = run_flood(engine, lines)
    tickers = [engine.cli("run", "-d", "--network", "none", "fairbox", "ticker") for _ in range(quiet)]
    try:
        watcher = Watcher([engine.log_path(c) for c in tickers])
        watcher.start()
        time.sleep(settle_s)
        watcher.latencies_ms.clear()  # from here on, with the flood
        figures.flood_busy_lps = run_flood(engine, lines)
        watcher.stop.set()
        watcher.join()
        figures.latencies_ms = watcher.latencies_ms
    finally:
        engine.cli("rm", "-f", *tickers)
    return figures


def report(name: str, figures: Figures) -> None:
    print(
        f"{name:8} flood alone {figures.flood_alone_lps / 1e3:7.0f}k lines/s, with {len(figures.latencies_ms)} quiet"
        f" lines measured {figures.flood_busy_lps / 1e3:7.0f}k lines/s = "
        f"{figures.flood_busy_lps / figures.flood_alone_lps:4.2f}x (>= 0.80x); quiet latency p50 "
        f"{figures.percentile(0.5):6.1f} ms, p99 {figures.percentile(0.99):6.1f} ms, max "
        f"{max(figures.latencies_ms, default=0):6.1f} ms (p99 <= 50 ms); over 50 ms: "
        f"{sum(1 for latency in figures.latencies_ms if latency > 50)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--quiet", type=int, default=20)
    parser.add_argument("--dockerd", action="store_true", help="measure a real dockerd too, in the same run")
    args = parser.parse_args()
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        rootfs = build_rootfs(work)
        with Daemon(work / "logship").started() as daemon:
            engine = Engine("logship", daemon.socket)
            engine.import_rootfs(rootfs, "fairbox")
            results["logship"] = measure(engine, args.lines, args.quiet, settle_s=2.0)
        if args.dockerd:
            with Dockerd(work / "dockerd", install_if_missing=True) as docker:
                engine = Engine("dockerd", docker.socket)
                engine.import_rootfs(rootfs, "fairbox")
                results["dockerd"] = measure(engine, args.lines, args.quiet, settle_s=2.0)
        shutil.rmtree(rootfs, ignore_errors=True)
    print(f"{args.lines:,} flood lines of 100 bytes; {args.quiet} quiet containers x 10 lines/s")
    for name, figures in results.items():
        report(name, figures)
    if "dockerd" in results:
        print_side_by_side(
            results["dockerd"],
            results["logship"],
            [
                ("flood with the quiet ones, lines/s", lambda f: f.flood_busy_lps, ".0f", "higher"),
                ("flood: with / alone", lambda f: f.flood_busy_lps / f.flood_alone_lps, ".2f", "higher"),
                ("quiet p50 latency, ms", lambda f: f.percentile(0.5), ".1f", "lower"),
                ("quiet p99 latency, ms", lambda f: f.percentile(0.99), ".1f", "lower"),
            ],
        )


if __name__ == "__main__":
    main()
