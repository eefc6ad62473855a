"""Outage benchmark: one container writes 2,000,000 lines to json-file plus fluentd while fluentd is down
for the first half, in the daemon's pipeline run in this process (bench/pipeline.py), with fluentd's
disk buffer; everything measured in the same run.

    .venv/bin/python bench/outage.py [--lines 2000000]

fluentd is the Forward receiver of tests/fluentd_receiver.py in its own process, counting events (the
real Fluentd takes ~115k records/s on this machine, see ../shared/peers/README.md: the receiver is
faster, which makes the catch-up figure harder to reach, not easier). It is stopped before the container
starts and started again, on the same port, once the container has written half its lines.

Printed, each beside its target (issue 15):
- the container-side rate (until the copier read the container's last byte) against json-file alone
  (>= 0.8x);
- the catch-up rate (lines delivered per second from fluentd's return until everything was delivered)
  against fluentd's own intake ceiling: the receiver fed pre-encoded Forward messages as fast as it takes
  them over one connection (>= 0.8x);
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
from tests.fluentd_receiver import ReceiverProcess

CEILING_RECORDS = 1_000_000


def intake_ceiling(receiver: ReceiverProcess, records: int = CEILING_RECORDS) -> float:
    """Records per second the receiver takes when a client sends pre-encoded PackedForward messages of 4,000
    100-byte records back to back over one connection (what no client can beat)."""
    encoder = RecordEncoder(ContainerInfo("c" * 64, "/ceiling"), {}, sub_second=True)
    batch = Batch.of_text("stdout", time.time_ns(), b"\n".join([b"x" * 99] * 4000), 4000)
    message = forward_message(encode_tag("ceiling"), [encoder.entries(batch)], 4000, None)
    host, port = receiver.address.removeprefix("tcp://").rsplit(":", 1)
    before = receiver.totals()["events"]
    started = time.perf_counter()
    with socket.create_connection((host, int(port))) as connection:
        for _ in range(records // 4000):
            connection.sendall(message)
    receiver.wait_for_count(before + records // 4000 * 4000, timeout=300)
    return records / (time.perf_counter() - started)


async def main(lines: int, work: Path) -> None:
    receiver = ReceiverProcess(count=True)
    receiver.start()
    address = receiver.address
    port = int(address.rsplit(":", 1)[1])
    ceiling = intake_ceiling(receiver)
    runs = 0

    async def run(label: str, names: tuple[str, ...], outage: bool = False) -> Run:
        nonlocal runs, receiver
        runs += 1
        directory = work / f"container-{runs}"
        directory.mkdir()
        opts = {"fluentd": {"fluentd-address": address, "fluentd-async": "true", "fluentd-retry-wait": "100ms"}}
        drivers = await open_drivers(names, opts, directory, f"{runs:064x}")
        if outage:
            receiver.stop()

        async def bring_fluentd_back(output: Output, result: Run) -> None:
            nonlocal receiver
            if not outage:
                return
            while output.stats.lines_read < lines // 2:
                await asyncio.sleep(0.01)
            (buffer,) = output.buffers
            result.notes["buffered lines"] = buffer.refresh_stats().lines
            result.notes["buffered bytes"] = buffer.refresh_stats().bytes
            result.notes["spool bytes on disk"] = spool_disk_bytes(output)
            receiver = ReceiverProcess(count=True, port=port)
            await asyncio.to_thread(receiver.start)
            back = time.perf_counter()
            delivered = buffer.confirmed_lines
            await buffer.done.wait()
            result.notes["catch-up lines/s"] = (buffer.confirmed_lines - delivered) / (time.perf_counter() - back)

        return await run_pipeline(label, drivers, directory, producer(lines), lines, during=bring_fluentd_back)

    try:
        await run("warm-up", ("json-file", "fluentd"))
        alone = [await run("json-file alone", ("json-file",))]
        up = await run("json-file + fluentd, fluentd up", ("json-file", "fluentd"))
        down = await run("json-file + fluentd, fluentd down for the first half", ("json-file", "fluentd"), True)
        alone.append(await run("json-file alone", ("json-file",)))
    finally:
        receiver.stop()
    alone_copied = sum(r.copied_seconds for r in alone) / len(alone)
    print(
        f"lines {lines:,} x 100 bytes; load {os.getloadavg()[0]:.2f}; fluentd's intake ceiling {ceiling / 1e3:.0f}k/s"
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
        f"catch-up                         {notes['catch-up lines/s'] / 1e3:5.0f}k lines/s = "
        f"{notes['catch-up lines/s'] / ceiling:4.2f}x of fluentd's intake ceiling  (>= 0.80x)"
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
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp:
        asyncio.run(main(arguments.lines, Path(tmp)))
