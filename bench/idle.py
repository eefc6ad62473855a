"""Idle containers benchmark: the memory and CPU logship spends per running container that does nothing.

    .venv/bin/python bench/idle.py [--containers 100] [--idle-seconds 10] [--dockerd]

Prints, per container: the growth of the daemon's RSS, the supervisor's RSS and PSS (the only process
logship keeps per container, besides the container's own), and the growth of used memory system-wide
(MemTotal - MemAvailable, so it includes the container's own `sleep`, its namespaces, overlay mount and
cgroups); and the daemon's CPU while the containers idle. Budget for this issue: <= 2 MiB RSS per running
container beyond the container's own processes. Real dockerd here: containerd-shim 2.6 MiB PSS each,
+3.9 MiB used memory per container system-wide.

With --dockerd, the same idle containers then run on a real dockerd started for the run (bench/dockerd.py;
installs Debian's docker.io when absent), measured the same way with dockerd + containerd as the daemons
and containerd-shim as the per-container process, and both are printed side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import Dockerd, print_side_by_side
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


@dataclass
class Idle:
    """One engine with `containers` idle containers: per-container figures in KiB (used memory in MiB)."""

    containers: int
    running: int
    per_container_processes: int
    daemon_rss_growth_kib: float  # of the engine's daemons, divided by the containers
    process_rss_kib: float  # of the per-container process, each
    process_pss_kib: float
    used_growth_mib: float  # system-wide, divided by the containers
    cpu_share: float  # of the machine, while the containers idle

    @property
    def total_mib(self) -> float:
        """What the engine itself spends per container: its daemons' growth and its per-container process."""
        return (self.daemon_rss_growth_kib + self.process_pss_kib) / 1024


@dataclass
class Engine:
    """How to drive and observe one engine, for measure()."""

    run: Callable[[str], object]  # start one idle container of this name
    daemons: Callable[[], list[int]]  # its long-lived processes
    per_container: Callable[[], list[int]]  # its process for each container
    cpu_seconds: Callable[[], float]  # of all its processes
    running: Callable[[], int]  # containers running


def measure(engine: Engine, n: int, idle_seconds: float) -> Idle:
    time.sleep(1)
    daemons = engine.daemons()
    rss_before, used_before = sum(status_kib(p, "VmRSS") for p in daemons), used_mib()
    for i in range(n):
        engine.run(f"idle{i}")
    time.sleep(2)
    rss_after, used_after = sum(status_kib(p, "VmRSS") for p in daemons), used_mib()
    processes = engine.per_container()
    process_rss = sum(status_kib(p, "VmRSS") for p in processes) / max(len(processes), 1)
    process_pss = sum(pss_kib(p) for p in processes) / max(len(processes), 1)
    cpu0, t0 = engine.cpu_seconds(), time.perf_counter()
    time.sleep(idle_seconds)
    cpu_share = (engine.cpu_seconds() - cpu0) / (time.perf_counter() - t0) / (os.cpu_count() or 1)
    return Idle(
        n,
        engine.running(),
        len(processes),
        (rss_after - rss_before) / n,
        process_rss,
        process_pss,
        (used_after - used_before) / n,
        cpu_share,
    )


def with_logship(work: Path, n: int, idle_seconds: float) -> Idle:
    daemon = Daemon(work / "logship")
    daemon.start()
    try:
        daemon.import_busybox()
        assert daemon.process is not None
        pid = daemon.process.pid
        return measure(
            Engine(
                run=lambda name: daemon.ok("run", "-d", "--name", name, "busybox", "sleep", "3600"),
                daemons=lambda: [pid],
                per_container=lambda: supervisors(daemon.data_root),
                cpu_seconds=lambda: cpu_seconds(pid),
                running=lambda: sum(1 for line in daemon.ok("ps", "-q").splitlines() if line.strip()),
            ),
            n,
            idle_seconds,
        )
    finally:
        daemon.stop()


def with_dockerd(work: Path, n: int, idle_seconds: float) -> Idle:
    with Dockerd(work / "dockerd", install_if_missing=True) as docker:
        docker.import_busybox()
        # No network: dockerd runs with --bridge=none (bench/dockerd.py), as logship's containers have none.
        return measure(
            Engine(
                run=lambda name: docker.cli(
                    "run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "3600"
                ),
                daemons=docker.daemon_pids,
                per_container=docker.shim_pids,
                cpu_seconds=docker.cpu_seconds,
                running=lambda: len(docker.cli("ps", "-q").stdout.split()),
            ),
            n,
            idle_seconds,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--dockerd", action="store_true", help="also measure a real dockerd (docker.io)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        # One engine at a time: 2n idle containers would blur the used-memory figure of each.
        ours = with_logship(Path(tmp), args.containers, args.idle_seconds)
        dockerd = with_dockerd(Path(tmp), args.containers, args.idle_seconds) if args.dockerd else None

    print(f"running containers                 {ours.running} (supervisors found: {ours.per_container_processes})")
    print(f"daemon RSS growth per container    {ours.daemon_rss_growth_kib / 1024:8.2f} MiB")
    print(
        f"supervisor (sh) per container      {ours.process_rss_kib / 1024:8.2f} MiB RSS, "
        f"{ours.process_pss_kib / 1024:.2f} MiB PSS"
    )
    print(
        f"logship total per container        {ours.total_mib:8.2f} MiB"
        "   (daemon growth + supervisor PSS; budget <= 2 MiB)"
    )
    print(
        f"used memory growth per container   {ours.used_growth_mib:8.2f} MiB"
        "   (system-wide, includes the container's own sleep; dockerd here: 3.9 MiB)"
    )
    print(f"daemon CPU while idle              {ours.cpu_share * 100:8.2f} % of the machine")
    if dockerd is not None:
        print_side_by_side(
            dockerd,
            ours,
            [
                ("running containers", lambda e: e.running, ".0f", ""),
                ("per-container processes found", lambda e: e.per_container_processes, ".0f", ""),
                ("daemons' RSS growth, MiB each", lambda e: e.daemon_rss_growth_kib / 1024, ".2f", "lower"),
                ("shim / supervisor RSS, MiB each", lambda e: e.process_rss_kib / 1024, ".2f", "lower"),
                ("shim / supervisor PSS, MiB each", lambda e: e.process_pss_kib / 1024, ".2f", "lower"),
                ("engine total, MiB each", lambda e: e.total_mib, ".2f", "lower"),
                ("used memory growth, MiB each", lambda e: e.used_growth_mib, ".2f", "lower"),
                ("CPU while idle, % of the machine", lambda e: e.cpu_share * 100, ".2f", "lower"),
            ],
        )
        print("  (dockerd: daemons dockerd + containerd, per container containerd-shim; logship: its daemon and sh)")
        print("  (engine total: daemons' growth + shim/supervisor PSS; target for logship <= 1 MiB)")


if __name__ == "__main__":
    main()
