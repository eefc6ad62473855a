"""gelf benchmark: one container writes N lines of 100 bytes through the gelf driver over UDP into the
tests' GELF receiver (tests/gelf_receiver.py, in its own process, counting messages: it reassembles
chunks but does not decompress), and the rate that landed and the daemon's CPU seconds per million lines
are printed, with the default gzip compression or the one asked for.

    .venv/bin/python bench/gelf.py [--lines 1000000] [--compression gzip|zlib|none] [--dockerd]

UDP has no flow control: what the receiver could not take is lost, so "landed" counts what it counted,
and the time runs until no more came for 3 s (that wait is not counted). With --dockerd, Docker's gelf
driver runs the same container into the same receiver, printed side by side; with fewer lines
(`--dockerd-lines`, 50,000): it compresses each message with a new gzip writer and needed 14 minutes of
dockerd CPU here without finishing 1,000,000 (figures are per line, so they compare). Targets (issue 18): >= 3x
Docker's rate, <= 1 CPU-s per 1M lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import CpuMeter, Dockerd
from bench.ingest import LINE_BYTES, cpu_seconds, peak_rss_mib
from bench.syslog import Landed, container_args, report
from tests.harness import Daemon

REPO = Path(__file__).resolve().parent.parent


class Receiver:
    """`python -m tests.gelf_receiver udp --count` in its own process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.gelf_receiver", "udp", "--count"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.address = json.loads(self.process.stdout.readline())["address"]

    def count(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("totals\n")
        self.process.stdin.flush()
        return int(json.loads(self.process.stdout.readline())["messages"])

    def settled(self, target: int, quiet_s: float = 3.0) -> tuple[int, float]:
        """(messages, when the last one came) once `target` arrived or nothing more came for `quiet_s`."""
        last, last_at = self.count(), time.perf_counter()
        while last < target:
            time.sleep(0.05)
            now = self.count()
            if now != last:
                last, last_at = now, time.perf_counter()
            elif time.perf_counter() - last_at > quiet_s:
                break
        return last, last_at

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


def run(engine: str, work: Path, receiver: Receiver, opts: dict[str, str], lines: int) -> Landed:
    before = receiver.count()
    if engine == "logship":
        daemon = Daemon(work / "logship")
        with daemon.started():
            assert daemon.process is not None
            pid = daemon.process.pid
            cpu0, server0 = cpu_seconds(pid), cpu_seconds(receiver.process.pid)
            started = time.perf_counter()
            daemon.ok("run", "-d", *container_args("gelf", opts, lines, "netbench"))
            got, last_at = receiver.settled(before + lines)
            daemon.ok("wait", "netbench")
            cpu, rss = cpu_seconds(pid) - cpu0, peak_rss_mib(pid)
            return Landed(got - before, last_at - started, cpu, cpu_seconds(receiver.process.pid) - server0, rss)
    with Dockerd(work / "dockerd", install_if_missing=True) as docker:
        docker.import_busybox()
        with CpuMeter(docker) as meter:
            server0 = cpu_seconds(receiver.process.pid)
            started = time.perf_counter()
            docker.cli("run", "-d", "--network", "none", *container_args("gelf", opts, lines, "netbench"))
            got, last_at = receiver.settled(before + lines)
            server_cpu = cpu_seconds(receiver.process.pid) - server0
            docker.cli("wait", "netbench")
    return Landed(got - before, last_at - started, meter.seconds, server_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--compression", default="gzip", choices=("gzip", "zlib", "none"))
    parser.add_argument("--dockerd", action="store_true", help="also measure a real dockerd (docker.io)")
    parser.add_argument(
        "--dockerd-lines", type=int, default=50_000, help="lines for dockerd (its gelf driver is slow; default 50,000)"
    )
    args = parser.parse_args()
    receiver = Receiver()
    try:
        opts = {"gelf-address": receiver.address, "gelf-compression-type": args.compression}
        with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
            logship = run("logship", Path(tmp), receiver, opts, args.lines)
            print(f"logship: {logship}", flush=True)
            dockerd = run("dockerd", Path(tmp), receiver, opts, args.dockerd_lines) if args.dockerd else None
    finally:
        receiver.stop()
    title = f"gelf over UDP ({args.compression}) into the GELF receiver: {args.lines:,} lines x {LINE_BYTES} bytes"
    report(title, logship, dockerd, "receiver", ">= 3x Docker's rate, <= 1 CPU-s per 1M lines")
    for name, landed, sent in (("logship", logship, args.lines), ("dockerd", dockerd, args.dockerd_lines)):
        if landed is not None:
            print(f"  {name}: {landed.lines:,} of {sent:,} messages landed (UDP: what the receiver missed is lost)")


if __name__ == "__main__":
    main()
