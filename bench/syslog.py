"""syslog benchmark: one container writes N lines of 100 bytes through the syslog driver over TCP into a
real rsyslog (Debian's, started here on a loopback port, tests/rsyslog.py, writing every message to a
file), and the rate that landed (from `run -d` until rsyslog stored all N) and the daemon's CPU seconds
per million lines are printed.

    .venv/bin/python bench/syslog.py [--lines 1000000] [--format rfc5424] [--dockerd]

With --dockerd, the same container then runs on a real dockerd started for the run (bench/dockerd.py;
installs Debian's docker.io when absent) with Docker's syslog driver into the same rsyslog, and both are
printed side by side (dockerd's CPU: dockerd + containerd + the container's shim). Targets (issue 18):
>= 3x Docker's rate, <= 1 CPU-s per 1M lines. rsyslog's own CPU is printed too: on two cores it shares
the machine with the engine it measures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import CpuMeter, Dockerd, print_side_by_side
from bench.ingest import LINE_BYTES, cpu_seconds, peak_rss_mib, producer
from tests.harness import Daemon
from tests.rsyslog import SEPARATOR, Rsyslog


@dataclass
class Landed:
    lines: int
    seconds: float
    cpu_seconds: float
    server_cpu_seconds: float
    rss_mib: float = 0.0


class StoredCounter:
    """Counts the messages rsyslog stored, reading only what its file gained since the last look."""

    def __init__(self, server: Rsyslog) -> None:
        self.server = server
        self.offset = 0
        self.count = 0
        self.tail = b""

    def poll(self) -> int:
        path = self.server.output
        if path.exists():
            with path.open("rb") as file:
                file.seek(self.offset)
                data = file.read()
            self.offset += len(data)
            data = self.tail + data
            self.count += data.count(SEPARATOR)
            self.tail = data[-(len(SEPARATOR) - 1) :]
        return self.count


def wait_for(count: Callable[[], int], target: int, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while (now := count()) < target:
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since > 30:
            raise SystemExit(f"the server stopped at {now:,} of {target:,} messages")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out at {now:,} of {target:,} messages")
        time.sleep(0.05)


def container_args(driver: str, opts: dict[str, str], lines: int, name: str) -> list[str]:
    log_opts = [item for key, value in opts.items() for item in ("--log-opt", f"{key}={value}")]
    return ["--log-driver", driver, *log_opts, "--name", name, "busybox", "sh", "-c", producer(lines)]


def measure_logship(
    work: Path, driver: str, opts: dict[str, str], lines: int, count: Callable[[], int], server_pid: int
) -> Landed:
    daemon = Daemon(work / "logship")
    with daemon.started():
        assert daemon.process is not None
        pid = daemon.process.pid
        before = count()
        cpu0, server0 = cpu_seconds(pid), cpu_seconds(server_pid)
        started = time.perf_counter()
        daemon.ok("run", "-d", *container_args(driver, opts, lines, "netbench"))
        wait_for(count, before + lines)
        elapsed = time.perf_counter() - started
        daemon.ok("wait", "netbench")
        return Landed(lines, elapsed, cpu_seconds(pid) - cpu0, cpu_seconds(server_pid) - server0, peak_rss_mib(pid))


def measure_dockerd(
    work: Path, driver: str, opts: dict[str, str], lines: int, count: Callable[[], int], server_pid: int
) -> Landed:
    with Dockerd(work / "dockerd", install_if_missing=True) as docker:
        docker.import_busybox()
        before = count()
        with CpuMeter(docker) as meter:
            server0 = cpu_seconds(server_pid)
            started = time.perf_counter()
            docker.cli("run", "-d", "--network", "none", *container_args(driver, opts, lines, "netbench"))
            wait_for(count, before + lines)
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(server_pid) - server0
            docker.cli("wait", "netbench")
    return Landed(count() - before, elapsed, meter.seconds, server_cpu)


def report(title: str, logship: Landed, dockerd: Landed | None, server: str, targets: str) -> None:
    print(title)
    rate = logship.lines / logship.seconds / 1e3
    print(f"logship                            {rate:8.0f}k lines/s landed ({logship.seconds:.2f} s)")
    print(f"daemon CPU per 1M lines            {logship.cpu_seconds / logship.lines * 1e6:8.2f} CPU-s")
    print(f"daemon peak RSS                    {logship.rss_mib:8.1f} MiB")
    label = f"{server} CPU per 1M lines"
    print(f"{label:35}{logship.server_cpu_seconds / logship.lines * 1e6:8.2f} CPU-s")
    if dockerd is not None:
        print_side_by_side(
            dockerd,
            logship,
            [
                ("lines landed", lambda e: e.lines, ",.0f", ""),
                ("k lines/s landed", lambda e: e.lines / e.seconds / 1e3, ".0f", "higher"),
                ("CPU-s per 1M lines", lambda e: e.cpu_seconds / e.lines * 1e6, ".2f", "lower"),
                (f"{server} CPU-s per 1M lines", lambda e: e.server_cpu_seconds / e.lines * 1e6, ".2f", "lower"),
            ],
        )
        print("  (landed: from run -d until the server had every line)")
        print("  (CPU: dockerd + containerd + containerd-shim, next to logship's daemon)")
    print(f"  (targets: {targets})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--format", default="", help="syslog-format (default: Docker's default)")
    parser.add_argument("--dockerd", action="store_true", help="also measure a real dockerd (docker.io)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        with Rsyslog(work / "rsyslog", fast_output=True) as server:
            assert server.process is not None
            counter = StoredCounter(server)
            opts = {"syslog-address": server.tcp_address}
            if args.format:
                opts["syslog-format"] = args.format
            logship = measure_logship(work, "syslog", opts, args.lines, counter.poll, server.process.pid)
            dockerd = None
            if args.dockerd:  # one engine at a time: they would share the two cores
                dockerd = measure_dockerd(work, "syslog", opts, args.lines, counter.poll, server.process.pid)
    report(
        f"syslog over TCP into rsyslog: {args.lines:,} lines x {LINE_BYTES} bytes, format {args.format or 'default'}",
        logship,
        dockerd,
        "rsyslog",
        ">= 3x Docker's rate, <= 1 CPU-s per 1M lines",
    )


if __name__ == "__main__":
    main()
