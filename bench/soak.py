"""Soak run (issue 8; not part of the test suite): many containers write numbered lines to json-file at a set
rate for minutes while one fluentd backend flaps. Prints, per 30 s, the daemon's RSS (it must stay flat) and
the lines read so far; at the end, lines written vs read back from the files (every sequence number checked,
in order, by awk), the flapping container's lines vs what its receiver got, and the p99 latency of a line
from the container's write to the line being in its file.

    .venv/bin/python bench/soak.py                # 50 containers x 5,000 lines/s for 5 minutes
    .venv/bin/python bench/soak.py --quick        # the same for 30 s
    .venv/bin/python bench/soak.py --containers 10 --rate 2000 --duration 60

Each container runs a busybox shell loop: every 0.1 s a burst of rate/10 lines `s<seq> ...` of ~100 bytes,
the burst's first line stamped with the container's /proc/uptime (10 ms resolution, the same clock as the
host's CLOCK_BOOTTIME; read with the shell's `read`, no fork). A tailer thread polls the files every 10 ms and
notes when each stamped line appears: write-to-file latency = seen - stamp (10 ms resolution, plus up to 10 ms
of polling). It also prints read-to-file latency: from the json-file record's `time` (when the daemon read
the line from the pipe, as Docker stamps it) to seen. The nominal rate is an upper bound: the shell loop's
own time is added to each 0.1 s tick, so the achieved rate is printed too.

The flapping backend: one more container logs to fluentd (`fluentd-async`, acks on) at the same rate; its
receiver goes down for 5 s every 15 s. Needs root and /bin/busybox.
"""

from __future__ import annotations

import argparse
import calendar
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logship.client import Client
from tests.fluentd_receiver import ForwardReceiver
from tests.harness import Daemon

PAD = "x" * 70
STAMPED = re.compile(rb'"log":"s\d+ T(\d+)\.(\d+) [^"]*","stream":"stdout","time":"([^"]+)"')


def producer(ticks: int, burst: int) -> str:
    """`ticks` bursts of `burst` numbered lines, 0.1 s apart; the first line of each carries /proc/uptime."""
    return (
        f"i=0; k=0; while [ $k -lt {ticks} ]; do read up idle < /proc/uptime; echo s$i T$up {PAD}; i=$((i+1)); "
        f"j=1; while [ $j -lt {burst} ]; do echo s$i {PAD}; i=$((i+1)); j=$((j+1)); done; "
        "k=$((k+1)); sleep 0.1; done"
    )


def rfc3339_ns(text: bytes) -> int:
    whole, _, rest = text.decode().rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((rest or "0").ljust(9, "0")[:9])


@dataclass
class Tailer:
    """Follows the containers' json-file logs and records, for every stamped line, when it appeared. What a
    file already holds when the tailer first opens it is skipped: it was not seen as it arrived."""

    paths: list[Path]  # appended to while it runs
    write_latency_ms: list[float] = field(default_factory=list)
    read_latency_ms: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        files: dict[Path, tuple[int, bytes]] = {}
        while not self.stop.is_set():
            for path in list(self.paths):
                if path not in files:
                    try:
                        fd = os.open(path, os.O_RDONLY)
                    except FileNotFoundError:
                        continue
                    existing = os.read(fd, 1 << 30)
                    files[path] = (fd, existing[existing.rfind(b"\n") + 1 :])
                fd, rest = files[path]
                data = rest + os.read(fd, 1 << 24)
                seen_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
                seen_real_ns = time.time_ns()
                end = data.rfind(b"\n") + 1
                for match in STAMPED.finditer(data, 0, end):
                    stamp = int(match[1]) + int(match[2]) / 100
                    self.write_latency_ms.append((seen_boot - stamp) * 1000)
                    self.read_latency_ms.append((seen_real_ns - rfc3339_ns(match[3])) / 1e6)
                files[path] = (fd, data[end:])
            time.sleep(0.01)
        for fd, _ in files.values():
            os.close(fd)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def check_file(path: Path, expected: int) -> tuple[int, int]:
    """(lines read back, sequence errors): each record's number must be the previous one's plus one."""
    script = (
        '{ p = index($0, "\\"log\\":\\"s"); s = substr($0, p + 8); n = substr(s, 1, index(s, " ") - 1) + 0; '
        "if (n != want) bad++; want = n + 1 } END { print NR + 0, bad + 0 }"
    )
    out = subprocess.run(["awk", script, str(path)], capture_output=True, text=True, check=True).stdout.split()
    lines, bad = int(out[0]), int(out[1])
    return lines, bad + abs(expected - lines)


def flap(receiver: ForwardReceiver, stop: threading.Event, restarts: list[float]) -> None:
    """Up 10 s, down 5 s, until stopped."""
    while not stop.wait(10.0):
        receiver.restart(down_for=5.0)
        restarts.append(time.monotonic())


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--rate", type=int, default=5000, help="lines/s per container (nominal)")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of writing")
    parser.add_argument("--quick", action="store_true", help="30 s instead of --duration")
    args = parser.parse_args()
    duration = 30.0 if args.quick else args.duration
    ticks = max(1, int(duration * 10))
    burst = max(1, args.rate // 10)
    expected = ticks * burst
    sample_every = 30.0 if duration >= 120 else duration / 6

    with tempfile.TemporaryDirectory(prefix="logship-soak-") as tmp:
        daemon = Daemon(Path(tmp))
        receiver = ForwardReceiver()
        receiver.start()
        stop_flapping = threading.Event()
        try:
            daemon.start()
            daemon.import_busybox()
            assert daemon.process is not None
            pid = daemon.process.pid
            print(
                f"soak: {args.containers} containers x {args.rate} lines/s (nominal) to json-file for {duration:g} s, "
                f"{expected} lines each; 1 more to fluentd whose receiver is down 5 s in every 15 s"
            )
            flapper = daemon.ok(
                "run",
                "-d",
                "--log-driver",
                "fluentd",
                "--log-opt",
                f"fluentd-address={receiver.address}",
                "--log-opt",
                "fluentd-async=true",
                "--log-opt",
                "fluentd-request-ack=true",
                "--log-opt",
                "fluentd-retry-wait=100ms",
                "busybox",
                "sh",
                "-c",
                producer(ticks, burst),
            ).strip()
            restarts: list[float] = []
            flapping = threading.Thread(target=flap, args=(receiver, stop_flapping, restarts), daemon=True)
            flapping.start()
            client = Client(daemon.host)
            tailer = Tailer([])
            tailing = threading.Thread(target=tailer.run, daemon=True)
            tailing.start()
            ids = []
            started = time.monotonic()
            for _ in range(args.containers):
                body = {"Image": "busybox", "Cmd": ["sh", "-c", producer(ticks, burst)]}
                cid = client.json("POST", "/containers/create", None, body)["Id"]
                client.request("POST", f"/containers/{cid}/start").read()
                tailer.paths.append(daemon.data_root / "containers" / cid / f"{cid}-json.log")
                ids.append(cid)
            paths = list(tailer.paths)
            print(f"  started in {time.monotonic() - started:.1f} s")
            print(f"  {'t (s)':>6} {'daemon RSS (MiB)':>17} {'lines read':>12}")
            rss_samples = []
            next_sample = time.monotonic()
            running = set(ids)
            while running:
                if time.monotonic() >= next_sample:
                    total = sum(client.json("GET", f"/containers/{cid}/json")["LogStats"]["LinesRead"] for cid in ids)
                    rss = rss_mib(pid)
                    rss_samples.append(rss)
                    print(f"  {time.monotonic() - started:6.0f} {rss:17.1f} {total:12d}", flush=True)
                    next_sample += sample_every
                time.sleep(0.5)
                running = {cid for cid in running if client.json("GET", f"/containers/{cid}/json")["State"]["Running"]}
            wrote_for = time.monotonic() - started
            rss_samples.append(rss_mib(pid))
            print(f"  {wrote_for:6.0f} {rss_samples[-1]:17.1f}  (all json-file containers done)")
            time.sleep(0.5)
            tailer.stop.set()
            tailing.join()
            stop_flapping.set()
            flapping.join()
            daemon.ok("wait", flapper, timeout=300)

            read_back = errors = 0
            for path in paths:
                lines, bad = check_file(path, expected)
                read_back += lines
                errors += bad
            written = expected * len(ids)
            got = receiver.values("log")
            unique = len({line.split(" ", 1)[0] for line in got})
            flap_stats = daemon.inspect(flapper)["LogStats"]["Drivers"]
            fluentd = next(d for d in flap_stats if d["Driver"] == "fluentd")
            print(f"json-file: lines written {written}, read back {read_back}, sequence errors {errors}")
            print(
                f"  achieved rate: {written / wrote_for / len(ids):,.0f} lines/s per container, "
                f"{written / wrote_for:,.0f} lines/s in all"
            )
            print(
                f"flapping fluentd: written {expected}, received {len(got)} ({unique} distinct, "
                f"{len(got) - unique} resent twice), failed {fluentd['LinesFailed']}, "
                f"receiver restarts {len(restarts)}"
            )
            growth = rss_samples[-1] - rss_samples[0]
            print(
                f"daemon RSS: first {rss_samples[0]:.1f} MiB, last {rss_samples[-1]:.1f} MiB, "
                f"max {max(rss_samples):.1f} MiB, last - first {growth:+.1f} MiB"
            )
            w, r = tailer.write_latency_ms, tailer.read_latency_ms
            print(
                f"write-to-file latency ({len(w)} stamped lines): p50 {percentile(w, 0.5):.0f} ms, "
                f"p99 {percentile(w, 0.99):.0f} ms, max {max(w, default=float('nan')):.0f} ms "
                "(10 ms resolution + up to 10 ms polling)"
            )
            print(
                f"read-to-file latency (json-file `time` to seen): p50 {percentile(r, 0.5):.1f} ms, "
                f"p99 {percentile(r, 0.99):.1f} ms, mean {statistics.fmean(r) if r else float('nan'):.1f} ms"
            )
        finally:
            stop_flapping.set()
            daemon.stop()
            receiver.stop()


if __name__ == "__main__":
    main()
