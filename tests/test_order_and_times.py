"""A log's order and times are part of its content: what a container wrote first on either stream comes
first, at the grain of the daemon's reads, and a line's time never says it came after lines written
later (see logship.pipeline.splicer). Docker places a line written to stderr just before a burst on stdout
within its first ~1,400 records (2 KiB reads); logship must do at least as well, in every run.
"""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fluentd_receiver import ForwardReceiver
from tests.harness import Daemon, run_with_fluentd

pytestmark = pytest.mark.integration

SCRIPT = "echo hello; echo err >&2; seq 1 100000"
RUNS = 20
WITHIN = 2000  # records: where `err` must be, at the latest


def json_records(daemon: Daemon, container_id: str) -> list[dict[str, Any]]:
    with open(daemon.inspect(container_id)["LogPath"], "rb") as log:
        return [json.loads(line) for line in log]


def check(logs: list[str], times: list[Any]) -> int:
    assert len(logs) == 100_002, len(logs)
    position = logs.index("err")
    assert position < WITHIN, f"err is record {position}"
    assert logs.index("hello") < logs.index("1"), "stdout keeps its own order"
    assert all(a <= b for a, b in itertools.pairwise(times)), "a time went backwards in file order"
    return position


def test_json_file_keeps_the_order_across_streams_and_times_never_go_back(shared_daemon: Daemon) -> None:
    def one(_: int) -> int:
        container_id = shared_daemon.ok("run", "-d", "busybox", "sh", "-c", SCRIPT).strip()
        shared_daemon.ok("wait", container_id)
        records = json_records(shared_daemon, container_id)
        shared_daemon.ok("rm", container_id)
        return check([r["log"].rstrip("\n") for r in records], [r["time"] for r in records])

    with ThreadPoolExecutor(4) as pool:  # four at a time: the daemon busy with the others' bursts too
        positions = list(pool.map(one, range(RUNS)))
    assert max(positions) < WITHIN, positions


def test_fluentd_gets_the_same_order_and_times(shared_daemon: Daemon, receiver: ForwardReceiver) -> None:
    for _ in range(RUNS // 2):
        before = receiver.event_count
        container_id = run_with_fluentd(
            shared_daemon,
            receiver.address,
            "busybox",
            "sh",
            "-c",
            SCRIPT,
            opts=("fluentd-sub-second-precision=true",),
        )
        shared_daemon.ok("wait", container_id)
        receiver.wait_until(lambda b=before: receiver.event_count >= b + 100_002, timeout=60, what="every record")
        events = [e for e in receiver.events[before:] if e.record["container_id"] == container_id]
        check([e.record["log"] for e in events], [e.time_ns for e in events])
        shared_daemon.ok("rm", container_id)
