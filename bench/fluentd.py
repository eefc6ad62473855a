"""fluentd benchmark: one container sends N records of 100 bytes through the fluentd driver to a counting
Forward-protocol receiver in its own process; next to it, the baseline: the same records sent one per
network message, as Docker's driver does, with fluent-logger's own sender.

    .venv/bin/python bench/fluentd.py [--records 1000000] [--ack]

Prints records/s, the daemon's CPU seconds per million records and its peak RSS, and the baseline's
records/s and CPU. Real fluentd here: ~50k records/s one per message, ~115k/s in 1,000-record batches;
Docker's driver landed 56k records/s at 6.8 dockerd CPU-s per million. Target: >= 300k records/s into the
counting receiver at <= 1.5 CPU-s per million records.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluent.sender import FluentSender

from bench.ingest import LINE_BYTES, cpu_seconds, peak_rss_mib, producer
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--baseline-records", type=int, default=200_000)
    parser.add_argument("--ack", action="store_true", help="fluentd-request-ack=true")
    args = parser.parse_args()

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
                cpu0 = cpu_seconds(pid)
                opts = ["--log-opt", f"fluentd-address={receiver.address}"]
                if args.ack:
                    opts += ["--log-opt", "fluentd-request-ack=true"]
                started = time.perf_counter()
                daemon.ok(
                    "run",
                    "-d",
                    "--log-driver",
                    "fluentd",
                    *opts,
                    "--name",
                    "fbench",
                    "busybox",
                    "sh",
                    "-c",
                    producer(args.records),
                )
                totals = receiver.wait_for_count(args.baseline_records + args.records, timeout=3600)
                elapsed = time.perf_counter() - started
                daemon.ok("wait", "fbench")
                cpu = cpu_seconds(pid) - cpu0
                rss = peak_rss_mib(pid)
            finally:
                daemon.stop()
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


if __name__ == "__main__":
    main()
