"""Processing end to end (issue 19): real containers print real traces, JSON logs and secrets, and the real
backends get events, fields and redacted lines: the real Fluentd (or the in-process receiver where the peers
folder is absent), LocalStack, journald and json-file on disk."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import FluentdFactory
from tests.harness import Daemon, run_with_awslogs, run_with_fluentd
from tests.journal import Journald, entries, message_bytes
from tests.localstack import CREDENTIALS, LocalStack, read_back
from tests.traces import PRINT_TRACE, TRACES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module, with the AWS credentials LocalStack takes."""
    with Daemon(tmp_path_factory.mktemp("processing"), extra_env=dict(CREDENTIALS)).started() as started:
        yield started


def expected_stderr(preset: str) -> list[str]:
    return ["starting", TRACES[preset](), "after the trace"]


def expected_stdout(preset: str) -> list[str]:
    lines = len(TRACES[preset]().split("\n"))
    return ["out 0", *[f"out {n}" for n in range(4, lines + 1, 4)], "out end"]


def run_traces(daemon: Daemon, *driver: str) -> dict[str, str]:
    """A container per preset printing its trace (PRINT_TRACE), with `--log-driver ...` args; waited for."""
    started = {
        preset: daemon.ok(
            "run",
            "-d",
            *driver,
            "--log-opt",
            f"multiline={preset}",
            "-e",
            f"TRACE={trace()}",
            "busybox",
            "sh",
            "-c",
            PRINT_TRACE,
        ).strip()
        for preset, trace in TRACES.items()
    }
    for container_id in started.values():
        daemon.ok("wait", container_id)
    return started


def test_each_trace_arrives_at_fluentd_as_one_event_and_stdout_never_joins(
    daemon: Daemon, fluentd_factory: FluentdFactory
) -> None:
    fluentd = fluentd_factory()
    containers = run_traces(
        daemon,
        "--log-driver",
        "fluentd",
        "--log-opt",
        f"fluentd-address={fluentd.address}",
        "--log-opt",
        "tag={{.ID}}",
    )
    fluentd.wait_for(sum(len(expected_stderr(p)) + len(expected_stdout(p)) for p in TRACES), timeout=30)
    for preset, container_id in containers.items():
        mine = [event.record for event in fluentd.events if event.tag == container_id[:12]]
        assert [r["log"] for r in mine if r["source"] == "stderr"] == expected_stderr(preset), preset
        assert [r["log"] for r in mine if r["source"] == "stdout"] == expected_stdout(preset), preset
        stats = daemon.inspect(container_id)["LogStats"]["Processing"]
        assert stats["EventsJoined"] == 1
        assert stats["LinesJoined"] == len(TRACES[preset]().split("\n"))


def test_each_trace_arrives_at_cloudwatch_as_one_event(daemon: Daemon, localstack: LocalStack) -> None:
    group = f"traces-{uuid.uuid4().hex[:8]}"
    containers = run_traces(
        daemon,
        "--log-driver",
        "awslogs",
        "--log-opt",
        f"awslogs-group={group}",
        "--log-opt",
        "awslogs-create-group=true",
        "--log-opt",
        f"awslogs-endpoint={localstack.endpoint}",
        "--log-opt",
        "awslogs-force-flush-interval-seconds=1",
    )
    for preset, container_id in containers.items():
        want = sorted(expected_stderr(preset) + expected_stdout(preset))
        events = read_back(localstack, group, container_id, len(want))
        assert sorted(event["message"] for event in events) == want, preset


def test_each_trace_arrives_in_the_journal_as_one_entry(daemon: Daemon, journald: Journald) -> None:
    containers = run_traces(daemon, "--log-driver", "journald")
    for preset, container_id in containers.items():
        want = expected_stderr(preset) + expected_stdout(preset)
        found = entries(f"CONTAINER_ID_FULL={container_id}", count=len(want))
        stderr = [message_bytes(e).decode() for e in found if e["PRIORITY"] == "3"]
        stdout = [message_bytes(e).decode() for e in found if e["PRIORITY"] == "6"]
        assert stderr == expected_stderr(preset), preset
        assert stdout == expected_stdout(preset), preset
        # `logs` reads the journal back: the event's lines, as the container printed them
        assert daemon.cli("logs", container_id).err == "\n".join(expected_stderr(preset)) + "\n"
