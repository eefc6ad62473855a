"""Ingest benchmark: one container writes N lines of 100 bytes to stdout with the json-file driver,
next to the same producer piped into `cat > file` in the same run. Prints lines/s for both, their ratio,
the daemon's CPU seconds per million lines, its peak RSS, and the wall time of `logship logs --tail 10`
(the whole CLI process, Python start-up included) on the resulting log.

    .venv/bin/python bench/ingest.py [--lines 2000000]

The container is created, started and waited for through the API (what `docker run -d` + `docker wait`
send), so the time is the daemon's, not that of two Python CLI start-ups (about 0.2 s each).

Needs root (real namespaces) and /bin/busybox (busybox-static). Real dockerd measured on this kind of
machine (2 cores, 2,000,000 lines of 101 bytes): 318k lines/s = 0.14x of a 2.26M lines/s baseline,
2.99 CPU-s per million lines; `docker logs --tail 10`: 25 ms. Targets (issue 9): >= 0.5x of the
baseline, <= 0.8 CPU-s per million lines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logship.client import Client
from tests.harness import LOGSHIP, Daemon

LINE_BYTES = 100  # 99 characters and the newline


@dataclass
class Run:
    """One container run through the API: wall time from create to the end of wait, daemon CPU meanwhile."""

    seconds: float
    cpu_seconds: float
    info: dict[str, Any]  # inspect, after the run

    def driver_stats(self, driver: str) -> dict[str, Any]:
        return next(d for d in self.info["LogStats"]["Drivers"] if d["Driver"] == driver)


def run_container(
    daemon: Daemon, name: str, command: str, log_type: str = "json-file", log_opts: dict[str, str] | None = None
) -> Run:
    """Create, start and wait for a busybox container running `command` with the given log driver.
    `wait` returns once the container's output has been flushed to its drivers."""
    assert daemon.process is not None
    client = Client(daemon.host)
    body = {
        "Image": "busybox",
        "Cmd": ["sh", "-c", command],
        "HostConfig": {"LogConfig": {"Type": log_type, "Config": log_opts or {}}},
    }
    cpu_before = cpu_seconds(daemon.process.pid)
    started = time.perf_counter()
    container_id = client.json("POST", "/containers/create", {"name": name}, body)["Id"]
    client.request("POST", f"/containers/{container_id}/start").read()
    client.json("POST", f"/containers/{container_id}/wait")
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(daemon.process.pid) - cpu_before
    return Run(seconds, cpu, daemon.inspect(container_id))


def producer(lines: int) -> str:
    """The same busybox pipeline inside the container and for the baseline."""
    return f"yes {'x' * (LINE_BYTES - 1)} | head -n {lines}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, all threads


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def baseline(lines: int, work: Path) -> float:
    target = work / "baseline.out"
    started = time.perf_counter()
    subprocess.run(f"/bin/busybox sh -c '{producer(lines)}' | cat > {target}", shell=True, check=True)
    elapsed = time.perf_counter() - started
    assert target.stat().st_size == lines * LINE_BYTES
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="baseline and logship runs, alternated (medians)")
    parser.add_argument("--tail-runs", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        daemon = Daemon(work / "logship")
        daemon.start()
        base_times: list[float] = []
        runs: list[Run] = []
        try:
            daemon.import_busybox()
            for index in range(args.rounds):  # alternated, so a busy moment of the machine hits both
                base_times.append(baseline(args.lines, work))
                runs.append(run_container(daemon, f"ingest-{index}", producer(args.lines)))
            assert daemon.process is not None
            rss = peak_rss_mib(daemon.process.pid)
            run = runs[-1]
            written = run.driver_stats("json-file")["LinesWritten"]
            log_size = Path(run.info["LogPath"]).stat().st_size

            tail_times = []
            for _ in range(args.tail_runs):
                t0 = time.perf_counter()
                subprocess.run(
                    [*LOGSHIP, "logs", "--tail", "10", run.info["Name"].lstrip("/")],
                    env=daemon.env(),
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                tail_times.append(time.perf_counter() - t0)
        finally:
            daemon.stop()

    base_s = statistics.median(base_times)
    seconds = statistics.median(r.seconds for r in runs)
    base_rate = args.lines / base_s
    rate = args.lines / seconds
    ratios = " ".join(f"{b / r.seconds:.2f}" for b, r in zip(base_times, runs, strict=True))
    cpu_per_million = statistics.median(r.cpu_seconds for r in runs) / args.lines * 1e6
    print(f"lines                        {args.lines:,} x {LINE_BYTES} bytes, medians of {args.rounds} rounds")
    print(f"baseline (producer | cat)    {base_rate / 1e3:10.0f}k lines/s   ({base_s:.2f} s)")
    print(f"logship json-file            {rate / 1e3:10.0f}k lines/s   ({seconds:.2f} s, API create to wait)")
    print(f"ratio logship/baseline       {rate / base_rate:10.2f}x         (dockerd here: 0.14x; target >= 0.5x)")
    print(f"  ratio in each round        {ratios}")
    print(f"daemon CPU per 1M lines      {cpu_per_million:10.2f} CPU-s   (dockerd here: 2.99; target <= 0.8)")
    print(f"daemon peak RSS              {rss:10.1f} MiB")
    print(f"lines in the json-file log   {written:,} ({log_size / 1e6:.0f} MB, last round)")
    print(
        f"logs --tail 10, whole CLI    {statistics.median(tail_times) * 1e3:10.0f} ms median of {args.tail_runs}"
        f"   (docker logs --tail 10 here: 25 ms)"
    )


if __name__ == "__main__":
    main()
