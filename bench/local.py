"""local vs json-file: the same lines written and read back with each driver, printed side by side.

Two measurements of N lines of 100 bytes (99 characters and the newline):

- drivers: straight through the driver objects, in batches of 10,000 lines (what the copier hands
  over for a busy container), then `read_logs` of everything. Format and file costs only.
- daemon: a container writes the lines (`run -d`, then `wait`, as bench/ingest.py does), then the whole
  `logship logs <name> > /dev/null` (CLI process included) reads them back. Needs root and busybox-static.

Both drivers keep every line for the comparison: json-file without rotation (its default), local with
`max-size=0` (its default would rotate at 20 MiB and keep 5 files).

    .venv/bin/python bench/local.py [--lines 2000000] [--skip-daemon]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import LINE_BYTES, cpu_seconds, producer
from logship.drivers import jsonfile, local
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDOUT, Batch
from logship.pipeline.readconfig import ReadConfig
from tests.harness import LOGSHIP, Daemon

BATCH_LINES = 10_000
DRIVERS = {"json-file": {}, "local": {"max-size": "0"}}


@dataclass
class Figures:
    write_s: float
    read_s: float
    lines_read: int
    disk_bytes: int
    daemon_cpu_s: float = 0.0


async def through_drivers(driver: str, lines: int, work: Path) -> Figures:
    work.mkdir()
    opts = DRIVERS[driver]
    info = ContainerInfo("f" * 64, "/bench", config=opts, container_dir=str(work), log_path=str(work / "c-json.log"))
    factory = local if driver == "local" else jsonfile
    line = b"x" * (LINE_BYTES - 1)
    batches = [
        Batch(STDOUT, 1_764_398_000_000_000_000 + n * 1_000_003, [line] * min(BATCH_LINES, lines - n))
        for n in range(0, lines, BATCH_LINES)
    ]
    writer = await factory.new(info)
    started = time.perf_counter()
    for batch in batches:
        await writer.log(batch)
    await writer.close()
    write_s = time.perf_counter() - started

    reader = await factory.new(info)
    started = time.perf_counter()
    read = 0
    async for messages in reader.read_logs(ReadConfig()):
        read += len(messages)
    read_s = time.perf_counter() - started
    await reader.close()
    disk = sum(path.stat().st_size for path in work.rglob("*") if path.is_file())
    return Figures(write_s, read_s, read, disk)


def through_daemon(daemon: Daemon, driver: str, lines: int) -> Figures:
    assert daemon.process is not None
    name = f"bench-{driver}"
    log_opts = [arg for key, value in DRIVERS[driver].items() for arg in ("--log-opt", f"{key}={value}")]
    cpu_before = cpu_seconds(daemon.process.pid)
    started = time.perf_counter()
    daemon.ok("run", "-d", "--name", name, "--log-driver", driver, *log_opts, "busybox", "sh", "-c", producer(lines))
    daemon.ok("wait", name, timeout=3600)  # returns once the log is flushed
    write_s = time.perf_counter() - started
    cpu = cpu_seconds(daemon.process.pid) - cpu_before

    started = time.perf_counter()
    with open("/dev/null", "wb") as sink:
        subprocess.run([*LOGSHIP, "logs", name], env=daemon.env(), check=True, stdout=sink)
    read_s = time.perf_counter() - started
    container_dir = daemon.data_root / "containers" / daemon.inspect(name)["Id"]
    disk = sum(p.stat().st_size for p in container_dir.rglob("*") if p.is_file() and ".log" in p.name)
    written = daemon.inspect(name)["LogStats"]["Drivers"][0]["LinesWritten"]
    return Figures(write_s, read_s, written, disk, cpu)


def report(title: str, lines: int, figures: dict[str, Figures]) -> None:
    print(f"\n{title}")
    print(f"  {'':24}{'json-file':>14}{'local':>14}{'local/json':>12}")
    json_f, local_f = figures["json-file"], figures["local"]
    rows = [
        ("write, k lines/s", lines / json_f.write_s / 1e3, lines / local_f.write_s / 1e3),
        ("read all, k lines/s", json_f.lines_read / json_f.read_s / 1e3, local_f.lines_read / local_f.read_s / 1e3),
    ]
    for label, json_v, local_v in rows:
        print(f"  {label:24}{json_v:14.0f}{local_v:14.0f}{local_v / json_v:11.2f}x")
    if json_f.daemon_cpu_s:
        per_m = (json_f.daemon_cpu_s / lines * 1e6, local_f.daemon_cpu_s / lines * 1e6)
        print(f"  {'daemon CPU-s / 1M lines':24}{per_m[0]:14.2f}{per_m[1]:14.2f}{per_m[1] / per_m[0]:11.2f}x")
    print(f"  {'on disk, MB':24}{json_f.disk_bytes / 1e6:14.1f}{local_f.disk_bytes / 1e6:14.1f}")
    print(f"  {'lines read back':24}{json_f.lines_read:14,}{local_f.lines_read:14,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--skip-daemon", action="store_true", help="only the driver-level measurement")
    args = parser.parse_args()
    print(f"{args.lines:,} lines x {LINE_BYTES} bytes")

    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        work = Path(tmp)
        direct = {name: asyncio.run(through_drivers(name, args.lines, work / name)) for name in DRIVERS}
        report(f"drivers directly (batches of {BATCH_LINES:,} lines; read = read_logs)", args.lines, direct)
        if args.skip_daemon:
            return
        daemon = Daemon(work / "logship")
        daemon.start()
        try:
            daemon.import_busybox()
            via_daemon = {name: through_daemon(daemon, name, args.lines) for name in DRIVERS}
        finally:
            daemon.stop()
        report(
            "through the daemon (container -> logs; read = whole `logship logs` CLI to /dev/null)",
            args.lines,
            via_daemon,
        )


if __name__ == "__main__":
    main()
