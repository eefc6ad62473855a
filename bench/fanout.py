"""Fan-out benchmark: one container's output to json-file, fluentd and awslogs with its dual-logging cache
at once, next to json-file alone, in the same run.

    .venv/bin/python bench/fanout.py [--lines 500000]

A container has one log driver in Docker's model (plus the cache), so this runs the daemon's pipeline
in this process (bench/pipeline.py): busybox `yes | head` writes into a 1 MiB pipe, the spool, the copier
and the router feed json-file and the cache in step, and fluentd and awslogs each read the spool at their
own pace (their disk buffers), all real: fluentd sends to the Forward receiver of tests/fluentd_receiver.py
(its own process), awslogs to LocalStack (tests/localstack.py; AWS_ENDPOINT_URL if set, else
.venv-localstack). CPU is this process's (boto3's threads included).

Rows: json-file alone; the fan-out with LocalStack running, then stopped (its lines are buffered on disk,
and given up once the container has ended); the same without awslogs; the fan-out in step with the
container, as Docker does it (the slowest backend sets the pace: LocalStack takes ~70k events/s); the
fan-out in non-blocking mode. Target (issues 9 and 15): the container-side rate of the fan-out >= 0.5x
of json-file alone, with LocalStack running and stopped.

Each row shows the rate the container saw (until the copier had read all its output) and the rate until
every driver had delivered, and the CPU the backends spent meanwhile: on a 2-core machine the receiver and
the CloudWatch emulator, both Python, share the cores with the pipeline they measure, which remote
services would not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds, producer
from bench.pipeline import Run, open_drivers, run_pipeline
from logship.drivers.base import LogDriver
from tests.fluentd_receiver import ReceiverProcess
from tests.localstack import CREDENTIALS, LocalStack

ALL = ("json-file", "fluentd", "awslogs", "cache")


class Backends:
    def __init__(self, fluentd: ReceiverProcess, localstack: LocalStack, work: Path) -> None:
        self.fluentd = fluentd
        self.localstack = localstack
        self.work = work
        self.runs = 0

    async def open(self, names: tuple[str, ...]) -> tuple[list[LogDriver], Path]:
        self.runs += 1
        directory = self.work / f"container-{self.runs}"
        directory.mkdir()
        opts_by_driver = {
            "fluentd": {"fluentd-address": self.fluentd.address},
            "awslogs": {
                "awslogs-group": "fanout",
                "awslogs-create-group": "true",
                "awslogs-stream": f"run-{self.runs}",
                "awslogs-endpoint": self.localstack.endpoint,
            },
        }
        return await open_drivers(names, opts_by_driver, directory, f"{self.runs:064x}"), directory

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by the fluentd receiver and by LocalStack (one process each)."""
        used = {"receiver": cpu_seconds(self.fluentd.pid)}
        if self.localstack.process is not None:  # None when AWS_ENDPOINT_URL names another machine's
            used["LocalStack"] = cpu_seconds(self.localstack.process.pid)
        return used


async def pipeline(
    backends: Backends,
    names: tuple[str, ...],
    lines: int,
    mode: str = "blocking",
    in_step: bool = False,
    cloudwatch_down: bool = False,
) -> Run:
    if "awslogs" in names:  # LocalStack slows down as it fills: each run starts on an empty one
        await asyncio.to_thread(backends.localstack.restart)
        if cloudwatch_down:
            await asyncio.to_thread(backends.localstack.stop)
    drivers, directory = await backends.open(names)
    label = " + ".join(names) + ("" if mode == "blocking" else f" ({mode})") + (" in step" if in_step else "")
    label += ", LocalStack stopped" if cloudwatch_down else ""
    backends0 = backends.cpu_seconds()
    run = await run_pipeline(
        label,
        drivers,
        directory,
        producer(lines),
        lines,
        mode,
        in_step=in_step,
        give_up=frozenset({"awslogs"}) if cloudwatch_down else frozenset(),
    )
    if cloudwatch_down:
        await asyncio.to_thread(backends.localstack.start)
    run.backend_cpu_seconds = {name: used - backends0.get(name, 0.0) for name, used in backends.cpu_seconds().items()}
    return run


async def scenario(backends: Backends, lines: int) -> list[Run]:
    await pipeline(backends, ALL, 1000)  # warm-up: boto3's import and client, the log group
    results = [await pipeline(backends, ("json-file",), lines)]
    results.append(await pipeline(backends, ALL, lines))
    results.append(await pipeline(backends, ALL, lines, cloudwatch_down=True))
    results.append(await pipeline(backends, ("json-file", "fluentd", "cache"), lines))
    results.append(await pipeline(backends, ALL, lines, in_step=True))
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

    alone_copied_s = (results[0].copied_seconds + results[-1].copied_seconds) / 2  # json-file alone, first, last
    print(f"lines {args.lines:,} x 100 bytes, in-process pipeline (see the docstring); load {os.getloadavg()[0]:.2f}")
    for result in results:
        print(
            f"{result.label:62} container side {args.lines / result.copied_seconds / 1e3:6.0f}k lines/s"
            f" = {alone_copied_s / result.copied_seconds:4.2f}x of alone"
        )
        backends = ", ".join(f"{name} {used:.2f}" for name, used in result.backend_cpu_seconds.items() if used >= 0.01)
        print(
            f"    all delivered {args.lines / result.seconds / 1e3:6.0f}k lines/s"
            f"  {result.cpu_seconds / args.lines * 1e6:5.2f} CPU-s/M; backends' CPU-s: {backends or 'none'}"
        )
        for driver in result.stats.drivers:
            print(
                f"    {driver.driver:10} written {driver.lines_written:9,}  dropped {driver.lines_dropped:9,}"
                f"  failed {driver.lines_failed + driver.driver_failed:9,}"
            )
    print("x of alone: the container side against the mean of the two json-file alone runs; target >= 0.50x")
    print("container side: until the container's last byte was read; all delivered: until every driver closed")


if __name__ == "__main__":
    main()
