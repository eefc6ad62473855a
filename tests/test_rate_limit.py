"""A container's rate limit (`rate-limit` lines per second, `rate-burst` at once), as journald's: over
it, non-blocking mode drops whole lines and counts each, blocking mode slows the container down and loses
nothing (see logship.pipeline.ratelimit)."""

from __future__ import annotations

import calendar
import json
import time

import pytest

from tests.harness import Daemon

pytestmark = pytest.mark.integration


def records(daemon: Daemon, container_id: str) -> list[dict[str, str]]:
    with open(daemon.inspect(container_id)["LogPath"], "rb") as log:
        return [json.loads(line) for line in log]


def seconds(rfc3339: str) -> float:
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (fraction or "0"))


def test_non_blocking_mode_drops_whole_lines_over_the_limit_and_counts_each(shared_daemon: Daemon) -> None:
    container_id = shared_daemon.ok(
        "run",
        "-d",
        "--log-opt",
        "mode=non-blocking",
        "--log-opt",
        "rate-limit=1000",
        "--log-opt",
        "rate-burst=500",
        "busybox",
        "sh",
        "-c",
        "seq 1 20000; echo a-line-without-a-newline-at-the-end | tr -d '\\n'",
    ).strip()
    shared_daemon.ok("wait", container_id)
    kept = [r["log"] for r in records(shared_daemon, container_id)]
    numbers = [int(line) for line in kept if line.rstrip("\n").isdigit()]
    stats = shared_daemon.inspect(container_id)["LogStats"]
    dropped = stats["Drivers"][0]["LinesDropped"]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1, "what is kept is whole lines, in order"
    assert all(line.endswith("\n") or line.startswith("a-line") for line in kept), "no line is cut"
    assert 500 <= len(numbers) < 20_000 and dropped > 0
    assert len(kept) + dropped == 20_001, "every line is kept or counted"
    assert stats["LinesRead"] == 20_001


def test_blocking_mode_slows_the_container_down_and_loses_nothing(shared_daemon: Daemon) -> None:
    container_id = shared_daemon.ok(
        "run", "-d", "--log-opt", "rate-limit=2000", "--log-opt", "rate-burst=100", "busybox", "seq", "1", "4000"
    ).strip()
    shared_daemon.ok("wait", container_id)
    got = records(shared_daemon, container_id)
    assert [int(r["log"]) for r in got] == list(range(1, 4001))
    assert shared_daemon.inspect(container_id)["LogStats"]["LinesDropped"] == 0
    # 4,000 lines at 2,000 a second after a burst of 100 are read over at least (4000 - 100 - 8 KiB's worth)
    # / 2000 seconds: the limiter's arithmetic, a lower bound however slow the machine is.
    span = seconds(got[-1]["time"]) - seconds(got[0]["time"])
    assert span >= (4000 - 100 - 8192 // 5) / 2000, span


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        ("rate-limit=fast", "invalid rate-limit 'fast'"),
        ("rate-limit=0", "invalid rate-limit '0'"),
        ("rate-burst=10", "rate-burst needs rate-limit"),
    ],
)
def test_rate_limit_options_are_checked_at_create(shared_daemon: Daemon, opt: str, message: str) -> None:
    result = shared_daemon.cli("create", "--log-opt", opt, "busybox", "true")
    assert result.code != 0 and message in result.err, result.err
