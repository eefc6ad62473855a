"""journald benchmark: one container writes N lines of 100 bytes through the journald driver. Prints
logship's lines/s and CPU seconds per million lines next to journald's own CPU seconds for the same lines,
measured in the same run, and checks every line reached the journal.

    .venv/bin/python bench/journald.py [--lines 200000]

Uses the running journald, or starts /lib/systemd/systemd-journald for the run. Real dockerd here:
35,000 lines/s, bound by journald (about 2 CPU-s per 100k lines in journald itself).
Target: journald-bound, logship's own CPU <= 10% of journald's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import LINE_BYTES, cpu_seconds, producer
from tests.harness import Daemon
from tests.journal import Journald


def journald_pid() -> int:
    out = subprocess.run(["pgrep", "-xo", "systemd-journal"], capture_output=True, text=True).stdout.split()
    if not out:
        raise SystemExit("no systemd-journald process found")
    return int(out[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    journal = Journald()
    journal.start()
    try:
        with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
            daemon = Daemon(Path(tmp) / "logship")
            daemon.start()
            try:
                daemon.import_busybox()
                assert daemon.process is not None
                pid, jpid = daemon.process.pid, journald_pid()
                cpu0, jcpu0 = cpu_seconds(pid), cpu_seconds(jpid)
                started = time.perf_counter()
                daemon.ok(
                    "run",
                    "-d",
                    "--log-driver",
                    "journald",
                    "--name",
                    "jbench",
                    "busybox",
                    "sh",
                    "-c",
                    producer(args.lines),
                )
                daemon.ok("wait", "jbench", timeout=3600)
                elapsed = time.perf_counter() - started
                cpu, jcpu = cpu_seconds(pid) - cpu0, cpu_seconds(jpid) - jcpu0
                container_id = daemon.inspect("jbench")["Id"]
                time.sleep(1)
                counted = subprocess.run(
                    ["journalctl", "--no-pager", "-o", "cat", f"CONTAINER_ID_FULL={container_id}"],
                    capture_output=True,
                    check=True,
                ).stdout.count(b"\n")
            finally:
                daemon.stop()
    finally:
        journal.stop()
    per_million = 1e6 / args.lines
    print(f"lines                          {args.lines:,} x {LINE_BYTES} bytes, journald driver")
    rate = args.lines / elapsed / 1e3
    print(f"logship                        {rate:8.1f}k lines/s   ({elapsed:.2f} s; dockerd here: 35k)")
    print(f"logship daemon CPU per 1M      {cpu * per_million:8.2f} CPU-s")
    print(f"journald CPU per 1M            {jcpu * per_million:8.2f} CPU-s   (dockerd run here: ~20 per 1M)")
    print(f"logship / journald CPU         {cpu / jcpu * 100 if jcpu else 0:8.1f} %      (target <= 10%)")
    print(f"entries in the journal         {counted:,}")


if __name__ == "__main__":
    main()
