"""A container's resource counters, read from its cgroup in the shapes dockerd's stats API sends.

cgroup v1 (dockerd's statsV1): CPU time from cpuacct (total, per CPU, user/system), throttling from
cpu.stat, memory from memory.usage_in_bytes, max_usage_in_bytes, memory.stat and the limit, pids.current,
block I/O from blkio.throttle.*_recursive ("8:0 Read 4096" lines). cgroup v2 (statsV2): cpu.stat in
microseconds (no per-CPU figures), memory.current, memory.stat (v2's keys, e.g. inactive_file), memory.max,
pids.current/max, io.stat ("8:0 rbytes=... wbytes=... rios=... wios=..."). A limit of "max", or one above
the machine's memory, is reported as the machine's memory, as dockerd does. A file that is missing (a
controller the host lacks) leaves its figures out or zero; it is never an error.

Also the host's CPU time (/proc/stat's first line, in nanoseconds) and number of CPUs, which clients need
to turn two samples into a CPU percentage: (Δcontainer / Δsystem) x CPUs x 100.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from logship.runtime.cgroups import Cgroup

NANOS = 1_000_000_000
V1_BLKIO_FILES = {
    "io_service_bytes_recursive": "blkio.throttle.io_service_bytes_recursive",
    "io_serviced_recursive": "blkio.throttle.io_serviced_recursive",
    "io_queue_recursive": "blkio.io_queued_recursive",
    "io_service_time_recursive": "blkio.io_service_time_recursive",
    "io_wait_time_recursive": "blkio.io_wait_time_recursive",
    "io_merged_recursive": "blkio.io_merged_recursive",
    "io_time_recursive": "blkio.time_recursive",
    "sectors_recursive": "blkio.sectors_recursive",
}
EMPTY_BLKIO: dict[str, Any] = {key: None for key in V1_BLKIO_FILES}


def _text(directory: str | None, name: str) -> str | None:
    if directory is None:
        return None
    try:
        return (Path(directory) / name).read_text()
    except OSError:
        return None


def _int(directory: str | None, name: str) -> int | None:
    text = _text(directory, name)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(text: str | None) -> dict[str, int]:
    """ "key value" lines (memory.stat, cpu.stat, cpuacct.stat)."""
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value)
        except ValueError:
            continue
    return values


def machine_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def system_cpu() -> tuple[int, int]:
    """(the host's CPU time in ns since boot, the number of CPUs), as dockerd reads them from /proc/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = cpus = 0
    with open("/proc/stat") as stat:
        for line in stat:
            parts = line.split()
            if parts and parts[0] == "cpu" and len(parts) >= 8:
                total = sum(int(v) for v in parts[1:8]) * NANOS // ticks
            elif parts and parts[0].startswith("cpu") and parts[0][3:].isdigit():
                cpus += 1
    return total, cpus


def read(cgroup: Cgroup | None, host_memory: int | None = None) -> dict[str, Any]:
    """cpu_stats (without system_cpu_usage/online_cpus), memory_stats, pids_stats and blkio_stats."""
    memory_total = machine_memory() if host_memory is None else host_memory
    if cgroup is None:
        return {
            "cpu_stats": {"cpu_usage": _cpu_usage(0, 0, 0), "throttling_data": _throttling(0, 0, 0)},
            "memory_stats": {},
            "pids_stats": {},
            "blkio_stats": dict(EMPTY_BLKIO),
        }
    if cgroup.version == 1:
        return _v1(cgroup, memory_total)
    return _v2(cgroup, memory_total)


def _cpu_usage(total: int, kernel: int, user: int, percpu: list[int] | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {"total_usage": total}
    if percpu is not None:
        usage["percpu_usage"] = percpu
    usage["usage_in_kernelmode"] = kernel
    usage["usage_in_usermode"] = user
    return usage


def _throttling(periods: int, throttled: int, time_ns: int) -> dict[str, int]:
    return {"periods": periods, "throttled_periods": throttled, "throttled_time": time_ns}


def _limit(value: int | None, memory_total: int) -> int:
    if value is None or (memory_total and value > memory_total):
        return memory_total
    return value


def _v1(cgroup: Cgroup, memory_total: int) -> dict[str, Any]:
    dirs = cgroup.dirs
    acct = dirs.get("cpuacct")
    ticks = os.sysconf("SC_CLK_TCK")
    times = _keyed(_text(acct, "cpuacct.stat"))
    percpu_text = _text(acct, "cpuacct.usage_percpu")
    percpu = [int(v) for v in percpu_text.split()] if percpu_text else None
    throttling = _keyed(_text(dirs.get("cpu"), "cpu.stat"))
    cpu = {
        "cpu_usage": _cpu_usage(
            _int(acct, "cpuacct.usage") or 0,
            times.get("system", 0) * NANOS // ticks,
            times.get("user", 0) * NANOS // ticks,
            percpu,
        ),
        "throttling_data": _throttling(
            throttling.get("nr_periods", 0), throttling.get("nr_throttled", 0), throttling.get("throttled_time", 0)
        ),
    }
    memory_dir = dirs.get("memory")
    memory: dict[str, Any] = {}
    if memory_dir is not None:
        memory["usage"] = _int(memory_dir, "memory.usage_in_bytes") or 0
        memory["max_usage"] = _int(memory_dir, "memory.max_usage_in_bytes") or 0
        memory["stats"] = _keyed(_text(memory_dir, "memory.stat"))
        failcnt = _int(memory_dir, "memory.failcnt")
        if failcnt:
            memory["failcnt"] = failcnt
        memory["limit"] = _limit(_int(memory_dir, "memory.limit_in_bytes"), memory_total)
    blkio: dict[str, Any] = {key: _v1_blkio(_text(dirs.get("blkio"), name)) for key, name in V1_BLKIO_FILES.items()}
    return {"cpu_stats": cpu, "memory_stats": memory, "pids_stats": _pids(dirs.get("pids")), "blkio_stats": blkio}


def _v1_blkio(text: str | None) -> list[dict[str, Any]]:
    """ "8:0 Read 4096" and "8:0 1234" lines (the "Total N" line is dockerd's to leave out too)."""
    entries = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) not in (2, 3) or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            entries.append(
                {
                    "major": int(major),
                    "minor": int(minor),
                    "op": parts[1] if len(parts) == 3 else "",
                    "value": int(parts[-1]),
                }
            )
        except ValueError:
            continue
    return entries


def _pids(directory: str | None) -> dict[str, int]:
    current = _int(directory, "pids.current")
    if current is None:
        return {}
    pids = {"current": current}
    limit = _int(directory, "pids.max")
    if limit:
        pids["limit"] = limit
    return pids


def _v2(cgroup: Cgroup, memory_total: int) -> dict[str, Any]:
    directory = cgroup.dirs.get("unified")
    cpu_stat = _keyed(_text(directory, "cpu.stat"))
    cpu = {
        "cpu_usage": _cpu_usage(
            cpu_stat.get("usage_usec", 0) * 1000,
            cpu_stat.get("system_usec", 0) * 1000,
            cpu_stat.get("user_usec", 0) * 1000,
        ),
        "throttling_data": _throttling(
            cpu_stat.get("nr_periods", 0), cpu_stat.get("nr_throttled", 0), cpu_stat.get("throttled_usec", 0) * 1000
        ),
    }
    memory: dict[str, Any] = {}
    if "memory" in cgroup.dirs:
        memory["usage"] = _int(directory, "memory.current") or 0
        memory["stats"] = _keyed(_text(directory, "memory.stat"))
        memory["limit"] = _limit(_int(directory, "memory.max"), memory_total)
    blkio: dict[str, Any] = dict(EMPTY_BLKIO)
    if "io" in cgroup.dirs:
        service_bytes, serviced = _v2_io(_text(directory, "io.stat"))
        blkio["io_service_bytes_recursive"] = service_bytes
        blkio["io_serviced_recursive"] = serviced
    pids = _pids(directory) if "pids" in cgroup.dirs else {}
    return {"cpu_stats": cpu, "memory_stats": memory, "pids_stats": pids, "blkio_stats": blkio}


def _v2_io(text: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """io.stat lines ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") as dockerd's read/write entries."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in (text or "").splitlines():
        device, *fields = line.split()
        major, _, minor = device.partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        values = {}
        for field in fields:
            key, _, value = field.partition("=")
            if value.isdigit():
                values[key] = int(value)
        for op, bytes_key, ios_key in (("read", "rbytes", "rios"), ("write", "wbytes", "wios")):
            entry = {"major": int(major), "minor": int(minor), "op": op}
            service_bytes.append({**entry, "value": values.get(bytes_key, 0)})
            serviced.append({**entry, "value": values.get(ios_key, 0)})
    return service_bytes, serviced
