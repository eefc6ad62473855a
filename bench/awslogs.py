"""awslogs benchmark: one container ships N lines of ~78 bytes to a CloudWatch Logs emulator (LocalStack)
through the awslogs driver; next to it, the emulator's own ceiling measured in the same run: a direct
boto3 loop of full 10,000-event PutLogEvents batches.

    .venv/bin/python bench/awslogs.py [--lines 200000] [--dockerd]

Uses AWS_ENDPOINT_URL if set, else starts LocalStack from .venv-localstack (sh .ci/setup installs it).
Here: the emulator's ceiling was about 67k events/s; Docker's driver landed 98k events/s into the same
kind of emulator at 5.6 dockerd CPU-s per million. Target: >= 80% of the ceiling at <= 2 CPU-s per million.

With --dockerd, the same containers (warm-up, then the N lines) then run on a real dockerd started for the
run (bench/dockerd.py; installs Debian's docker.io when absent) with `--log-driver awslogs` into the same
LocalStack (restarted empty before each engine, as before logship's run: it slows down as it fills), and
both are printed side by side: events/s landed, from `run -d` until the last event's
ingestionTime in LocalStack (the same clock for both, whether or not an engine's `wait` waits for its
driver's last batch), and CPU per million events of dockerd + containerd + the containers'
containerd-shims, next to logship's daemon.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import CpuMeter, Dockerd, print_side_by_side
from bench.ingest import cpu_seconds, peak_rss_mib
from tests.harness import Daemon
from tests.localstack import CREDENTIALS, LocalStack

LINE = "x" * 77  # 78 bytes with the newline
REGION = CREDENTIALS["AWS_REGION"]


@dataclass
class Shipped:
    """One engine's run: events that landed in LocalStack, seconds from `run -d` until the last of them
    landed, and the engine's CPU seconds for the first awslogs container (the warm-up) and for the run."""

    events: int
    seconds: float
    cpu_seconds: float
    first_use_cpu_seconds: float


def ceiling(emulator: LocalStack, events: int) -> tuple[float, float]:
    """Events/s and client CPU-s per million of a plain boto3 loop of full batches."""
    client = emulator.client()
    group = f"ceiling-{time.time_ns()}"
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="s")
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    sent = 0
    while sent < events:
        now = int(time.time() * 1000)
        batch = [{"timestamp": now, "message": LINE} for _ in range(min(10_000, events - sent))]
        client.put_log_events(logGroupName=group, logStreamName="s", logEvents=batch)
        sent += len(batch)
    elapsed = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    return events / elapsed, cpu / events * 1e6


def landed(emulator: LocalStack, group: str, stream: str) -> tuple[int, float]:
    """How many events the stream holds, and when the last of them landed (LocalStack's ingestionTime, in
    epoch seconds; 0 when there are none)."""
    client = emulator.client()
    total, last, token = 0, 0, None
    while True:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True, "limit": 10_000}
        if token:
            kwargs["nextToken"] = token
        page = client.get_log_events(**kwargs)
        total += len(page["events"])
        last = max([last, *(event["ingestionTime"] for event in page["events"])])
        if not page["events"] or page["nextForwardToken"] == token:
            return total, last / 1e3
        token = page["nextForwardToken"]


def wait_landed(emulator: LocalStack, group: str, stream: str, count: int, timeout: float) -> tuple[int, float]:
    """landed(), once it holds `count` events or after `timeout` seconds (what landed by then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            events, last = landed(emulator, group, stream)
        except emulator.client().exceptions.ResourceNotFoundException:  # the stream is not created yet
            events, last = 0, 0.0
        if events >= count or time.monotonic() > deadline:
            return events, last
        time.sleep(1)  # each look reads the whole stream back: not too often, LocalStack is still ingesting


def driver_args(group: str, emulator: LocalStack) -> list[str]:
    """The awslogs options of the benchmark's containers, the same on both engines."""
    return [
        *("--log-driver", "awslogs", "--log-opt", f"awslogs-group={group}"),
        *("--log-opt", "awslogs-create-group=true", "--log-opt", f"awslogs-endpoint={emulator.endpoint}"),
    ]


def with_dockerd(work: Path, emulator: LocalStack, lines: int) -> Shipped:
    """The same containers as logship's, on a real dockerd, into the same LocalStack."""
    # dockerd's driver takes its credentials from dockerd's environment only.
    with Dockerd(work / "dockerd", install_if_missing=True, extra_env=CREDENTIALS) as docker:
        docker.import_busybox()
        group = f"bench-dockerd-{time.time_ns()}"
        # dockerd runs with --bridge=none (bench/dockerd.py); the driver sends from dockerd.
        opts = ["--network", "none", *driver_args(group, emulator), "--log-opt", f"awslogs-region={REGION}"]
        # Meters, not cpu_seconds(): a container's shim exits with it and takes its CPU time along.
        with CpuMeter(docker) as first_use:
            warmup = docker.cli("run", "-d", *opts, "--log-opt", "awslogs-stream=warmup", "busybox", "echo", "warm")
            docker.cli("wait", warmup.stdout.decode().strip())
            wait_landed(emulator, group, "warmup", 1, timeout=60)
        with CpuMeter(docker) as meter:
            started = time.time()  # wall clock: compared with LocalStack's ingestionTime
            run = docker.cli("run", "-d", *opts, "busybox", "sh", "-c", f"yes {LINE} | head -n {lines}")
            container_id = run.stdout.decode().strip()
            docker.cli("wait", container_id)
            count, last = wait_landed(emulator, group, container_id, lines, timeout=600)
    return Shipped(count, last - started, meter.seconds, first_use.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--dockerd", action="store_true", help="also measure a real dockerd (docker.io)")
    args = parser.parse_args()
    dockerd: Shipped | None = None
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        emulator = LocalStack(Path(tmp) / "localstack")
        emulator.start()
        try:
            ceiling_rate, ceiling_cpu = ceiling(emulator, args.lines)
            emulator.restart()
            daemon = Daemon(Path(tmp) / "logship", extra_env=dict(CREDENTIALS))
            daemon.start()
            try:
                daemon.import_busybox()
                assert daemon.process is not None
                pid = daemon.process.pid
                group = f"bench-{time.time_ns()}"
                opts = driver_args(group, emulator)
                # The first awslogs container pays once per daemon for importing boto3 and building the
                # client (about a second of CPU): measured apart, so the figure below is per event.
                cpu0 = cpu_seconds(pid)
                warmup = daemon.ok(
                    "run", "-d", *opts, "--log-opt", "awslogs-stream=warmup", "busybox", "echo", "warm"
                ).strip()
                daemon.ok("wait", warmup)
                first_use = cpu_seconds(pid) - cpu0
                cpu0 = cpu_seconds(pid)
                started, started_epoch = time.perf_counter(), time.time()
                container_id = daemon.ok(
                    "run", "-d", *opts, "busybox", "sh", "-c", f"yes {LINE} | head -n {args.lines}"
                ).strip()
                daemon.ok("wait", container_id, timeout=3600)  # returns once the driver has flushed
                elapsed = time.perf_counter() - started
                cpu = cpu_seconds(pid) - cpu0
                rss = peak_rss_mib(pid)
                failed = daemon.inspect(container_id)["LogStats"]["Drivers"][0]["LinesFailed"]
                count, last = landed(emulator, group, container_id)
            finally:
                daemon.stop()
            # One engine at a time: they would share the two cores.
            if args.dockerd:
                emulator.restart()
                dockerd = with_dockerd(Path(tmp), emulator, args.lines)
        finally:
            emulator.stop()
    rate = count / elapsed
    print(f"lines                              {args.lines:,} x 78 bytes into LocalStack")
    print(
        f"emulator ceiling (boto3 loop)      {ceiling_rate / 1e3:8.1f}k events/s   "
        f"({ceiling_cpu:.2f} CPU-s per 1M in boto3)"
    )
    print(f"logship awslogs driver             {rate / 1e3:8.1f}k events/s   ({elapsed:.2f} s, run -d to flushed)")
    print(f"ratio to the ceiling               {rate / ceiling_rate * 100:8.0f} %   (target >= 80%)")
    print(f"daemon CPU per 1M events           {cpu / args.lines * 1e6:8.2f} CPU-s   (target <= 2; dockerd: 5.6)")
    print(f"daemon peak RSS                    {rss:8.1f} MiB")
    print(f"first awslogs use in the daemon    {first_use:8.2f} CPU-s   (importing boto3, building the client)")
    print(f"events landed / failed             {count:,} / {failed}")
    if dockerd is not None:
        print_side_by_side(
            dockerd,
            Shipped(count, last - started_epoch, cpu, first_use),
            [
                ("events landed", lambda e: e.events, ",.0f", ""),
                ("k events/s landed", lambda e: e.events / e.seconds / 1e3, ".1f", "higher"),
                ("CPU-s per 1M events", lambda e: e.cpu_seconds / e.events * 1e6, ".2f", "lower"),
                ("first awslogs container CPU-s", lambda e: e.first_use_cpu_seconds, ".2f", "lower"),
            ],
        )
        print("  (landed: from run -d to the last event's ingestionTime in LocalStack)")
        print("  (CPU: dockerd + containerd + containerd-shims, next to logship's daemon)")
        print("  (target: logship >= dockerd's landed rate, <= 2 CPU-s per 1M)")


if __name__ == "__main__":
    main()
