"""The journald driver against a real systemd-journald: fields as Docker sets them (compared with Docker's
own journal entries in tests/fixtures/docker-samples/journald), `logs` read back from the journal, and the
daemon's own log in the journal, kept apart from container entries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import LOGSHIP, Daemon
from tests.journal import Journald, entries, message_bytes

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parent / "fixtures" / "docker-samples" / "journald"
IMAGE = "busybox:local"

# The commands behind Docker's journald samples.
CASES: dict[str, list[str]] = {
    "jd_basic": [IMAGE, "sh", "-c", "echo hello journald; printf no-newline; echo oops >&2"],
    "jd_long": [IMAGE, "sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" a; echo'],
    "jd_long40k": [IMAGE, "sh", "-c", 'head -c 40000 /dev/zero | tr "\\0" e; echo'],
    "jd_attrs": [
        "--label",
        "com.example.a=alpha",
        "-e",
        "FOO=bar",
        "--log-opt",
        "labels=com.example.a",
        "--log-opt",
        "env=FOO",
        "--log-opt",
        "tag={{.Name}}-{{.ID}}",
        IMAGE,
        "echo",
        "with attrs",
    ],
    "jd_bin": [IMAGE, "sh", "-c", 'printf "bad:\\377\\376 tab:\\t esc:\\033 end\\n"'],
    "jd_tty": ["-t", IMAGE, "sh", "-c", "echo tty-line; printf tty-nonl"],
}
# Fields newer Docker (24+) adds and 20.10, which made the samples, did not.
NEWER_DOCKER_FIELDS = {"SYSLOG_TIMESTAMP", "CONTAINER_LOG_EPOCH", "CONTAINER_LOG_ORDINAL"}


@pytest.fixture(scope="module")
def jd(shared_daemon: Daemon, journald: Journald) -> Iterator[Daemon]:
    shared_daemon.ok("import", str(shared_daemon.root / "rootfs-busybox"), IMAGE)
    yield shared_daemon


@pytest.fixture(scope="module")
def ran(jd: Daemon) -> dict[str, dict[str, Any]]:
    results = {}
    for case, args in CASES.items():
        jd.ok("run", "-d", "--log-driver", "journald", "--name", case, *args)
    for case in CASES:
        jd.ok("wait", case)
        results[case] = jd.inspect(case)
    return results


def client_fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not k.startswith("_") and k not in NEWER_DOCKER_FIELDS}


def normalized(entry: dict[str, Any], container_id: str) -> dict[str, Any]:
    fields = client_fields(entry)
    text = json.dumps(fields, sort_keys=True)
    text = text.replace(container_id, "<ID>").replace(container_id[:12], "<ID12>")
    text = re.sub(r'"CONTAINER_PARTIAL_ID": "[0-9a-f]{64}"', '"CONTAINER_PARTIAL_ID": "<PID>"', text)
    result: dict[str, Any] = json.loads(text)
    return result


def docker_entries(case: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in (SAMPLES / f"{case}.journal.json").read_text().splitlines()]
    return [normalized(e, e["CONTAINER_ID_FULL"]) for e in found]


@pytest.mark.parametrize("case", list(CASES))
def test_journal_entries_carry_dockers_fields(case: str, ran: dict[str, dict[str, Any]]) -> None:
    container_id = ran[case]["Id"]
    expected = docker_entries(case)
    ours = [normalized(e, container_id) for e in entries(f"CONTAINER_ID_FULL={container_id}", count=len(expected))]
    key = lambda e: (e.get("PRIORITY"), e.get("CONTAINER_PARTIAL_ORDINAL", ""))  # noqa: E731 - per-stream order
    assert sorted(ours, key=key) == sorted(expected, key=key)


def test_entries_carry_newer_dockers_syslog_timestamp_epoch_and_ordinal(ran: dict[str, dict[str, Any]]) -> None:
    found = entries(f"CONTAINER_ID_FULL={ran['jd_basic']['Id']}", count=3)
    assert {e["CONTAINER_LOG_ORDINAL"] for e in found} == {"1", "2", "3"}
    assert len({e["CONTAINER_LOG_EPOCH"] for e in found}) == 1
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", e["SYSLOG_TIMESTAMP"]) for e in found)


def test_binary_bytes_reach_the_journal_unchanged(ran: dict[str, dict[str, Any]]) -> None:
    (entry,) = entries(f"CONTAINER_ID_FULL={ran['jd_bin']['Id']}")
    assert message_bytes(entry) == b"bad:\xff\xfe tab:\t esc:\x1b end"


@pytest.mark.parametrize("case", list(CASES))
def test_logs_reads_back_what_docker_logs_printed(case: str, ran: dict[str, dict[str, Any]], jd: Daemon) -> None:
    result = jd.cli("logs", case)
    assert result.code == 0, result.err
    assert result.stdout == (SAMPLES / f"{case}.logs.out").read_bytes()
    assert result.stderr == (SAMPLES / f"{case}.logs.err").read_bytes()


def test_details_show_non_well_known_fields_url_escaped(ran: dict[str, dict[str, Any]], jd: Daemon) -> None:
    out = jd.ok("logs", "-t", "--details", "jd_attrs")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}000Z "  # the journal keeps microseconds
        r"COM_EXAMPLE_A=alpha,FOO=bar,IMAGE_NAME=busybox%3Alocal with attrs\n",
        out,
    )


def test_tail_counts_whole_lines_and_long_lines_come_back_joined(ran: dict[str, dict[str, Any]], jd: Daemon) -> None:
    assert jd.cli("logs", "--tail", "1", "jd_long40k").stdout == b"e" * 40000 + b"\n"  # three entries, one line
    last_two = jd.cli("logs", "--tail", "2", "jd_basic")
    assert sorted([*last_two.stdout.splitlines(), *last_two.stderr.splitlines()]) == [b"no-newline", b"oops"]
    stamped = jd.cli("logs", "-t", "--tail", "1", "jd_long").stdout
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z a{20000}\n", stamped)  # one timestamp, one line
    assert jd.cli("logs", "--tail", "0", "jd_basic").stdout == b""


def test_since_and_until_select_by_journal_time(jd: Daemon, journald: Journald) -> None:
    jd.ok(
        "run", "--log-driver", "journald", "--name", "jd_times", IMAGE, "sh", "-c", "echo early; sleep 1.5; echo late"
    )
    stamped = jd.ok("logs", "-t", "jd_times").splitlines()
    late_time = stamped[1].split()[0]
    assert jd.ok("logs", "--since", late_time, "jd_times") == "late\n"
    assert jd.ok("logs", "--until", stamped[0].split()[0], "jd_times") == "early\n"
    assert jd.ok("logs", "--since", str(int(time.time()) + 60), "jd_times") == ""


def test_follow_ends_when_the_container_stops_and_everything_was_read(jd: Daemon) -> None:
    jd.ok(
        "run",
        "-d",
        "--log-driver",
        "journald",
        "--name",
        "jd_follow",
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); [ $((i % 200)) -eq 0 ] && sleep 0.1; done; true",
    )
    follower = subprocess.run([*LOGSHIP, "logs", "-f", "jd_follow"], capture_output=True, env=jd.env(), timeout=60)
    assert follower.stdout.split() == [b"line%d" % i for i in range(2000)]


def test_unknown_options_fail_as_dockers_do(jd: Daemon) -> None:
    result = jd.cli("run", "--log-driver", "journald", "--log-opt", "max-size=1m", IMAGE, "true")
    assert result.code == 125
    assert "unknown log opt 'max-size' for journald log driver" in result.err


def test_without_a_journal_start_fails_clearly_and_nothing_else_is_affected(
    new_daemon: Daemon, journald: Journald
) -> None:
    """The daemon runs in a mount namespace where /run/systemd/journal is empty: no journal there."""
    new_daemon.root.mkdir(parents=True)
    new_daemon.config_file.write_text("{}")
    script = (
        "mount -t tmpfs tmpfs /run/systemd/journal && exec "
        f"{sys.executable} -m logship daemon -H {new_daemon.host} --data-root {new_daemon.data_root} "
        f"--config-file {new_daemon.config_file}"
    )
    new_daemon.process = subprocess.Popen(
        ["unshare", "--mount", "sh", "-c", script],
        env=new_daemon.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while new_daemon.cli("version").code != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    new_daemon.import_busybox()
    result = new_daemon.cli("run", "--log-driver", "journald", "--name", "nojournal", "busybox", "echo", "x")
    assert result.code == 125
    assert (
        "failed to initialize logging driver: the journal is not reachable at /run/systemd/journal/socket" in result.err
    )
    assert new_daemon.ok("run", "--rm", "busybox", "echo", "json-file still works") == "json-file still works\n"


def test_the_daemon_log_can_go_to_the_journal_apart_from_containers(new_daemon: Daemon, journald: Journald) -> None:
    new_daemon.config = {"daemon-log": "journald"}
    new_daemon.start()
    new_daemon.import_busybox()
    container_id = new_daemon.ok("run", "-d", "--log-driver", "journald", "busybox", "echo", "from the container")
    new_daemon.ok("wait", container_id.strip())
    assert not new_daemon.log_file.exists()
    daemon_entries = entries("SYSLOG_IDENTIFIER=logshipd", count=2)
    started = [e for e in daemon_entries if container_id.strip()[:12] in str(e.get("MESSAGE"))]
    assert started, "the daemon's own lines about the container are in the journal"
    assert all(not any(k.startswith("CONTAINER_") for k in e) for e in daemon_entries)
    container_entries = entries(f"CONTAINER_ID_FULL={container_id.strip()}")
    assert [message_bytes(e) for e in container_entries] == [b"from the container"]
    assert "Daemon Log: journald, SYSLOG_IDENTIFIER=logshipd" in new_daemon.ok("info")
