"""Fan-out benchmark: one container's output to json-file, fluentd and awslogs with its dual-logging cache
at once, next to json-file alone, in the same run.

    .venv/bin/python bench/fanout.py [--lines 500000]

A container has one log driver in Docker's model (plus the cache), so this runs the daemon's pipeline
in this process: busybox `yes | head` writes into a 1 MiB pipe, `copy_stream` and `LineSplitter` read
it, one `Router` fans each batch out to the drivers, all real: fluentd sends to the Forward receiver of
tests/fluentd_receiver.py (its own process), awslogs to LocalStack (tests/localstack.py; AWS_ENDPOINT_URL
if set, else .venv-localstack), the cache is the local-format file. Times run from the first read to the
end of `Router.close()` (every driver flushed); CPU is this process's (boto3's threads included).

Rows: json-file alone; the fan-out in blocking mode (Docker's default: the slowest backend sets the pace,
and LocalStack takes only ~67k events/s); the same without awslogs (what the fan-out itself costs); the
fan-out in non-blocking mode (max-buffer-size=1m per driver: nobody waits for CloudWatch, its drops are
counted). Target (issue 9): fan-out >= 50% of json-file alone.

Each row also shows the rate the container saw (until the copier had read all its output, before the
drivers' final flush) and the CPU the backends spent meanwhile: on a 2-core machine the receiver and the
CloudWatch emulator, both Python, share the cores with the pipeline they measure, which remote services
would not.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds, producer
from logship.drivers import cache, registry
from logship.drivers.base import LogDriver
from logship.pipeline.copier import LineSplitter, copy_stream
from logship.pipeline.info import ContainerInfo
from logship.pipeline.router import Router
from logship.pipeline.stats import LogStats
from tests.fluentd_receiver import ReceiverProcess
from tests.localstack import CREDENTIALS, LocalStack

F_SETPIPE_SZ = 1031
ALL = ("json-file", "fluentd", "awslogs", "cache")


@dataclass
class Result:
    label: str
    seconds: float  # from the first read to every driver flushed and closed
    copied_seconds: float  # from the first read to the container's last byte read: what the container saw
    cpu_seconds: float
    backend_cpu_seconds: dict[str, float]
    stats: LogStats


class Backends:
    def __init__(self, fluentd: ReceiverProcess, localstack: LocalStack, work: Path) -> None:
        self.fluentd = fluentd
        self.localstack = localstack
        self.work = work
        self.runs = 0

    async def open(self, names: tuple[str, ...]) -> list[LogDriver]:
        self.runs += 1
        directory = self.work / f"container-{self.runs}"
        directory.mkdir()
        container_id = f"{self.runs:064x}"
        opts_by_driver = {
            "fluentd": {"fluentd-address": self.fluentd.address},
            "awslogs": {
                "awslogs-group": "fanout",
                "awslogs-create-group": "true",
                "awslogs-stream": f"run-{self.runs}",
                "awslogs-endpoint": self.localstack.endpoint,
            },
        }
        drivers: list[LogDriver] = []
        for name in names:
            info = ContainerInfo(
                container_id,
                "/fanout",
                config=opts_by_driver.get(name, {}),
                log_path=str(directory / f"{container_id}-json.log"),
                container_dir=str(directory),
            )
            drivers.append(await (cache.open_cache(info) if name == "cache" else registry.get(name).new(info)))
        return drivers

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by the fluentd receiver and by LocalStack (one process each)."""
        used = {"receiver": cpu_seconds(self.fluentd.pid)}
        if self.localstack.process is not None:  # None when AWS_ENDPOINT_URL names another machine's
            used["LocalStack"] = cpu_seconds(self.localstack.process.pid)
        return used


async def pipeline(backends: Backends, names: tuple[str, ...], lines: int, mode: str = "blocking") -> Result:
    if "awslogs" in names:  # LocalStack slows down as it fills: each run starts on an empty one
        await asyncio.to_thread(backends.localstack.restart)
    drivers = await backends.open(names)
    stats = LogStats()
    router = Router("f" * 64, drivers, stats, mode, 1 << 20)
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, F_SETPIPE_SZ, 1 << 20)
    os.set_blocking(read_end, False)
    container = subprocess.Popen(["/bin/busybox", "sh", "-c", producer(lines)], stdout=write_end)
    os.close(write_end)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    backends0 = backends.cpu_seconds()
    started = time.perf_counter()
    try:
        await copy_stream(read_end, LineSplitter("stdout"), router.deliver)
        copied = time.perf_counter() - started
        await router.close(timeout=600)
    finally:
        os.close(read_end)
        container.wait()
    seconds = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    backend_cpu = {name: used - backends0[name] for name, used in backends.cpu_seconds().items()}
    label = " + ".join(names) + ("" if mode == "blocking" else f" ({mode}, 1m)")
    return Result(label, seconds, copied, cpu, backend_cpu, stats)


async def scenario(backends: Backends, lines: int) -> list[Result]:
    await pipeline(backends, ALL, 1000)  # warm-up: boto3's import and client, the log group
    results = [await pipeline(backends, ("json-file",), lines)]
    results.append(await pipeline(backends, ALL, lines))
    results.append(await pipeline(backends, ("json-file", "fluentd", "cache"), lines))
    results.append(await pipeline(backends, ALL, lines, "non-blocking"))
    results.append(await pipeline(backends, ("json-file",), lines))  # again: the machine may have changed
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=500_000)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    logging.basicConfig(level=logging.ERROR)  # the router's drop warnings: the counters below show every drop

    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        localstack = LocalStack(work / "localstack")
        localstack.start()
        fluentd = ReceiverProcess(count=True)
        fluentd.start()
        try:
            results = asyncio.run(scenario(Backends(fluentd, localstack, work), args.lines))
        finally:
            fluentd.stop()
            localstack.stop()

    alone_s = (results[0].seconds + results[-1].seconds) / 2  # json-file alone, first and last
    print(f"lines                        {args.lines:,} x 100 bytes, in-process pipeline (see the docstring)")
    alone_copied_s = (results[0].copied_seconds + results[-1].copied_seconds) / 2
    for result in results:
        rate = args.lines / result.seconds
        print(
            f"{result.label:56} {rate / 1e3:7.0f}k lines/s  {alone_s / result.seconds:5.2f}x of alone"
            f"  {result.cpu_seconds / args.lines * 1e6:5.2f} CPU-s/M"
        )
        backends = ", ".join(f"{name} {used:.2f}" for name, used in result.backend_cpu_seconds.items() if used >= 0.01)
        print(
            f"    container side {args.lines / result.copied_seconds / 1e3:7.0f}k lines/s"
            f"  {alone_copied_s / result.copied_seconds:5.2f}x of alone; backends' CPU-s: {backends or 'none'}"
        )
        for driver in result.stats.drivers:
            print(
                f"    {driver.driver:10} written {driver.lines_written:9,}  dropped {driver.lines_dropped:9,}"
                f"  failed {driver.lines_failed + driver.driver_failed:,}"
            )
    print("x of alone: against the mean time of the two json-file alone runs; target: fan-out >= 0.50x")
    print("container side: until the container's last byte was read, before the drivers' final flush")


if __name__ == "__main__":
    main()
