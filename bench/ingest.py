"""Ingest benchmark: one container writes N lines of 100 bytes to stdout with the json-file driver,
next to the same producer piped into `cat > file` in the same run. Prints lines/s for both, their ratio,
the daemon's CPU seconds per million lines, its peak RSS, and the wall time of `logship logs --tail 10`
(the whole CLI process, Python start-up included) on the resulting log.

    .venv/bin/python bench/ingest.py [--lines 2000000]

Needs root (real namespaces) and /bin/busybox (busybox-static). Real dockerd measured on this kind of
machine (2 cores, 2,000,000 lines of 101 bytes): 318k lines/s = 0.14x of a 2.26M lines/s baseline,
2.99 CPU-s per million lines; `docker logs --tail 10`: 25 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import LOGSHIP, Daemon

LINE_BYTES = 100  # 99 characters and the newline


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
    parser.add_argument("--tail-runs", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        base_s = baseline(args.lines, work)
        daemon = Daemon(work / "logship")
        daemon.start()
        try:
            daemon.import_busybox()
            assert daemon.process is not None
            pid = daemon.process.pid
            cpu_before = cpu_seconds(pid)
            started = time.perf_counter()
            daemon.ok("run", "-d", "--name", "ingest", "busybox", "sh", "-c", producer(args.lines))
            daemon.ok("wait", "ingest", timeout=3600)  # returns once the log is flushed
            ingest_s = time.perf_counter() - started
            cpu = cpu_seconds(pid) - cpu_before
            rss = peak_rss_mib(pid)
            info = daemon.inspect("ingest")
            written = info["LogStats"]["Drivers"][0]["LinesWritten"]
            log_size = Path(info["LogPath"]).stat().st_size

            tail_times = []
            for _ in range(args.tail_runs):
                t0 = time.perf_counter()
                subprocess.run(
                    [*LOGSHIP, "logs", "--tail", "10", "ingest"],
                    env=daemon.env(),
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                tail_times.append(time.perf_counter() - t0)
        finally:
            daemon.stop()

    base_rate = args.lines / base_s
    rate = args.lines / ingest_s
    print(f"lines                        {args.lines:,} x {LINE_BYTES} bytes")
    print(f"baseline (producer | cat)    {base_rate / 1e3:10.0f}k lines/s   ({base_s:.2f} s)")
    print(f"logship json-file            {rate / 1e3:10.0f}k lines/s   ({ingest_s:.2f} s, run -d to wait)")
    print(f"ratio logship/baseline       {rate / base_rate:10.2f}x         (dockerd here: 0.14x; target >= 0.14x)")
    print(f"daemon CPU per 1M lines      {cpu / args.lines * 1e6:10.2f} CPU-s   (dockerd here: 2.99; target <= 3)")
    print(f"daemon peak RSS              {rss:10.1f} MiB")
    print(f"lines in the json-file log   {written:,} ({log_size / 1e6:.0f} MB)")
    print(
        f"logs --tail 10, whole CLI    {statistics.median(tail_times) * 1e3:10.0f} ms median of {args.tail_runs}"
        f"   (docker logs --tail 10 here: 25 ms)"
    )


if __name__ == "__main__":
    main()
