"""fluentd benchmark: one container sends N records of 100 bytes through the fluentd driver to a counting
Forward-protocol receiver in its own process; next to it, the baseline: the same records sent one per
network message, as Docker's driver does, with fluent-logger's own sender.

    .venv/bin/python bench/fluentd.py [--records 1000000] [--ack] [--dockerd] [--real-fluentd]

Prints records/s, the daemon's CPU seconds per million records and its peak RSS, and the baseline's
records/s and CPU. Real fluentd here: ~50k records/s one per message, ~115k/s in 1,000-record batches;
Docker's driver landed 56k records/s at 6.8 dockerd CPU-s per million. Target: >= 300k records/s into the
counting receiver at <= 1.5 CPU-s per million records.

With --dockerd, the same container then runs on a real dockerd started for the run (bench/dockerd.py;
installs Debian's docker.io when absent) with `--log-driver fluentd` and the same receiver, and both are
printed side by side: records/s landed at the receiver (from `run -d` until it counted all N) and CPU per
million records of dockerd + containerd + the container's containerd-shim, next to logship's daemon.

With --real-fluentd, the same container also ships into the real Fluentd 1.14.4 of shared/peers (file
output, tests/fluentd_real.py): records/s landed in its file, both sides' CPU, and which is the bottleneck.
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

from fluent.sender import FluentSender

from bench.dockerd import CpuMeter, Dockerd, print_side_by_side
from bench.ingest import LINE_BYTES, cpu_seconds, peak_rss_mib, producer
from tests.fluentd_real import RealFluentd, real_fluentd_problem
from tests.fluentd_receiver import ReceiverProcess
from tests.harness import Daemon


def baseline(records: int, port: int) -> tuple[float, float]:
    """fluent-logger sends each record as its own Message-mode message: records/s and CPU-s per million."""
    sender = FluentSender("bench", host="127.0.0.1", port=port, nanosecond_precision=False)
    record = {"container_id": "f" * 64, "container_name": "/bench", "source": "stdout", "log": "x" * 99}
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    now = int(time.time())
    for _ in range(records):
        if not sender.emit_with_time(None, now, record):
            raise SystemExit(f"baseline sender failed: {sender.last_error}")
    elapsed = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    sender.close()
    cpu = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    return records / elapsed, cpu / records * 1e6


@dataclass
class Landed:
    """One engine's run into the receiver: wall time from `run -d` until the receiver counted every record,
    and the CPU seconds of the engine and of the receiver meanwhile."""

    records: int
    messages: int
    seconds: float
    cpu_seconds: float
    receiver_cpu_seconds: float


def with_dockerd(work: Path, receiver: ReceiverProcess, opts: list[str], records: int) -> Landed:
    """The same container as logship's, on a real dockerd, into the same receiver."""
    with Dockerd(work / "dockerd", install_if_missing=True) as docker:
        docker.import_busybox()
        before = receiver.totals()
        with CpuMeter(docker) as meter:  # the shim exits with the container: a meter keeps its CPU time
            receiver_cpu0 = cpu_seconds(receiver.pid)
            started = time.perf_counter()
            # No network: dockerd runs with --bridge=none (bench/dockerd.py), and the driver sends from dockerd.
            docker.cli("run", "-d", "--network", "none", *container_args(opts, records))
            totals = receiver.wait_for_count(before["events"] + records, timeout=3600)
            elapsed = time.perf_counter() - started
            receiver_cpu = cpu_seconds(receiver.pid) - receiver_cpu0
            docker.cli("wait", "fbench")
    return Landed(
        totals["events"] - before["events"],
        totals["messages"] - before["messages"],
        elapsed,
        meter.seconds,
        receiver_cpu,
    )


def container_args(opts: list[str], records: int) -> list[str]:
    """`run -d` arguments of the benchmark's container, the same on both engines."""
    return ["--log-driver", "fluentd", *opts, "--name", "fbench", "busybox", "sh", "-c", producer(records)]


def into_real_fluentd(work: Path, records: int, ack: bool) -> None:
    """The same container into the real Fluentd of shared/peers (file output), and which side limits the
    rate: the one that needs more CPU per record (Fluentd is one Ruby thread)."""
    problem = real_fluentd_problem()
    if problem:
        print(f"real Fluentd: not measured: {problem}")
        return
    fluentd = RealFluentd(work / "fluentd", flush_interval=1.0)
    daemon = Daemon(work / "logship-real")
    with fluentd, daemon.started():
        assert fluentd.process is not None and daemon.process is not None
        opts = ["--log-opt", f"fluentd-address={fluentd.address}"]
        if ack:
            opts += ["--log-opt", "fluentd-request-ack=true"]
        cpu0, fluentd_cpu0 = cpu_seconds(daemon.process.pid), cpu_seconds(fluentd.process.pid)
        started = time.perf_counter()
        daemon.ok("run", "-d", *container_args(opts, records))
        last, still = -1, time.monotonic()
        while (written := fluentd.lines_written()) < records:
            if written != last:
                last, still = written, time.monotonic()
            elif time.monotonic() - still > 60:
                raise SystemExit(f"real Fluentd stopped at {written:,} of {records:,} records")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(daemon.process.pid) - cpu0
        fluentd_cpu = cpu_seconds(fluentd.process.pid) - fluentd_cpu0
    busy = fluentd_cpu / elapsed
    print(f"real Fluentd 1.14.4 (file output)  {records / elapsed / 1e3:8.0f}k records/s landed ({elapsed:.2f} s)")
    print(
        f"  logship daemon CPU per 1M        {cpu / records * 1e6:8.2f} CPU-s ({cpu / elapsed:.2f} cores over the run)"
    )
    print(
        f"  Fluentd CPU per 1M               {fluentd_cpu / records * 1e6:8.2f} CPU-s ({busy:.2f} cores over the run)"
    )
    # On a shared machine the side that needs more CPU per record bounds the rate (a busy one-thread
    # Fluentd shows it too: near one core over the run).
    side = "Fluentd" if fluentd_cpu > cpu else "logship"
    factor = max(fluentd_cpu, cpu) / max(min(fluentd_cpu, cpu), 1e-9)
    print(f"  bottleneck                       {side} ({factor:.0f}x the other's CPU per record)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--baseline-records", type=int, default=200_000)
    parser.add_argument("--ack", action="store_true", help="fluentd-request-ack=true")
    parser.add_argument("--dockerd", action="store_true", help="also measure a real dockerd (docker.io)")
    parser.add_argument("--real-fluentd", action="store_true", help="also ship into the real Fluentd of shared/peers")
    args = parser.parse_args()
    dockerd: Landed | None = None

    receiver = ReceiverProcess(count=True)
    receiver.start()
    try:
        port = int(receiver.address.rsplit(":", 1)[1])
        base_rate, base_cpu = baseline(args.baseline_records, port)
        receiver.wait_for_count(args.baseline_records, timeout=600)
        with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
            daemon = Daemon(Path(tmp) / "logship")
            daemon.start()
            try:
                daemon.import_busybox()
                assert daemon.process is not None
                pid = daemon.process.pid
                cpu0, receiver_cpu0 = cpu_seconds(pid), cpu_seconds(receiver.pid)
                opts = ["--log-opt", f"fluentd-address={receiver.address}"]
                if args.ack:
                    opts += ["--log-opt", "fluentd-request-ack=true"]
                started = time.perf_counter()
                daemon.ok("run", "-d", *container_args(opts, args.records))
                totals = receiver.wait_for_count(args.baseline_records + args.records, timeout=3600)
                elapsed = time.perf_counter() - started
                receiver_cpu = cpu_seconds(receiver.pid) - receiver_cpu0
                daemon.ok("wait", "fbench")
                cpu = cpu_seconds(pid) - cpu0
                rss = peak_rss_mib(pid)
            finally:
                daemon.stop()
            # One engine at a time: they would share the two cores.
            if args.dockerd:
                dockerd = with_dockerd(Path(tmp), receiver, opts, args.records)
            if args.real_fluentd:
                into_real_fluentd(Path(tmp), args.records, args.ack)
    finally:
        final = receiver.stop()
    landed = totals["events"] - args.baseline_records
    acks = " (acks on)" if args.ack else ""
    print(f"records                            {args.records:,} x {LINE_BYTES} bytes{acks}")
    print(f"logship fluentd driver             {landed / elapsed / 1e3:8.0f}k records/s   ({elapsed:.2f} s)")
    print(f"daemon CPU per 1M records          {cpu / args.records * 1e6:8.2f} CPU-s   (target <= 1.5; dockerd: 6.8)")
    print(f"daemon peak RSS                    {rss:8.1f} MiB")
    print(
        f"receiver messages for logship      {totals['messages'] - args.baseline_records:8,}  (records per message: "
        f"{landed / max(totals['messages'] - args.baseline_records, 1):.0f})"
    )
    print(
        f"baseline: one record per message   {base_rate / 1e3:8.0f}k records/s   "
        f"({base_cpu:.2f} CPU-s per 1M, fluent-logger FluentSender)"
    )
    print(f"ratio logship/baseline             {landed / elapsed / base_rate:8.1f}x")
    print(f"protocol errors at the receiver    {len(final['protocol_errors']):8}")
    if dockerd is not None:
        logship = Landed(landed, totals["messages"] - args.baseline_records, elapsed, cpu, receiver_cpu)
        print_side_by_side(
            dockerd,
            logship,
            [
                ("records landed", lambda e: e.records, ",.0f", ""),
                ("k records/s landed", lambda e: e.records / e.seconds / 1e3, ".0f", "higher"),
                ("CPU-s per 1M records", lambda e: e.cpu_seconds / e.records * 1e6, ".2f", "lower"),
                ("records per message", lambda e: e.records / max(e.messages, 1), ".0f", ""),
                ("receiver CPU-s per 1M records", lambda e: e.receiver_cpu_seconds / e.records * 1e6, ".2f", "lower"),
            ],
        )
        print("  (landed: from run -d until the receiver counted every record)")
        print("  (CPU: dockerd + containerd + containerd-shim, next to logship's daemon)")
        print("  (target: logship <= 1.5 CPU-s per 1M)")


if __name__ == "__main__":
    main()
