"""A backend away for a minute while a container writes a million lines at full speed: the container finishes
writing while the backend is still down (the disk buffer takes what the backend cannot), and once the
backend is back every line arrives, in order, as often as the delivery mode promises (at least once: the
numbers are checked line by line).

Both outages run at once, one container each, to keep the suite short: fluentd (the real Fluentd where
`../shared/peers` has it, else the in-process receiver written from the Forward protocol spec) and
awslogs into LocalStack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import FluentdFactory
from tests.harness import Daemon, run_with_awslogs, run_with_fluentd
from tests.localstack import CREDENTIALS, LocalStack, read_back

pytestmark = pytest.mark.integration

LINES = 1_000_000
OUTAGE_S = 60.0


def first_occurrences(numbers: list[int]) -> list[int]:
    return list(dict.fromkeys(numbers))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_minute_long_outage_of_fluentd_and_of_cloudwatch_loses_no_line(
    tmp_path: Path, localstack: LocalStack, fluentd_factory: FluentdFactory
) -> None:
    if localstack.external:
        pytest.skip("only a LocalStack started by the tests can be stopped")
    receiver = fluentd_factory(start=False)  # fluentd is down from the start
    daemon = Daemon(tmp_path / "logship", extra_env=dict(CREDENTIALS))
    with daemon.started():
        localstack.stop()  # CloudWatch too
        outage_began = time.monotonic()
        try:
            to_fluentd = run_with_fluentd(
                daemon,
                receiver.address,
                "busybox",
                "seq",
                "1",
                str(LINES),
                opts=("fluentd-async=true", "fluentd-request-ack=true", "fluentd-retry-wait=200ms"),
            )
            to_cloudwatch = run_with_awslogs(daemon, localstack.endpoint, "outage", f"seq 1 {LINES}")
            for container_id in (to_fluentd, to_cloudwatch):
                assert daemon.ok("wait", container_id, timeout=OUTAGE_S).strip() == "0", "it finished writing"
            assert time.monotonic() - outage_began < OUTAGE_S, "while the backends were still down"
            for container_id in (to_fluentd, to_cloudwatch):
                buffered = daemon.inspect(container_id)["LogStats"]["Drivers"][0]["DiskBuffer"]
                assert buffered["Pending"] and buffered["Lines"] == LINES, buffered
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_began)))
        finally:
            localstack.start()
            receiver.start()
        receiver.wait_until(lambda: receiver.event_count >= LINES, 300, what="every line at fluentd")
        events = read_back(localstack, "outage", to_cloudwatch, LINES, timeout=300)
        got_fluentd = [int(value) for value in receiver.values("log")]
        got_cloudwatch = [int(event["message"]) for event in events]
        for got in (got_fluentd, got_cloudwatch):
            assert first_occurrences(got) == list(range(1, LINES + 1)), "every line, in order"
        assert len(got_cloudwatch) == LINES, "no daemon restart here: exactly once"
        assert len(got_fluentd) == LINES, "acknowledged, no daemon restart: exactly once"
        wait_until(lambda: daemon.ok("buffer", "ls", "-q").strip() == "", 30, "the deliveries to end")
        for container_id in (to_fluentd, to_cloudwatch):
            driver = daemon.inspect(container_id)["LogStats"]["Drivers"][0]
            assert driver["LinesFailed"] == 0 and driver["LinesDropped"] == 0
