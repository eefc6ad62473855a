"""Non-blocking burst: a container writes N lines of 100 bytes as fast as it can, with json-file in
mode=non-blocking and max-buffer-size=1m (Docker's ring buffer). The daemon must never make the container
wait, so what its drivers cannot keep up with is dropped; this prints how many lines were kept and dropped,
and checks that every line is accounted for: dropped == written - kept, from the counters in `inspect`
(LogStats) and from the log file itself. The same producer piped into `cat > file` is timed alongside.

    .venv/bin/python bench/burst.py [--lines 2000000] [--rounds 3]

Real dockerd 20.10.24 on this kind of machine (2 cores, 2,000,000 lines of 101 bytes, same options) kept
0.67M-0.82M lines and counted none of the drops. Target (issue 9): keep at least twice as many, drops
counted exactly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import baseline, producer, run_container
from tests.harness import Daemon

OPTS = {"mode": "non-blocking", "max-buffer-size": "1m"}
# The same with rotation and compression: writes that rotate (and wait for gzip) go to a thread, the copier
# reads on meanwhile, and the 1 MB buffer does overflow: the case where every drop must be counted.
ROTATING = {**OPTS, "max-size": "20m", "max-file": "2", "compress": "true"}
DOCKERD_KEPT = "0.67M-0.82M"


@dataclass
class Round:
    options: str
    baseline_s: float
    seconds: float
    read: int
    kept: int
    dropped: int
    in_daemon_log: bool  # the final drop count appears in the daemon log (nothing to say when none)


def lines_in(path: Path) -> int:
    count = 0
    with open(path, "rb") as log:
        while block := log.read(1 << 20):
            count += block.count(b"\n")
    return count


def burst(daemon: Daemon, work: Path, name: str, lines: int, opts: dict[str, str]) -> Round:
    base_s = baseline(lines, work)
    run = run_container(daemon, name, producer(lines), "json-file", opts)
    stats = run.driver_stats("json-file")
    read, kept, dropped = run.info["LogStats"]["LinesRead"], stats["LinesWritten"], stats["LinesDropped"]
    # Every line the container wrote is either written or counted as dropped, nothing else.
    assert read == lines, f"read {read} of {lines} lines"
    assert dropped == lines - kept, f"dropped {dropped} != written {lines} - kept {kept}"
    assert stats["LinesFailed"] == 0, stats
    log_path = Path(run.info["LogPath"])
    if "max-size" not in opts:  # without rotation the file holds every kept line
        assert lines_in(log_path) == kept, f"LinesWritten {kept} but {lines_in(log_path)} lines in the log"
    for path in log_path.parent.glob(log_path.name + "*"):
        path.unlink()  # 340 MB a round: keep the disk and the page cache small
    reported = f"dropped {dropped} lines so far" in daemon.daemon_log() if dropped else True
    options = " ".join(f"{key}={value}" for key, value in opts.items() if key not in OPTS)
    return Round(options or "-", base_s, run.seconds, read, kept, dropped, reported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        daemon = Daemon(work / "logship")
        daemon.start()
        try:
            daemon.import_busybox()
            for index in range(args.rounds):
                rounds.append(burst(daemon, work, f"burst-{index}", args.lines, OPTS))
                rounds.append(burst(daemon, work, f"burst-rotating-{index}", args.lines, ROTATING))
        finally:
            daemon.stop()

    print(f"lines                        {args.lines:,} x 100 bytes, json-file mode=non-blocking max-buffer-size=1m")
    for each in rounds:
        print(
            f"  {each.options:34} producer|cat {args.lines / each.baseline_s / 1e3:5.0f}k lines/s;"
            f" logship {each.seconds:5.2f} s, kept {each.kept:9,}, dropped {each.dropped:9,}"
            f" (= written - kept), in the daemon log: {'yes' if each.in_daemon_log else 'NO'}"
        )
    for options in dict.fromkeys(each.options for each in rounds):
        kept = statistics.median(each.kept for each in rounds if each.options == options)
        print(f"kept, median, {options:34} {kept / 1e6:5.2f}M lines  (dockerd here: {DOCKERD_KEPT}; target >= 2x)")
    print("every round: read == written, dropped == written - kept, no line failed (checked); dockerd: drops silent")


if __name__ == "__main__":
    main()
