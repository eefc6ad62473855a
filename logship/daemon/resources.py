"""A container's resource statistics (`docker stats`), in dockerd's JSON shape.

One `sample` is what dockerd's collector takes each second: the cgroup's counters
(`logship.runtime.cgroupstats`) with the host's CPU time beside them. Clients compute a CPU percentage
from two samples, so a sample carries the previous one's CPU figures as `precpu_stats`: `Sampler` keeps
them for one stream. A container that is not running gives dockerd's empty sample (zero times).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from logship.daemon.container import rfc3339_nano
from logship.runtime import cgroupstats

if TYPE_CHECKING:
    from logship.daemon.handle import Container

INTERVAL_S = 1.0  # dockerd's collector interval
ZERO_CPU: dict[str, Any] = {
    "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
    "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
}


def running(container: Container) -> bool:
    return container.record.state.running and container.process is not None and bool(container.process.init_pid)


class Sampler:
    """Samples of one container for one stream, each with the previous one's CPU figures."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._pre_cpu: dict[str, Any] = ZERO_CPU
        self._pre_read_ns = 0

    def sample(self) -> dict[str, Any]:
        container = self.container
        record = container.record
        if not running(container):
            figures = {
                "pids_stats": {},
                "blkio_stats": dict(cgroupstats.EMPTY_BLKIO),
                "cpu_stats": ZERO_CPU,
                "memory_stats": {},
            }
            read_ns = 0
        else:
            process = container.process
            assert process is not None
            figures = cgroupstats.read(process.cgroup)
            system_ns, cpus = cgroupstats.system_cpu()
            figures["cpu_stats"] = {**figures["cpu_stats"], "system_cpu_usage": system_ns, "online_cpus": cpus}
            # dockerd's order: the throttling data last
            figures["cpu_stats"]["throttling_data"] = figures["cpu_stats"].pop("throttling_data")
            read_ns = time.time_ns()
        result = {
            "read": rfc3339_nano(read_ns),
            "preread": rfc3339_nano(self._pre_read_ns),
            "pids_stats": figures["pids_stats"],
            "blkio_stats": figures["blkio_stats"],
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": figures["cpu_stats"],
            "precpu_stats": self._pre_cpu,
            "memory_stats": figures["memory_stats"],
            "name": record.name,
            "id": record.id,
        }
        self._pre_cpu = figures["cpu_stats"]
        self._pre_read_ns = read_ns
        return result
