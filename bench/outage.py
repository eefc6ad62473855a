"""Outage benchmark: one container writes 2,000,000 lines to json-file plus fluentd while fluentd is down
for the first half, in the daemon's pipeline run in this process (bench/pipeline.py), with fluentd's
disk buffer; everything measured in the same run.

    .venv/bin/python bench/outage.py [--lines 2000000] [--real-fluentd]

fluentd is the Forward receiver of tests/fluentd_receiver.py in its own process, counting events, or with
--real-fluentd the real Fluentd 1.14.4 of shared/peers writing JSON lines (about 115k records/s on this
machine: the receiver is ten times faster, which makes the catch-up figure harder to reach). It is
stopped before the container starts and started again, on the same port, once the container has written
half its lines.

Printed, each beside its target (issue 15):
- the container-side rate (until the copier read the container's last byte) against json-file alone
  (>= 0.8x);
- the catch-up rate (the container's lines over the time from fluentd's return until fluentd has them
  all) against fluentd's own intake ceiling: fluentd fed pre-encoded Forward messages as fast as it takes
  them over one connection, until it has them all (>= 0.8x);
  and, apart, what it is made of: the driver's reconnect (its retry backoff) and the rate from the first
  record fluentd got back to the last;
- the daemon CPU spent per 1M buffered lines beyond the same run with fluentd up all along (<= 0.3 s);
- the spool's bytes on disk per byte buffered (allocated blocks against bytes not yet delivered, sampled
  when fluentd returns; <= 1.1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.ingest import producer
from bench.pipeline import Run, open_drivers, run_pipeline, spool_disk_bytes
from logship.daemon.output import Output
from logship.drivers.fluentd.encode import RecordEncoder, encode_tag, forward_message
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch
from tests.fluentd_real import RealFluentd
from tests.fluentd_receiver import ReceiverProcess

CEILING_RECORDS = 1_000_000


class Backend:
    """fluentd for the benchmark: stopped and started again on the same address, counted cheaply."""

    address = ""
    kind = ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def wait_for_count(self, count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fluentd has {self.count()} of {count} events after {timeout}s")
            time.sleep(0.02)


class Receiver(Backend):
    """The Forward receiver of tests/fluentd_receiver.py in its own process, counting events."""

    kind = "the counting Forward receiver (tests/fluentd_receiver.py)"

    def __init__(self) -> None:
        self.process = ReceiverProcess(count=True)
        self.process.start()
        self.address = self.process.address
        self.port = int(self.address.rsplit(":", 1)[1])
        self.before = 0  # events counted by the processes stopped so far
        self.running = True

    def start(self) -> None:
        self.process = ReceiverProcess(count=True, port=self.port)
        self.process.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.before += int(self.process.stop()["events"])

    def count(self) -> int:
        return self.before + (int(self.process.totals()["events"]) if self.running else 0)


class Fluentd(Backend):
    """The real Fluentd 1.14.4 of shared/peers (tests/fluentd_real.py), writing every event as a JSON line:
    counted by the lines of its output, without parsing them (the pipeline runs in this process)."""

    kind = "the real Fluentd 1.14.4 (shared/peers)"

    def __init__(self, work: Path) -> None:
        self.server = RealFluentd(work / "fluentd")
        self.server.start()
        self.address = self.server.address

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def count(self) -> int:
        total = 0
        for path in self.server.output_dir.glob("*"):
            with path.open("rb") as output:
                while chunk := output.read(1 << 20):
                    total += chunk.count(b"\n")
        return total


def first_arrival(fluentd: Backend, before: int, timeout: float = 60) -> int:
    """Polls fluentd's count until records arrive again after its return; the count then."""
    deadline = time.monotonic() + timeout
    while (count := fluentd.count()) == before:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no record reached fluentd within {timeout}s of its return")
        time.sleep(0.005)
    return count


def intake_ceiling(fluentd: Backend, records: int = CEILING_RECORDS) -> float:
    """Records per second fluentd takes when a client sends pre-encoded PackedForward messages of 4,000
    100-byte records back to back over one connection (what no client can beat), until it has them all."""
    encoder = RecordEncoder(ContainerInfo("c" * 64, "/ceiling"), {}, sub_second=True)
    batch = Batch.of_text("stdout", time.time_ns(), b"\n".join([b"x" * 99] * 4000), 4000)
    message = forward_message(encode_tag("ceiling"), [encoder.entries(batch)], 4000, None)
    host, port = fluentd.address.removeprefix("tcp://").rsplit(":", 1)
    before = fluentd.count()
    started = time.perf_counter()
    with socket.create_connection((host, int(port))) as connection:
        for _ in range(records // 4000):
            connection.sendall(message)
    fluentd.wait_for_count(before + records // 4000 * 4000)
    return records / (time.perf_counter() - started)


async def main(lines: int, work: Path, real: bool) -> None:
    fluentd: Backend = Fluentd(work) if real else Receiver()
    ceiling = intake_ceiling(fluentd)
    runs = 0

    async def run(label: str, names: tuple[str, ...], outage: bool = False) -> Run:
        nonlocal runs
        runs += 1
        directory = work / f"container-{runs}"
        directory.mkdir()
        opts = {"fluentd": {"fluentd-address": fluentd.address, "fluentd-async": "true", "fluentd-retry-wait": "100ms"}}
        drivers = await open_drivers(names, opts, directory, f"{runs:064x}")
        if outage:
            fluentd.stop()
        expected = fluentd.count() + (lines if "fluentd" in names else 0)

        async def bring_fluentd_back(output: Output, result: Run) -> None:
            if not outage:
                return
            while output.stats.lines_read < lines // 2:
                await asyncio.sleep(0.01)
            (buffer,) = output.buffers
            result.notes["buffered lines"] = buffer.refresh_stats().lines
            result.notes["buffered bytes"] = buffer.refresh_stats().bytes
            result.notes["spool bytes on disk"] = spool_disk_bytes(output)
            before = fluentd.count()
            await asyncio.to_thread(fluentd.start)
            back = time.perf_counter()
            first = await asyncio.to_thread(first_arrival, fluentd, before)
            reconnected = time.perf_counter()
            await asyncio.to_thread(fluentd.wait_for_count, expected)
            done = time.perf_counter()
            result.notes["catch-up lines/s"] = lines / (done - back)
            result.notes["reconnect s"] = reconnected - back
            result.notes["delivering lines/s"] = (expected - first) / (done - reconnected)

        result = await run_pipeline(label, drivers, directory, producer(lines), lines, during=bring_fluentd_back)
        await asyncio.to_thread(fluentd.wait_for_count, expected)
        return result

    try:
        await run("warm-up", ("json-file", "fluentd"))
        alone = [await run("json-file alone", ("json-file",))]
        up = await run("json-file + fluentd, fluentd up", ("json-file", "fluentd"))
        down = await run("json-file + fluentd, fluentd down for the first half", ("json-file", "fluentd"), True)
        alone.append(await run("json-file alone", ("json-file",)))
    finally:
        fluentd.stop()
    alone_copied = sum(r.copied_seconds for r in alone) / len(alone)
    load = os.getloadavg()[0]
    print(
        f"lines {lines:,} x 100 bytes; load {load:.2f}; fluentd: {fluentd.kind}, intake ceiling {ceiling / 1e3:.0f}k/s"
    )
    for result in (*alone, up, down):
        print(
            f"{result.label:56} container side {lines / result.copied_seconds / 1e3:6.0f}k lines/s = "
            f"{alone_copied / result.copied_seconds:4.2f}x of alone; all delivered in {result.seconds:5.2f} s; "
            f"{result.cpu_seconds:5.2f} CPU-s"
        )
    notes = down.notes
    buffered = notes["buffered lines"]
    extra_cpu = (down.cpu_seconds - up.cpu_seconds) / (buffered / 1e6)
    print()
    print(f"container side with the outage   {alone_copied / down.copied_seconds:5.2f}x of json-file alone  (>= 0.80x)")
    print(
        f"catch-up (fluentd back -> all    {notes['catch-up lines/s'] / 1e3:5.0f}k lines/s = "
        f"{notes['catch-up lines/s'] / ceiling:4.2f}x of fluentd's intake ceiling  (>= 0.80x)"
    )
    print(
        f"  of which: the driver's reconnect {notes['reconnect s']:5.2f} s (fluentd-retry-wait=100ms, x1.5 a try); "
        f"then {notes['delivering lines/s'] / 1e3:5.0f}k lines/s = {notes['delivering lines/s'] / ceiling:4.2f}x "
        "of the ceiling from the first record back to the last"
    )
    print(f"extra daemon CPU per 1M buffered {extra_cpu:5.2f} s ({buffered:,.0f} lines were buffered)  (<= 0.30 s)")
    print(
        f"disk per buffered byte           {notes['spool bytes on disk'] / notes['buffered bytes']:5.2f} "
        f"({notes['spool bytes on disk'] / 2**20:.1f} MiB on disk for {notes['buffered bytes'] / 2**20:.1f} MiB)"
        "  (<= 1.10)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument(
        "--real-fluentd", action="store_true", help="the real Fluentd of shared/peers (else the receiver)"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        asyncio.run(main(arguments.lines, Path(tmp), arguments.real_fluentd))
