"""logship as a driver framework: a driver from another package (tests/plugins/logship-example-driver,
installed with pip) works like a built-in one, a broken one is isolated; and the live counters every
container has, in `inspect`, `logship stats` and `GET /metrics`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon

pytestmark = pytest.mark.integration

PLUGIN = Path(__file__).parent / "plugins" / "logship-example-driver"


@pytest.fixture(scope="module")
def plugin_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon that sees the example plugin package, installed for real (pip) into a directory of its own."""
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(PLUGIN),
        ],
        check=True,
        capture_output=True,
    )
    with Daemon(tmp_path_factory.mktemp("plugind"), extra_env={"PYTHONPATH": str(site)}).started() as daemon:
        yield daemon


def test_info_lists_every_driver_with_where_it_comes_from(plugin_daemon: Daemon) -> None:
    info = plugin_daemon.ok("info")
    assert "  json-file: builtin" in info
    assert "  example: logship-example-driver 1.0.0 (logship_example_driver)" in info
    assert "example-broken" in info


def test_a_third_party_driver_works_like_a_built_in_one(plugin_daemon: Daemon, tmp_path: Path) -> None:
    out = tmp_path / "example.out"
    bad = plugin_daemon.cli("run", "--log-driver", "example", "busybox", "true")
    assert bad.code == 125 and "the example driver needs --log-opt example-path" in bad.err
    unknown = plugin_daemon.cli(
        "run",
        "--log-driver",
        "example",
        "--log-opt",
        f"example-path={out}",
        "--log-opt",
        "colour=red",
        "busybox",
        "true",
    )
    assert unknown.code == 125 and "unknown log opt 'colour' for example log driver" in unknown.err
    plugin_daemon.ok(
        "run",
        "--name",
        "plugged",
        "--log-driver",
        "example",
        "--log-opt",
        f"example-path={out}",
        "--log-opt",
        "mode=non-blocking",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2",
    )
    assert sorted(out.read_text().splitlines()) == ["stderr: OOPS", "stdout: HELLO"]
    stats = plugin_daemon.inspect("plugged")["LogStats"]
    assert stats["Drivers"][0]["Driver"] == "example" and stats["Drivers"][0]["LinesWritten"] == 2
    assert stats["Drivers"][0]["Mode"] == "non-blocking"


def test_a_driver_that_fails_to_import_is_isolated(plugin_daemon: Daemon) -> None:
    result = plugin_daemon.cli("run", "--log-driver", "example-broken", "busybox", "true")
    assert result.code == 125
    assert "log driver 'example-broken'" in result.err and "failed to load" in result.err
    assert "broken on purpose" in result.err
    assert "unusable" in plugin_daemon.ok("info")
    assert "failed to load" in plugin_daemon.daemon_log()
    assert plugin_daemon.ok("run", "--rm", "busybox", "echo", "others unaffected") == "others unaffected\n"


def test_a_driver_that_raises_loses_only_its_own_lines_counted(plugin_daemon: Daemon) -> None:
    crash = plugin_daemon.cli(
        "run", "--log-driver", "example-explosive", "--log-opt", "explode-at-create=true", "busybox", "true"
    )
    assert crash.code == 125 and "failed to check its options: ZeroDivisionError" in crash.err
    plugin_daemon.ok(
        "run",
        "--name",
        "exploded",
        "--log-driver",
        "example-explosive",
        "busybox",
        "sh",
        "-c",
        "echo 1; echo 2; echo 3",
    )
    driver = plugin_daemon.inspect("exploded")["LogStats"]["Drivers"][0]
    assert driver["LinesFailed"] == 3 and "boom" in driver["LastError"]
    assert "failed to write 3 lines" in plugin_daemon.daemon_log()
    assert plugin_daemon.ok("run", "--rm", "busybox", "echo", "still fine") == "still fine\n"


def test_counters_match_what_was_sent_and_dropped(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run",
        "--name",
        "counted",
        "--log-opt",
        "mode=non-blocking",
        "--log-opt",
        "max-buffer-size=2k",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done; head -c 20000 /dev/zero | tr '\\0' z; echo",
    )
    stats = shared_daemon.inspect("counted")["LogStats"]
    driver = stats["Drivers"][0]
    assert stats["LinesRead"] == 5002  # 5000 lines and a 20,000-byte line cut into 2 pieces
    assert stats["PartialMessages"] == 2
    assert driver["LinesWritten"] + driver["LinesDropped"] == 5002
    assert stats["BytesRead"] == sum(len(f"line-{i}\n") for i in range(5000)) + 20001
    assert driver["LastWrite"].endswith("Z")


def test_stats_prints_a_table_once_or_live(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "-d", "--name", "watched", "busybox", "sh", "-c", "echo a; echo b; sleep 30")
    time.sleep(0.5)
    once = shared_daemon.ok("stats", "--no-stream", "--logging")  # the logging counters in full
    header, *rows = once.splitlines()
    assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "DRIVER"]
    row = next(r for r in rows if "watched" in r).split()
    assert row[2:6] == ["json-file", "blocking", "2", "2"]
    live = subprocess.Popen(
        [sys.executable, "-m", "logship", "stats", "--interval", "0.2", "watched"],
        stdout=subprocess.PIPE,
        env=shared_daemon.env(),
    )
    time.sleep(1.5)
    live.terminate()
    output, _ = live.communicate(timeout=10)
    assert output.count(b"CONTAINER ID") >= 3  # piped: plain tables, one per refresh
    assert b"\033[2J" not in output
    shared_daemon.ok("rm", "-f", "watched")


def test_metrics_are_served_in_prometheus_text_format(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--name", "scraped", "busybox", "sh", "-c", "echo one; echo two")
    container_id = shared_daemon.inspect("scraped")["Id"]

    status, headers, raw = shared_daemon.api("GET", "/metrics")
    body = raw.decode()
    assert status == 200 and headers.get("Content-Type", "").startswith("text/plain")
    labels = f'container_id="{container_id}",container_name="scraped"'
    assert f"logship_log_lines_read_total{{{labels}}} 2.0" in body
    assert f'logship_log_lines_written_total{{{labels},driver="json-file"}} 2.0' in body
    assert f'logship_log_lines_dropped_total{{{labels},driver="json-file"}} 0.0' in body
    assert "# TYPE logship_log_buffered_bytes gauge" in body
