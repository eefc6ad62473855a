"""Idle containers benchmark: the memory and CPU logship spends per running container that does nothing.

    .venv/bin/python bench/idle.py [--containers 100] [--idle-seconds 10]

Prints, per container: the growth of the daemon's RSS, the supervisor's RSS and PSS (the only process
logship keeps per container, besides the container's own), and the growth of used memory system-wide
(MemTotal - MemAvailable, so it includes the container's own `sleep`, its namespaces, overlay mount and
cgroups); and the daemon's CPU while the containers idle. Budget for this issue: <= 2 MiB RSS per running
container beyond the container's own processes. Real dockerd here: containerd-shim 2.6 MiB PSS each,
+3.9 MiB used memory per container system-wide.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds
from tests.harness import Daemon


def meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def used_mib() -> float:
    return (meminfo_kib("MemTotal") - meminfo_kib("MemAvailable")) / 1024


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def supervisors(data_root: Path) -> list[int]:
    """The sh supervisors: processes whose cwd is a container state dir and whose name is sh."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if cwd.startswith(str(data_root / "containers")) and name == "sh":
            found.append(int(entry.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    n = args.containers

    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        daemon = Daemon(Path(tmp) / "logship")
        daemon.start()
        try:
            daemon.import_busybox()
            assert daemon.process is not None
            pid = daemon.process.pid
            time.sleep(1)
            rss_before, used_before = status_kib(pid, "VmRSS"), used_mib()
            for i in range(n):
                daemon.ok("run", "-d", "--name", f"idle{i}", "busybox", "sleep", "3600")
            time.sleep(2)
            rss_after, used_after = status_kib(pid, "VmRSS"), used_mib()
            sups = supervisors(daemon.data_root)
            sup_rss = sum(status_kib(p, "VmRSS") for p in sups) / max(len(sups), 1)
            sup_pss = sum(pss_kib(p) for p in sups) / max(len(sups), 1)
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            time.sleep(args.idle_seconds)
            cpu_share = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0) / (os.cpu_count() or 1)
            running = sum(1 for line in daemon.ok("ps", "-q").splitlines() if line.strip())
        finally:
            daemon.stop()

    print(f"running containers                 {running} (supervisors found: {len(sups)})")
    print(f"daemon RSS growth per container    {(rss_after - rss_before) / n / 1024:8.2f} MiB")
    print(f"supervisor (sh) per container      {sup_rss / 1024:8.2f} MiB RSS, {sup_pss / 1024:.2f} MiB PSS")
    print(
        f"logship total per container        {((rss_after - rss_before) / n + sup_pss) / 1024:8.2f} MiB"
        "   (daemon growth + supervisor PSS; budget <= 2 MiB)"
    )
    print(
        f"used memory growth per container   {(used_after - used_before) / n:8.2f} MiB"
        "   (system-wide, includes the container's own sleep; dockerd here: 3.9 MiB)"
    )
    print(f"daemon CPU while idle              {cpu_share * 100:8.2f} % of the machine")


if __name__ == "__main__":
    main()
