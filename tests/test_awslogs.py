"""The awslogs driver against a real CloudWatch Logs emulator (LocalStack): events read back with
get_log_events, every PutLogEvents call checked against CloudWatch's limits through botocore's event hooks,
start never blocked, outages survived, stop bounded."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logship.drivers import awslogs
from logship.drivers.awslogs import client as aws
from logship.drivers.awslogs.events import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_SPAN_MS
from logship.drivers.base import Undelivered
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch
from tests.harness import Daemon, run_with_awslogs
from tests.localstack import CREDENTIALS, SECRET, LocalStack, read_back

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def calls(localstack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every PutLogEvents call this process's driver makes, as botocore hands it the parameters."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    client = aws.client_for("us-east-1", localstack.endpoint, "", False)
    client.meta.events.register("provide-client-params.logs.PutLogEvents", record)
    yield seen
    client.meta.events.unregister("provide-client-params.logs.PutLogEvents", record)


def check_limits(call: dict[str, Any]) -> None:
    events = call["logEvents"]
    assert 0 < len(events) <= MAX_BATCH_EVENTS
    assert sum(len(e["message"].encode()) + 26 for e in events) <= MAX_BATCH_BYTES
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] <= MAX_SPAN_MS
    assert all(len(e["message"].encode()) <= MAX_EVENT_BYTES for e in events)


def info(localstack: LocalStack, group: str, **opts: str) -> ContainerInfo:
    config = {
        "awslogs-group": group,
        "awslogs-endpoint": localstack.endpoint,
        "awslogs-region": "us-east-1",
        "awslogs-create-group": "true",
        "awslogs-force-flush-interval-seconds": "1",
        **opts,
    }
    return ContainerInfo(uuid.uuid4().hex * 2, "/app", config=config)


def drive(driver_info: ContainerInfo, batches: list[Batch]) -> awslogs.AWSLogsDriver:
    async def scenario() -> awslogs.AWSLogsDriver:
        driver = await awslogs.new(driver_info)
        for batch in batches:
            await driver.log(batch)
        await driver.close()
        return driver

    return asyncio.run(scenario())


def test_a_burst_of_20000_events_is_split_into_batches_within_cloudwatchs_limits(
    localstack: LocalStack, calls: list[dict[str, Any]]
) -> None:
    group = unique("burst")
    now = time.time_ns()
    lines = [b"event %05d " % i + b"." * 70 for i in range(20_000)]
    driver = drive(info(localstack, group), [Batch("stdout", now, lines[i : i + 5000]) for i in range(0, 20_000, 5000)])
    assert len(calls) >= 2
    for call in calls:
        check_limits(call)
    events = read_back(localstack, group, driver.stream, 20_000)
    assert [e["message"] for e in events] == [line.decode() for line in lines]
    assert {e["timestamp"] for e in events} == {now // 1_000_000}


def test_big_events_are_split_on_character_boundaries_and_bad_bytes_count_three(
    localstack: LocalStack, calls: list[dict[str, Any]]
) -> None:
    group = unique("big")
    line = "é".encode() * 200_000  # 400,000 bytes of 2-byte characters
    bad = b"\xff" * 100_000  # 100,000 invalid bytes = 300,000 bytes of U+FFFD
    driver = drive(info(localstack, group), [Batch("stdout", time.time_ns(), [line, bad])])
    for call in calls:
        check_limits(call)
    events = read_back(localstack, group, driver.stream, 4)
    messages = [e["message"] for e in events]
    assert "".join(messages[:2]) == "é" * 200_000
    assert "".join(messages[2:]) == "\ufffd" * 100_000
    assert all(len(m.encode()) <= MAX_EVENT_BYTES for m in messages)


def test_multiline_pattern_groups_lines_with_the_first_lines_time(
    localstack: LocalStack, calls: list[dict[str, Any]]
) -> None:
    group = unique("multi")
    t1, t2 = time.time_ns(), time.time_ns() + 2_000_000_000
    batches = [Batch("stdout", t1, [b"INFO start", b"  detail 1"]), Batch("stdout", t2, [b"  detail 2", b"INFO next"])]
    driver = drive(info(localstack, group, **{"awslogs-multiline-pattern": "^INFO"}), batches)
    events = read_back(localstack, group, driver.stream, 2)
    assert [e["message"] for e in events] == ["INFO start\n  detail 1\n  detail 2\n", "INFO next\n"]
    assert events[0]["timestamp"] == t1 // 1_000_000 and events[1]["timestamp"] == t2 // 1_000_000


def test_datetime_format_starts_events_at_timestamps(localstack: LocalStack, calls: list[dict[str, Any]]) -> None:
    group = unique("datetime")
    lines = [b"[2026-11-29 10:00:01] error", b"Traceback:", b"  line", b"[2026-11-29 10:00:02] ok"]
    driver = drive(
        info(localstack, group, **{"awslogs-datetime-format": r"\[%Y-%m-%d %H:%M:%S\]"}),
        [Batch("stderr", time.time_ns(), lines)],
    )
    events = read_back(localstack, group, driver.stream, 2)
    assert [e["message"] for e in events] == [
        "[2026-11-29 10:00:01] error\nTraceback:\n  line\n",
        "[2026-11-29 10:00:02] ok\n",
    ]


def test_a_pending_multiline_event_is_flushed_after_the_interval(
    localstack: LocalStack, calls: list[dict[str, Any]]
) -> None:
    group = unique("pending")

    async def scenario() -> str:
        driver = await awslogs.new(info(localstack, group, **{"awslogs-multiline-pattern": "^BEGIN"}))
        await driver.log(Batch("stdout", time.time_ns(), [b"BEGIN only event", b"  continued"]))
        await asyncio.sleep(3.5)  # no further line arrives: the interval (1 s) must flush it anyway
        flushed = bool(calls)
        await driver.close()
        assert flushed
        return driver.stream

    stream = asyncio.run(scenario())
    assert [e["message"] for e in read_back(localstack, group, stream, 1)] == ["BEGIN only event\n  continued\n"]


def test_stream_name_comes_from_the_tag_or_the_option(localstack: LocalStack, calls: list[dict[str, Any]]) -> None:
    tagged = drive(info(localstack, unique("tag"), tag="{{.Name}}-{{.ID}}"), [])
    assert re.fullmatch(r"app-[0-9a-f]{12}", tagged.stream)
    named = drive(info(localstack, unique("named"), **{"awslogs-stream": "fixed"}), [])
    assert named.stream == "fixed"
    default = info(localstack, unique("default"))
    assert drive(default, []).stream == default.container_id


def test_without_create_group_a_missing_group_is_reported_once_with_the_count(
    localstack: LocalStack, calls: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    driver_info = info(localstack, unique("missing"), **{"awslogs-create-group": "false"})

    async def scenario() -> None:
        driver = await awslogs.new(driver_info)
        await driver.log(Batch("stdout", time.time_ns(), [b"a", b"b", b"c"]))
        await driver.close(timeout_s=2)

    with pytest.raises(Undelivered) as lost:
        asyncio.run(scenario())
    assert lost.value.lines == 3
    assert "does not exist (create it, or set awslogs-create-group=true)" in caplog.text


def test_create_stream_false_uses_an_existing_stream(localstack: LocalStack, calls: list[dict[str, Any]]) -> None:
    group, stream = unique("existing"), "made-by-hand"
    client = localstack.client()
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName=stream)
    drive(
        info(localstack, group, **{"awslogs-create-stream": "false", "awslogs-stream": stream}),
        [Batch("stdout", time.time_ns(), [b"into the existing stream"])],
    )
    assert [e["message"] for e in read_back(localstack, group, stream, 1)] == ["into the existing stream"]


def test_events_cloudwatch_rejects_as_too_old_are_counted(
    localstack: LocalStack, calls: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    old = time.time_ns() - 20 * 86400 * 10**9
    driver = drive(
        info(localstack, unique("old")),
        [Batch("stdout", old, [b"ancient"]), Batch("stdout", time.time_ns(), [b"fresh"])],
    )
    counters = driver.delivery_counters()
    assert counters.lines_failed == 1 and "too old or too new" in counters.last_error
    assert "rejected 1 of" in caplog.text


def test_options_are_checked_at_create_with_dockers_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    cases = {
        "must specify a value for log opt 'awslogs-group'": {},
        "unknown log opt 'labels' for awslogs log driver": {"awslogs-group": "g", "labels": "a"},
        "cannot determine the region for the awslogs driver": {"awslogs-group": "g"},
        "unsupported log format 'text'": {"awslogs-group": "g", "awslogs-region": "r", "awslogs-format": "text"},
        "at the same time": {
            "awslogs-group": "g",
            "awslogs-region": "r",
            "awslogs-datetime-format": "%Y",
            "awslogs-multiline-pattern": "^x",
        },
        "must specify a positive integer for log opt 'awslogs-max-buffered-events': 0": {
            "awslogs-group": "g",
            "awslogs-region": "r",
            "awslogs-max-buffered-events": "0",
        },
        "must specify valid value for log opt 'awslogs-create-group'": {
            "awslogs-group": "g",
            "awslogs-region": "r",
            "awslogs-create-group": "perhaps",
        },
    }
    for error, opts in cases.items():
        with pytest.raises(InvalidParameter, match=re.escape(error)):
            awslogs.validate_options(opts)


# ---- through a real daemon and real containers ---------------------------------------------------------


@pytest.fixture(scope="module")
def aws_daemon(tmp_path_factory: pytest.TempPathFactory, localstack: LocalStack) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("awsd"), extra_env=dict(CREDENTIALS)).started() as daemon:
        yield daemon


def test_a_container_ships_every_line_to_its_stream(aws_daemon: Daemon, localstack: LocalStack) -> None:
    group = unique("run")
    container_id = run_with_awslogs(aws_daemon, localstack.endpoint, group, "echo first; echo second >&2; echo third")
    aws_daemon.ok("wait", container_id)
    events = read_back(localstack, group, container_id, 3)
    assert sorted(e["message"] for e in events) == ["first", "second", "third"]


def test_sixty_thousand_numbered_lines_land_exactly_once_and_in_order(
    aws_daemon: Daemon, localstack: LocalStack
) -> None:
    """Many batches' worth, written as fast as the pipe takes them (reads of up to 1 MiB share a timestamp,
    so batches cut milliseconds): CloudWatch must hold every line once, in the order written."""
    group = unique("ordered")
    awk = 'BEGIN { for (i = 0; i < 60000; i++) printf "line %06d %s\\n", i, "' + "." * 70 + '" }'
    container_id = run_with_awslogs(aws_daemon, localstack.endpoint, group, f"awk '{awk}'")
    aws_daemon.ok("wait", container_id, timeout=120)
    events = read_back(localstack, group, container_id, 60_000, timeout=60)
    assert len(events) == 60_000
    assert [e["message"][:11] for e in events] == [f"line {i:06d}" for i in range(60_000)]
    assert aws_daemon.inspect(container_id)["LogStats"]["Drivers"][0]["LinesFailed"] == 0


def test_an_emulator_outage_mid_stream_loses_nothing_in_blocking_mode(
    aws_daemon: Daemon, localstack: LocalStack
) -> None:
    if localstack.external:
        pytest.skip("only a LocalStack started by the tests can be stopped")
    group = unique("outage")
    container_id = run_with_awslogs(
        aws_daemon,
        localstack.endpoint,
        group,
        "i=0; while [ $i -lt 3000 ]; do echo seq$i; i=$((i+1)); sleep 0.01; done",
    )
    time.sleep(3)
    localstack.pause()
    try:
        time.sleep(20)
    finally:
        localstack.resume()
    aws_daemon.ok("wait", container_id, timeout=180)
    events = read_back(localstack, group, container_id, 3000, timeout=60)
    assert [e["message"] for e in events] == [f"seq{i}" for i in range(3000)]
    stats = aws_daemon.inspect(container_id)["LogStats"]
    assert stats["LinesDropped"] == 0 and stats["Drivers"][0]["LinesFailed"] == 0


def test_region_missing_fails_create_clearly(tmp_path: Path, localstack: LocalStack) -> None:
    daemon = Daemon(tmp_path / "noregion", extra_env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    daemon.start()
    try:
        daemon.import_busybox()
        result = daemon.cli("run", "--log-driver", "awslogs", "--log-opt", "awslogs-group=g", "busybox", "true")
        assert result.code == 125
        assert "cannot determine the region for the awslogs driver: set --log-opt awslogs-region" in result.err
        assert daemon.ok("ps", "-aq") == ""
    finally:
        daemon.stop()


def test_an_unreachable_endpoint_never_blocks_start_and_stop_is_bounded(
    aws_daemon: Daemon, localstack: LocalStack
) -> None:
    started = time.monotonic()
    container_id = run_with_awslogs(
        aws_daemon, "http://127.0.0.1:9", unique("unreachable"), "echo lost-1; echo lost-2; sleep 60"
    )
    assert time.monotonic() - started < 10
    assert aws_daemon.inspect(container_id)["State"]["Running"]
    time.sleep(1)
    stopping = time.monotonic()
    aws_daemon.ok("stop", "-t", "1", container_id)
    assert time.monotonic() - stopping < 25
    driver = aws_daemon.inspect(container_id)["LogStats"]["Drivers"][0]
    assert driver["LinesFailed"] == 0 and driver["DiskBuffer"]["Pending"], "its lines wait on disk"
    assert aws_daemon.ok("buffer", "drop", container_id).strip() == f"{container_id[:12]}: 2 lines given up"
    driver = aws_daemon.inspect(container_id)["LogStats"]["Drivers"][0]
    assert driver["LinesFailed"] == 2 and "dropped on purpose" in driver["LastError"]
    assert SECRET not in aws_daemon.daemon_log() and SECRET not in aws_daemon.ok("inspect", container_id)


def test_lines_of_a_container_stopped_while_the_emulator_is_down_land_once_it_is_back(
    aws_daemon: Daemon, localstack: LocalStack
) -> None:
    if localstack.external:
        pytest.skip("only a LocalStack started by the tests can be paused")
    group = unique("downatstop")
    container_id = run_with_awslogs(
        aws_daemon, localstack.endpoint, group, "sleep 3; echo late-1; echo late-2; sleep 60"
    )
    time.sleep(2)  # the stream exists by now
    localstack.pause()
    try:
        time.sleep(2)
        stopping = time.monotonic()
        aws_daemon.ok("stop", "-t", "1", container_id)
        assert time.monotonic() - stopping < 10, "stop does not wait for CloudWatch"
        assert aws_daemon.inspect(container_id)["LogStats"]["Drivers"][0]["DiskBuffer"]["Pending"]
    finally:
        localstack.resume()
    events = read_back(localstack, group, container_id, 2)
    assert [e["message"] for e in events] == ["late-1", "late-2"]
    assert aws_daemon.inspect(container_id)["LogStats"]["Drivers"][0]["LinesFailed"] == 0
