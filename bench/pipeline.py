"""The daemon's logging pipeline for one container, run in this process, for the benchmarks that fan one
output out to several drivers (a container has one driver in Docker's model, plus its cache).

Busybox writes into a 1 MiB pipe; `logship.daemon.output.Output` does the rest as the daemon does: the
spool, the copier and the router for the in-step drivers (json-file, the local-format cache), a disk
buffer for each driver that ships off the host (fluentd, awslogs), all real drivers talking to real
backends. A run's times start at the first read: `copied_seconds` ends when the copier has read the
container's last byte (what the container saw), `seconds` when every driver has delivered and closed.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import resource
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from logship.daemon.output import Output
from logship.drivers import cache, registry
from logship.drivers.base import LogDriver
from logship.pipeline.budget import DaemonBudget
from logship.pipeline.info import ContainerInfo
from logship.pipeline.stats import LogStats

F_SETPIPE_SZ = 1031
DISK_BUFFERED = frozenset({"fluentd", "awslogs"})


@dataclass
class Run:
    label: str
    lines: int
    seconds: float  # from the first read to every driver delivered and closed
    copied_seconds: float  # from the first read to the container's last byte read: what the container saw
    cpu_seconds: float  # this process's (boto3's threads included)
    stats: LogStats
    backend_cpu_seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, float] = field(default_factory=dict)  # what a `during` hook measured


async def open_drivers(
    names: tuple[str, ...], opts_by_driver: Mapping[str, Mapping[str, str]], directory: Path, container_id: str
) -> list[LogDriver]:
    drivers: list[LogDriver] = []
    for name in names:
        info = ContainerInfo(
            container_id,
            "/bench",
            config=dict(opts_by_driver.get(name, {})),
            log_path=str(directory / f"{container_id}-json.log"),
            container_dir=str(directory),
        )
        drivers.append(await (cache.open_cache(info) if name == "cache" else registry.get(name).new(info)))
    return drivers


async def run_pipeline(
    label: str,
    drivers: list[LogDriver],
    directory: Path,
    producer: str,
    lines: int,
    mode: str = "blocking",
    during: Callable[[Output, Run], Awaitable[None]] | None = None,
    in_step: bool = False,
    give_up: frozenset[str] = frozenset(),
) -> Run:
    """One container's output (`producer`, a busybox shell command) through `drivers`; the network drivers
    read the spool at their own pace unless `in_step` (Docker's way: the slowest sets the pace). The disk
    buffers of the drivers named in `give_up` (a backend that is down) are given up once the container has
    ended instead of waited for."""
    container_id = os.urandom(32).hex()
    buffered = [not in_step and driver.name in DISK_BUFFERED for driver in drivers]
    stats = LogStats()
    opts = {"mode": mode} if mode != "blocking" else {}
    if mode != "blocking":
        opts["max-buffer-size"] = "1m"
    output = Output(
        container_id, directory, "bench", opts, stats, drivers, DaemonBudget(0), spooled=True, buffered=buffered
    )
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, F_SETPIPE_SZ, 1 << 20)
    os.set_blocking(read_end, False)
    container = subprocess.Popen(["/bin/busybox", "sh", "-c", producer], stdout=write_end)
    os.close(write_end)
    run = Run(label, lines, 0.0, 0.0, 0.0, stats)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    watching = asyncio.ensure_future(during(output, run)) if during is not None else None
    try:
        for task in output.copy([(read_end, "stdout")], None, None, "bench"):
            await task
        run.copied_seconds = time.perf_counter() - started
        left = await output.close(600)
        for buffer in left:
            if buffer.name in give_up:
                await buffer.abandon("its backend is down (benchmark)")
        await asyncio.gather(*(buffer.done.wait() for buffer in left))
        if left and output.spool is not None:
            output.spool.remove()
        if watching is not None:
            await watching
    finally:
        os.close(read_end)
        container.wait()
    run.seconds = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    run.cpu_seconds = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    return run


def spool_disk_bytes(output: Output) -> int:
    """What the spool takes on disk now (allocated blocks)."""
    if output.spool is None:
        return 0
    total = 0
    for path in output.spool.directory.iterdir():
        try:
            total += path.stat().st_blocks * 512
        except FileNotFoundError:
            continue
    return total
