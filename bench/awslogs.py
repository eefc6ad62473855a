"""awslogs benchmark: one container ships N lines of ~78 bytes to a CloudWatch Logs emulator (LocalStack)
through the awslogs driver; next to it, the emulator's own ceiling measured in the same run: a direct
boto3 loop of full 10,000-event PutLogEvents batches.

    .venv/bin/python bench/awslogs.py [--lines 200000]

Uses AWS_ENDPOINT_URL if set, else starts LocalStack from .venv-localstack (sh .ci/setup installs it).
Here: the emulator's ceiling was about 67k events/s; Docker's driver landed 98k events/s into the same
kind of emulator at 5.6 dockerd CPU-s per million. Target: >= 80% of the ceiling at <= 2 CPU-s per million.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds, peak_rss_mib
from tests.harness import Daemon
from tests.localstack import CREDENTIALS, LocalStack

LINE = "x" * 77  # 78 bytes with the newline


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


def landed(emulator: LocalStack, group: str, stream: str) -> int:
    client = emulator.client()
    total, token = 0, None
    while True:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True, "limit": 10_000}
        if token:
            kwargs["nextToken"] = token
        page = client.get_log_events(**kwargs)
        total += len(page["events"])
        if not page["events"] or page["nextForwardToken"] == token:
            return total
        token = page["nextForwardToken"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        emulator = LocalStack(Path(tmp) / "localstack")
        emulator.start()
        try:
            ceiling_rate, ceiling_cpu = ceiling(emulator, args.lines)
            daemon = Daemon(Path(tmp) / "logship", extra_env=dict(CREDENTIALS))
            daemon.start()
            try:
                daemon.import_busybox()
                assert daemon.process is not None
                pid = daemon.process.pid
                group = f"bench-{time.time_ns()}"
                opts = [
                    "--log-driver",
                    "awslogs",
                    "--log-opt",
                    f"awslogs-group={group}",
                    "--log-opt",
                    "awslogs-create-group=true",
                    "--log-opt",
                    f"awslogs-endpoint={emulator.endpoint}",
                ]
                # The first awslogs container pays once per daemon for importing boto3 and building the
                # client (about a second of CPU): measured apart, so the figure below is per event.
                cpu0 = cpu_seconds(pid)
                warmup = daemon.ok(
                    "run", "-d", *opts, "--log-opt", "awslogs-stream=warmup", "busybox", "echo", "warm"
                ).strip()
                daemon.ok("wait", warmup)
                first_use = cpu_seconds(pid) - cpu0
                cpu0 = cpu_seconds(pid)
                started = time.perf_counter()
                container_id = daemon.ok(
                    "run", "-d", *opts, "busybox", "sh", "-c", f"yes {LINE} | head -n {args.lines}"
                ).strip()
                daemon.ok("wait", container_id, timeout=3600)  # returns once the driver has flushed
                elapsed = time.perf_counter() - started
                cpu = cpu_seconds(pid) - cpu0
                rss = peak_rss_mib(pid)
                failed = daemon.inspect(container_id)["LogStats"]["Drivers"][0]["LinesFailed"]
                count = landed(emulator, group, container_id)
            finally:
                daemon.stop()
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


if __name__ == "__main__":
    main()
