"""Processing benchmark (issue 19): N lines of about 100 bytes through the fluentd driver into a counting
Forward-protocol receiver in its own process, four ways, in alternating rounds on one daemon:

- a Java-like stream in which one line in ten starts an event (a logger's ERROR line, then nine `\\tat`
  frames), without processing, then with `multiline=java` (N/10 events land instead of N records);
- a stream of JSON log lines, without processing, then with `parse=json` (every record carries the keys).

    .venv/bin/python bench/processing.py [--lines 2000000] [--rounds 3]

Prints, for each, lines/s (from `run -d` until the receiver has counted every record) and the daemon's
CPU seconds per million lines (its one process, all threads), medians over the rounds, with the load
average at the start and the end. Targets: >= 400k lines/s and <= 2 CPU-s per 1M lines with processing;
without processing, ingest is unchanged (bench/ingest.py, before and after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds
from tests.fluentd_receiver import ReceiverProcess
from tests.harness import Daemon

_PAD = "x" * 40
JAVA_BLOCK = "\n".join(
    [
        "2024-05-01 12:00:00.000 ERROR [worker-3] c.e.s.OrderService - order could not be shipped: "
        "java.lang.IllegalStateException: boom",
        *[f"\tat com.example.shipping.OrderService.step{n}(OrderService.java:{80 + n}) {_PAD}" for n in range(9)],
    ]
)
JSON_LINE = (
    '{"ts":"2024-05-01T12:00:00.123Z","level":"info","msg":"request handled","path":"/api/v1/items",'
    '"status":200,"ms":12}'
)


@dataclass(frozen=True)
class Case:
    name: str
    opts: tuple[str, ...]
    script: str  # the container's command (sh -c)
    records_per_line: float  # records the receiver counts per line written


def cases(lines: int) -> list[Case]:
    java = f'yes "$BLOCK" | head -n {lines}'
    json_lines = f"yes '{JSON_LINE}' | head -n {lines}"
    return [
        Case("java stream, no processing", (), java, 1.0),
        Case("java stream, multiline=java", ("multiline=java",), java, 0.1),
        Case("json stream, no processing", (), json_lines, 1.0),
        Case("json stream, parse=json", ("parse=json",), json_lines, 1.0),
    ]


@dataclass
class Run:
    seconds: float
    cpu_seconds: float


def run_case(daemon: Daemon, receiver: ReceiverProcess, case: Case, lines: int, name: str) -> Run:
    assert daemon.process is not None
    pid = daemon.process.pid
    before = receiver.totals()["events"]
    opts = [item for opt in (f"fluentd-address={receiver.address}", *case.opts) for item in ("--log-opt", opt)]
    cpu0 = cpu_seconds(pid)
    started = time.perf_counter()
    daemon.ok(
        "run", "-d", "--name", name, "--log-driver", "fluentd", *opts, "-e", f"BLOCK={JAVA_BLOCK}",
        "busybox", "sh", "-c", case.script,
    )  # fmt: skip
    receiver.wait_for_count(before + round(lines * case.records_per_line), timeout=3600)
    elapsed = time.perf_counter() - started
    daemon.ok("wait", name)
    daemon.ok("rm", name)
    return Run(elapsed, cpu_seconds(pid) - cpu0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict[str, list[Run]] = {}
    receiver = ReceiverProcess(count=True)
    receiver.start()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp,
            Daemon(Path(tmp) / "logship").started() as daemon,
        ):
            for round_ in range(args.rounds):
                for index, case in enumerate(cases(args.lines)):
                    run = run_case(daemon, receiver, case, args.lines, f"pbench{round_}-{index}")
                    results.setdefault(case.name, []).append(run)
    finally:
        final = receiver.stop()
    load_after = os.getloadavg()
    print(f"lines                          {args.lines:,} of about 100 bytes, fluentd driver, medians of {args.rounds}")
    print(f"{'':32}{'lines/s':>10}{'CPU-s per 1M':>14}   rounds (lines/s)")
    for name, runs in results.items():
        rate = statistics.median(args.lines / run.seconds for run in runs)
        cpu = statistics.median(run.cpu_seconds / args.lines * 1e6 for run in runs)
        each = " ".join(f"{args.lines / run.seconds / 1e3:.0f}k" for run in runs)
        print(f"{name:32}{rate / 1e3:9.0f}k{cpu:14.2f}   {each}")
    print("targets with processing: >= 400k lines/s, <= 2 CPU-s per 1M lines")
    print(f"protocol errors at the receiver {len(final['protocol_errors'])}")
    print(f"load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end (2 cores)")


if __name__ == "__main__":
    main()
