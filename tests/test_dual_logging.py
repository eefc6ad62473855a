"""Dual logging: containers whose driver cannot read back (fluentd, awslogs) keep a local-format cache, so
`logs` works for them too; its options are honoured (unlike Docker's, moby#45668) and in blocking mode it
loses nothing. The fluentd side is the real Fluentd of ../shared/peers when it is there (else the
in-process receiver; the run says which)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import FluentdFactory
from tests.fluentd_real import FluentdServer
from tests.harness import Daemon, run_with_fluentd
from tests.localstack import CREDENTIALS, LocalStack, read_back

pytestmark = pytest.mark.integration


def seq(count: int) -> str:
    return f"i=0; while [ $i -lt {count} ]; do echo seq$i; i=$((i+1)); done"


def test_logs_of_a_fluentd_container_come_from_its_cache_and_match_fluentd(
    shared_daemon: Daemon, fluentd: FluentdServer
) -> None:
    container_id = run_with_fluentd(
        shared_daemon, fluentd.address, "busybox", "sh", "-c", "echo out; echo err >&2; " + seq(300)
    )
    shared_daemon.ok("wait", container_id)
    shipped = [e.record["log"] for e in fluentd.wait_for(302)]
    result = shared_daemon.cli("logs", container_id)
    assert result.code == 0, result.err
    assert result.stdout.decode().split() == [line for line in shipped if line != "err"]
    assert result.stderr == b"err\n"
    tail = shared_daemon.cli("logs", "--tail", "2", container_id)
    assert len(tail.stdout.split() + tail.stderr.split()) == 2 and tail.stdout.endswith(b"seq299\n")
    drivers = {d["Driver"]: d for d in shared_daemon.inspect(container_id)["LogStats"]["Drivers"]}
    assert drivers["fluentd"]["LinesWritten"] == drivers["cache"]["LinesWritten"] == 302
    assert (Path(shared_daemon.data_root) / "containers" / container_id / "container-cached.log").exists()


def test_a_running_fluentd_container_is_followed_through_its_cache(
    shared_daemon: Daemon, fluentd: FluentdServer
) -> None:
    container_id = run_with_fluentd(
        shared_daemon, fluentd.address, "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo tick$i; sleep 0.2; done"
    )
    assert shared_daemon.ok("logs", "-f", container_id, timeout=30).split() == [f"tick{i}" for i in range(1, 6)]


def test_cache_options_are_honoured(shared_daemon: Daemon, fluentd: FluentdServer) -> None:
    container_id = run_with_fluentd(
        shared_daemon,
        fluentd.address,
        "busybox",
        "sh",
        "-c",
        # Paced, so the output arrives in many reads: a whole batch goes into one cache file, as one frame.
        "i=0; while [ $i -lt 5000 ]; do echo seq$i; i=$((i+1)); [ $((i % 250)) -eq 0 ] && usleep 20000; done",
        opts=("cache-max-size=20k", "cache-max-file=2", "cache-compress=false"),
    )
    shared_daemon.ok("wait", container_id)
    directory = Path(shared_daemon.data_root) / "containers" / container_id
    assert sorted(p.name for p in directory.glob("container-cached.log*")) == [
        "container-cached.log",
        "container-cached.log.1",
    ]
    kept = shared_daemon.ok("logs", container_id).split()
    assert 0 < len(kept) < 5000 and kept[-1] == "seq4999"
    assert fluentd.wait_for(5000) and fluentd.event_count == 5000  # the backend still got everything
    bad = shared_daemon.cli(
        "run",
        "--log-driver",
        "fluentd",
        "--log-opt",
        f"fluentd-address={fluentd.address}",
        "--log-opt",
        "cache-max-size=lots",
        "busybox",
        "true",
    )
    assert bad.code == 125 and "invalid dual-logging cache options (cache-max-size)" in bad.err


def test_a_disabled_cache_and_the_none_driver_give_dockers_error(shared_daemon: Daemon, fluentd: FluentdServer) -> None:
    container_id = run_with_fluentd(
        shared_daemon, fluentd.address, "busybox", "echo", "not cached", opts=("cache-disabled=true",)
    )
    shared_daemon.ok("wait", container_id)
    result = shared_daemon.cli("logs", container_id)
    assert result.code == 1 and "configured logging driver does not support reading" in result.err
    assert not (Path(shared_daemon.data_root) / "containers" / container_id / "container-cached.log").exists()
    assert [d["Driver"] for d in shared_daemon.inspect(container_id)["LogStats"]["Drivers"]] == ["fluentd"]


def test_in_blocking_mode_the_cache_loses_nothing_while_fluentd_is_away(
    shared_daemon: Daemon, fluentd_factory: FluentdFactory
) -> None:
    fluentd = fluentd_factory(start=False)
    address = fluentd.address
    container_id = run_with_fluentd(
        shared_daemon,
        address,
        "busybox",
        "sh",
        "-c",
        seq(3000),
        opts=("fluentd-async=true", "fluentd-retry-wait=100ms"),
    )
    time.sleep(1.5)
    fluentd.start()
    shared_daemon.ok("wait", container_id)
    assert shared_daemon.ok("logs", container_id).split() == [f"seq{i}" for i in range(3000)]
    fluentd.wait_until(lambda: fluentd.event_count >= 3000, what="every line at fluentd")


def test_logs_of_an_awslogs_container_match_cloudwatch(tmp_path: Path, localstack: LocalStack) -> None:
    daemon = Daemon(tmp_path / "awscache", extra_env=dict(CREDENTIALS))
    daemon.start()
    try:
        daemon.import_busybox()
        group = f"cache-{uuid.uuid4().hex[:8]}"
        container_id = daemon.ok(
            "run",
            "-d",
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
            "busybox",
            "sh",
            "-c",
            seq(500),
        ).strip()
        daemon.ok("wait", container_id)
        in_cloudwatch = [e["message"] for e in read_back(localstack, group, container_id, 500)]
        assert daemon.ok("logs", container_id).split() == in_cloudwatch == [f"seq{i}" for i in range(500)]
    finally:
        daemon.stop()
