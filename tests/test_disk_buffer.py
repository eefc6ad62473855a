"""Disk buffers: a driver that ships off the host reads the container's spool at its own pace, so a backend
outage neither stalls the application nor loses a line (see logship.pipeline.diskbuffer).

These tests use the in-process Forward receiver (tests/fluentd_receiver.py, written from the Forward
protocol spec), which can be stopped and started at will; the long outage tests in test_outage_buffers.py
run against the real Fluentd where it is present.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.fluentd_receiver import ForwardReceiver
from tests.harness import Daemon, run_with_fluentd

pytestmark = pytest.mark.integration


def numbered(count: int, prefix: str = "n") -> str:
    """A shell loop printing `prefix0` .. `prefix<count-1>`, one a line, at full speed."""
    return f"i=0; while [ $i -lt {count} ]; do echo {prefix}$i; i=$((i+1)); done"


def numbers(values: list[str], prefix: str = "n") -> list[int]:
    return [int(value[len(prefix) :]) for value in values if value.startswith(prefix)]


@pytest.fixture
def down() -> Iterator[ForwardReceiver]:
    """A receiver that is not listening yet: its address is known, connections are refused."""
    receiver = ForwardReceiver()
    receiver.start()
    receiver.stop()
    try:
        yield receiver
    finally:
        receiver.stop()


def disk(daemon: Daemon, container_id: str) -> dict[str, object]:
    driver = daemon.inspect(container_id)["LogStats"]["Drivers"][0]
    assert driver["DiskBuffer"] is not None, driver
    return dict(driver["DiskBuffer"])


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_dead_fluentd_holds_neither_the_container_nor_its_cache(shared_daemon: Daemon, down: ForwardReceiver) -> None:
    container_id = run_with_fluentd(
        shared_daemon,
        down.address,
        "busybox",
        "sh",
        "-c",
        numbered(20_000),
        opts=("fluentd-async=true", "fluentd-request-ack=true", "fluentd-retry-wait=100ms"),
    )
    # 20,000 records are ~300 KB: with Docker's in-step drivers the container would wait for fluentd once
    # the driver's buffer, the router's queue and the pipe are full; here it ends while fluentd is away.
    assert shared_daemon.ok("wait", container_id).strip() == "0"
    logs = shared_daemon.ok("logs", container_id).split()
    assert numbers(logs) == list(range(20_000)), "the dual-logging cache has every line, in order"
    buffered = disk(shared_daemon, container_id)
    assert buffered["Pending"] is True and buffered["Lines"] == 20_000, buffered
    assert shared_daemon.ok("buffer", "ls", "-q").split() == [container_id[:12]]
    down.start()
    down.wait_until(lambda: down.event_count >= 20_000, timeout=60, what="every line")
    assert numbers(list(dict.fromkeys(down.values("log")))) == list(range(20_000))
    wait_until(lambda: not disk(shared_daemon, container_id)["Pending"], 10, "the delivery to end")
    driver = shared_daemon.inspect(container_id)["LogStats"]["Drivers"][0]
    assert driver["LinesFailed"] == 0 and driver["LinesDropped"] == 0
    assert shared_daemon.ok("buffer", "ls", "-q").split() == []


def seq(count: int) -> str:
    """`seq 1 COUNT` in the container: numbered lines at full speed (~7 bytes each)."""
    return f"seq 1 {count}"


def received_numbers(receiver: ForwardReceiver) -> list[int]:
    return [int(value) for value in receiver.values("log")]


def test_blocking_mode_holds_the_container_only_once_the_budget_is_used_up(
    shared_daemon: Daemon, down: ForwardReceiver
) -> None:
    count = 400_000  # ~2.9 MB: more than the budget, the driver's buffer and the pipe together
    container_id = run_with_fluentd(
        shared_daemon,
        down.address,
        "busybox",
        "sh",
        "-c",
        seq(count),
        opts=(
            "fluentd-async=true",
            "fluentd-request-ack=true",
            "fluentd-buffer-limit=64k",
            "fluentd-retry-wait=100ms",
            "buffer-max-size=256k",
        ),
    )
    wait_until(lambda: disk(shared_daemon, container_id)["Bytes"] >= 256 << 10, 20, "the budget to be used up")
    time.sleep(1)
    assert shared_daemon.inspect(container_id)["State"]["Running"], "the container waits once the budget is used"
    assert disk(shared_daemon, container_id)["Bytes"] <= (256 << 10) + (64 << 10) + (1 << 20)
    log = shared_daemon.daemon_log()
    warning = r"disk buffer of log driver fluentd for container \w+ \(buffer-max-size\) is (9\d|1\d\d)% full"
    assert re.search(warning, log)
    down.start()
    assert shared_daemon.ok("wait", container_id, timeout=120).strip() == "0"
    down.wait_until(lambda: down.event_count >= count, timeout=120, what="every line")
    assert list(dict.fromkeys(received_numbers(down))) == list(range(1, count + 1))
    driver = shared_daemon.inspect(container_id)["LogStats"]["Drivers"][0]
    assert driver["LinesDropped"] == 0 and driver["LinesFailed"] == 0


def test_non_blocking_mode_gives_up_the_oldest_lines_and_counts_each(
    shared_daemon: Daemon, down: ForwardReceiver
) -> None:
    count = 400_000
    container_id = run_with_fluentd(
        shared_daemon,
        down.address,
        "busybox",
        "sh",
        "-c",
        seq(count),
        opts=(
            "mode=non-blocking",
            "fluentd-async=true",
            "fluentd-request-ack=true",
            "fluentd-buffer-limit=64k",
            "fluentd-retry-wait=100ms",
            "buffer-max-size=256k",
        ),
    )
    assert shared_daemon.ok("wait", container_id, timeout=60).strip() == "0", "the container never waits"
    down.start()
    wait_until(lambda: not disk(shared_daemon, container_id)["Pending"], 60, "the delivery to end")
    got = received_numbers(down)
    driver = shared_daemon.inspect(container_id)["LogStats"]["Drivers"][0]
    assert got == sorted(set(got)), "in order, each once"
    assert driver["LinesDropped"] > 0 and driver["LinesFailed"] == 0
    assert len(got) + driver["LinesDropped"] == count, "every line given up is counted"
    assert got[-1] == count, "the newest lines are kept"
    gaps = [(a, b) for a, b in itertools.pairwise(got) if b != a + 1]
    # What the driver had taken before the budget ran out (its 64 KiB), then the newest ~256 KiB.
    assert len(gaps) <= 3, gaps[:5]


def test_undelivered_lines_survive_rm_and_a_daemon_restart(new_daemon: Daemon, down: ForwardReceiver) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    container_id = run_with_fluentd(
        new_daemon,
        down.address,
        "--name",
        "gone",
        "busybox",
        "sh",
        "-c",
        seq(5000),
        opts=("fluentd-async=true", "fluentd-request-ack=true", "fluentd-retry-wait=100ms"),
    )
    new_daemon.ok("wait", container_id)
    started = time.monotonic()
    new_daemon.ok("rm", container_id)
    assert time.monotonic() - started < 5, "rm does not wait for fluentd"
    assert "gone (removed)" in new_daemon.ok("stats", "--logging", "-a", "--no-stream")
    listed = new_daemon.ok("buffer", "ls")
    assert container_id[:12] in listed and "5000" in listed, listed
    assert container_id[:12] in new_daemon.ok("info")
    new_daemon.stop()
    new_daemon.start()
    assert new_daemon.ok("buffer", "ls", "-q").split() == [container_id[:12]]
    down.start()
    down.wait_until(lambda: down.event_count >= 5000, timeout=60, what="every line")
    assert list(dict.fromkeys(received_numbers(down))) == list(range(1, 5001))
    wait_until(lambda: new_daemon.ok("buffer", "ls", "-q").strip() == "", 10, "the delivery to end")
    assert not (new_daemon.data_root / "containers" / container_id).exists(), "nothing is left behind"


def test_a_pending_delivery_can_be_dropped_on_purpose_and_ends_at_its_max_age(
    shared_daemon: Daemon, down: ForwardReceiver
) -> None:
    opts = ("fluentd-async=true", "fluentd-retry-wait=100ms")
    dropped = run_with_fluentd(shared_daemon, down.address, "busybox", "seq", "1", "300", opts=opts)
    aged = run_with_fluentd(
        shared_daemon, down.address, "busybox", "seq", "1", "200", opts=(*opts, "buffer-max-age=2s")
    )
    shared_daemon.ok("wait", dropped)
    shared_daemon.ok("wait", aged)
    assert shared_daemon.ok("buffer", "drop", dropped).strip() == f"{dropped[:12]}: 300 lines given up"
    driver = shared_daemon.inspect(dropped)["LogStats"]["Drivers"][0]
    assert driver["LinesFailed"] == 300 and "dropped on purpose" in driver["LastError"]
    wait_until(lambda: aged[:12] not in shared_daemon.ok("buffer", "ls", "-q"), 10, "the max age to pass")
    driver = shared_daemon.inspect(aged)["LogStats"]["Drivers"][0]
    assert driver["LinesFailed"] == 200 and "buffer-max-age" in driver["LastError"]
    log = shared_daemon.daemon_log()
    assert f"container {dropped[:12]}: its pending delivery to fluentd was dropped on purpose: 300 lines" in log
    assert f"container {aged[:12]}: gave up 200 lines that fluentd had not delivered: buffer-max-age" in log
    result = shared_daemon.cli("buffer", "drop", "nosuchthing")
    assert result.code == 1 and "no pending delivery for nosuchthing" in result.err


@pytest.mark.parametrize(
    ("driver", "opt", "message"),
    [
        ("json-file", "buffer-max-size=1m", "buffer-max-size is only supported by log drivers that ship off the host"),
        ("fluentd", "buffer-max-size=lots", "error parsing option buffer-max-size: invalid size: 'lots'"),
        ("fluentd", "buffer-max-age=soon", "error parsing option buffer-max-age: invalid duration 'soon'"),
    ],
)
def test_buffer_options_are_checked_at_create(shared_daemon: Daemon, driver: str, opt: str, message: str) -> None:
    result = shared_daemon.cli("create", "--log-driver", driver, "--log-opt", opt, "busybox", "true")
    assert result.code != 0 and message in result.err, result.err


def test_the_buffer_shows_in_stats_metrics_and_info(shared_daemon: Daemon, down: ForwardReceiver) -> None:
    container_id = run_with_fluentd(
        shared_daemon,
        down.address,
        "--name",
        "shown",
        "busybox",
        "sh",
        "-c",
        "seq 1 1000; sleep 30",
        opts=("fluentd-async=true",),
    )
    try:
        wait_until(lambda: disk(shared_daemon, container_id)["Lines"] == 1000, 10, "the lines to be buffered")
        table = shared_daemon.ok("stats", "--logging", "--no-stream", "shown")
        assert "disk" in table and "1000 lines" in table, table
        metrics = shared_daemon.api("GET", "/metrics")[2].decode()
        labels = f'container_id="{container_id}",container_name="shown",driver="fluentd"'
        assert f"logship_log_disk_buffered_lines{{{labels}}} 1000.0" in metrics
        assert f"logship_log_disk_buffer_limit_bytes{{{labels}}} 5.36870912e+08" in metrics
        assert f"logship_log_disk_pending{{{labels}}} 0.0" in metrics
        assert "Log Disk Buffers:" in shared_daemon.ok("info")
    finally:
        shared_daemon.ok("rm", "-f", container_id)
        shared_daemon.ok("buffer", "drop", container_id)


def test_a_daemon_killed_during_the_outage_and_during_the_catch_up_loses_nothing(
    new_daemon: Daemon, down: ForwardReceiver
) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    half = 150_000
    container_id = run_with_fluentd(
        new_daemon,
        down.address,
        "busybox",
        "sh",
        "-c",
        f"seq 1 {half}; sleep 4; seq {half + 1} {2 * half}",
        opts=("fluentd-async=true", "fluentd-request-ack=true", "fluentd-buffer-limit=64k", "fluentd-retry-wait=100ms"),
    )
    wait_until(lambda: disk(new_daemon, container_id)["Lines"] >= half, 20, "the first half to be buffered")
    new_daemon.kill9()  # during the outage, the container still running
    new_daemon.start()
    assert new_daemon.ok("wait", container_id, timeout=60).strip() == "0"
    down.ack_delay = 0.02  # a slow catch-up, to be interrupted
    down.start()
    down.wait_until(lambda: down.event_count >= half // 2, timeout=60, what="the catch-up to be under way")
    new_daemon.kill9()  # during the catch-up
    down.ack_delay = 0.0
    new_daemon.start()
    down.wait_until(lambda: len(set(received_numbers(down))) >= 2 * half, timeout=120, what="every line")
    got = received_numbers(down)
    assert list(dict.fromkeys(got)) == list(range(1, 2 * half + 1)), "every line, in order"
    # At least once: what was sent but not acknowledged when the daemon was killed (at most what 64 KiB of
    # fluentd-buffer-limit holds: ~400 records here) comes again, nothing more.
    assert len(got) - 2 * half < 1000, len(got) - 2 * half
    wait_until(lambda: new_daemon.ok("buffer", "ls", "-q").strip() == "", 20, "the delivery to end")


def padded(count: int) -> str:
    """COUNT numbered ~100-byte lines at full speed ("<n> xxxx...")."""
    return f'awk \'BEGIN {{ p = sprintf("%90s", ""); gsub(/ /, "x", p); for (i = 1; i <= {count}; i++) print i, p }}\''


def padded_numbers(receiver: ForwardReceiver) -> list[int]:
    return [int(value.split(" ", 1)[0]) for value in receiver.values("log")]


@pytest.mark.parametrize("mode", ["blocking", "non-blocking"])
def test_a_full_disk_under_the_buffer_acts_as_a_used_up_budget(
    small_disk: Daemon, down: ForwardReceiver, mode: str
) -> None:
    count = 1_000_000  # ~100 MB of output into a 64 MiB disk
    container_id = run_with_fluentd(
        small_disk,
        down.address,
        "busybox",
        "sh",
        "-c",
        padded(count),
        opts=(
            f"mode={mode}",
            "cache-disabled=true",
            "fluentd-async=true",
            "fluentd-request-ack=true",
            "fluentd-buffer-limit=256k",
            "fluentd-retry-wait=100ms",
        ),
    )
    full = "no space left to spool the output"
    wait_until(lambda: full in small_disk.daemon_log(), 60, "the disk to be full")
    if mode == "blocking":
        time.sleep(1)
        assert small_disk.inspect(container_id)["State"]["Running"], "the container waits, as at a used-up budget"
    else:
        assert small_disk.ok("wait", container_id, timeout=120).strip() == "0", "the container never waits"
    down.start()
    assert small_disk.ok("wait", container_id, timeout=180).strip() == "0"
    wait_until(lambda: not disk(small_disk, container_id)["Pending"], 120, "the delivery to end")
    got = padded_numbers(down)
    driver = small_disk.inspect(container_id)["LogStats"]["Drivers"][0]
    log = small_disk.daemon_log()
    assert log.count(full) == 1, "said once"
    assert driver["LinesFailed"] == 0
    if mode == "blocking":
        assert list(dict.fromkeys(got)) == list(range(1, count + 1)), "every line, in order"
        assert driver["LinesDropped"] == 0
    else:
        assert got == sorted(set(got)), "in order, each once"
        assert len(got) + driver["LinesDropped"] == count, "every line given up is counted"
        assert driver["LinesDropped"] > 0 and got[-1] == count


def test_log_buffer_total_holds_back_the_containers_past_their_share(new_daemon: Daemon, down: ForwardReceiver) -> None:
    new_daemon.config = {"log-buffer-total": "512k"}
    new_daemon.start()
    new_daemon.import_busybox()
    opts = ("fluentd-async=true", "fluentd-buffer-limit=64k", "fluentd-retry-wait=100ms")
    count = 400_000  # ~2.9 MB each: far past the daemon-wide total, far below each one's own budget
    first = run_with_fluentd(new_daemon, down.address, "busybox", "sh", "-c", seq(count), opts=opts)
    second = run_with_fluentd(new_daemon, down.address, "busybox", "sh", "-c", seq(count), opts=opts)
    wait_until(lambda: "the daemon's disk buffers (log-buffer-total) is" in new_daemon.daemon_log(), 20, "the warning")
    time.sleep(1)
    held = [disk(new_daemon, c)["Bytes"] for c in (first, second)]
    assert all(new_daemon.inspect(c)["State"]["Running"] for c in (first, second)), "both wait"
    assert sum(held) <= (512 << 10) + 2 * ((64 << 10) + (1 << 20)), held
    info = json.loads(new_daemon.api("GET", "/info")[2])["LogBuffers"]
    assert info["TotalLimit"] == 512 << 10 and info["Buffers"] == 2
    down.start()
    for container_id in (first, second):
        assert new_daemon.ok("wait", container_id, timeout=120).strip() == "0"
    down.wait_until(lambda: down.event_count >= 2 * count, timeout=120, what="every line of both")
