"""Processing end to end (issue 19): real containers print real traces, JSON logs and secrets, and the real
backends get events, fields and redacted lines: the real Fluentd (or the in-process receiver where the peers
folder is absent), LocalStack, journald and json-file on disk."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FluentdFactory
from tests.gelf_receiver import GelfReceiver
from tests.harness import Daemon, awslogs_args, fluentd_args, run_with_fluentd
from tests.journal import Journald, entries, message_bytes
from tests.localstack import CREDENTIALS, LocalStack, read_back
from tests.rsyslog import Rsyslog, rsyslog_escaped, rsyslog_problem
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
    containers = run_traces(daemon, *fluentd_args(fluentd.address, ["tag={{.ID}}"]))
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
    containers = run_traces(daemon, *awslogs_args(localstack.endpoint, group))
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


@pytest.fixture
def gelf() -> Iterator[GelfReceiver]:
    """The GELF receiver (written from the GELF 1.1 spec: no real Graylog here), over UDP: an event longer
    than a datagram arrives gzipped in chunks, as Docker's driver sends it."""
    with GelfReceiver("udp") as receiver:
        yield receiver
    assert receiver.errors == []


def gelf_of(receiver: GelfReceiver, container_id: str) -> list[dict[str, Any]]:
    return [fields for fields in receiver.fields() if fields["_container_id"] == container_id]


def test_each_trace_arrives_at_gelf_as_one_message(daemon: Daemon, gelf: GelfReceiver) -> None:
    containers = run_traces(daemon, "--log-driver", "gelf", "--log-opt", f"gelf-address={gelf.address}")
    gelf.wait_for(sum(len(expected_stderr(p)) + len(expected_stdout(p)) for p in TRACES), timeout=30)
    for preset, container_id in containers.items():
        mine = gelf_of(gelf, container_id)
        assert [m["short_message"] for m in mine if m["level"] == 3] == expected_stderr(preset), preset
        assert [m["short_message"] for m in mine if m["level"] == 6] == expected_stdout(preset), preset


def test_each_trace_arrives_at_rsyslog_as_one_message_with_octet_counted_framing(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Debian's rsyslog, the real server: octet counting keeps an event's newlines inside its message."""
    problem = rsyslog_problem()
    if problem:
        pytest.skip(f"syslog: {problem}")
    with Rsyslog(tmp_path) as rsyslog:
        opts = (f"syslog-address={rsyslog.tcp_address}", "syslog-framing=octet-counted")
        containers = run_traces(daemon, "--log-driver", "syslog", *(i for o in opts for i in ("--log-opt", o)))
        for preset, container_id in containers.items():
            want = expected_stderr(preset) + expected_stdout(preset)
            mine = f" {container_id[:12]}[".encode()
            rsyslog.wait_until(lambda got: sum(mine in r.raw for r in got) >= len(want), what=preset)  # noqa: B023
            got = [r.raw.split(b": ", 1)[1] for r in rsyslog.received if mine in r.raw]
            assert sorted(got) == sorted(rsyslog_escaped(f"{line}\n".encode()) for line in want), preset


def json_records(path: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def run_json_file_events(daemon: Daemon, *command: str) -> str:
    """A container logging to json-file with multiline=java and a record per event (multiline-files=events)."""
    opts = ("--log-opt", "multiline=java", "--log-opt", "multiline-files=events")
    return daemon.ok("run", "-d", *opts, *command).strip()


def test_json_file_keeps_a_record_per_line_unless_asked_for_a_record_per_event(daemon: Daemon) -> None:
    java = TRACES["java"]()
    lines = daemon.ok(
        "run", "-d", "--log-opt", "redact=order \\d+", "-e", f"TRACE={java}", "busybox", "sh", "-c", PRINT_TRACE
    ).strip()
    events = run_json_file_events(daemon, "-e", f"TRACE={java}", "busybox", "sh", "-c", PRINT_TRACE)
    for container_id in (lines, events):
        daemon.ok("wait", container_id)
    redacted = java.replace("order 42", "[REDACTED]")
    per_line = [r["log"] for r in json_records(daemon.inspect(lines)["LogPath"]) if r["stream"] == "stderr"]
    assert per_line == [f"{line}\n" for line in ["starting", *redacted.split("\n"), "after the trace"]]
    per_event = [r["log"] for r in json_records(daemon.inspect(events)["LogPath"]) if r["stream"] == "stderr"]
    assert per_event == ["starting\n", f"{java}\n", "after the trace\n"]
    # `logs` prints what the container printed either way; with timestamps, one per record
    assert daemon.cli("logs", events).err == "\n".join(expected_stderr("java")) + "\n"
    stamped = daemon.cli("logs", "-t", events).err.splitlines()
    assert sum(1 for line in stamped if line[:4].isdigit()) == 3


def test_the_dual_logging_cache_keeps_lines_while_fluentd_gets_events(
    daemon: Daemon, fluentd_factory: FluentdFactory
) -> None:
    fluentd = fluentd_factory()
    container_id = run_with_fluentd(
        daemon,
        fluentd.address,
        "-e",
        f"TRACE={TRACES['go']()}",
        "busybox",
        "sh",
        "-c",
        PRINT_TRACE,
        opts=("multiline=go", "tag={{.ID}}"),
    )
    daemon.ok("wait", container_id)
    fluentd.wait_for(len(expected_stderr("go")) + len(expected_stdout("go")), timeout=30)
    stamped = daemon.cli("logs", "-t", container_id).err.splitlines()
    assert len(stamped) == len(TRACES["go"]().split("\n")) + 2 and all(line[:4].isdigit() for line in stamped)


JSON_LINES = [
    '{"level":"info","msg":"served","http":{"status":200,"path":"/orders"},"ms":12.5,"ok":true,"tags":["a","b"]}',
    '{"level":"warn","msg":"broken", ',
    "plain text line",
    '{"blob":"' + "x" * 40000 + '","level":"debug"}',
    '{"source":"app","container_id":"not mine"}',
]
# `run` arguments of a container printing JSON_LINES (each passed in its environment).
JSON_CONTAINER = [
    *(item for n, line in enumerate(JSON_LINES) for item in ("-e", f"L{n}={line}")),
    *("busybox", "sh", "-c", 'printf "%s\\n" "$L0" "$L1" "$L2" "$L3" "$L4"'),
]


def test_parse_json_gives_fluentd_record_keys_and_journald_fields(
    daemon: Daemon, fluentd_factory: FluentdFactory, journald: Journald
) -> None:
    fluentd = fluentd_factory()
    to_fluentd = run_with_fluentd(daemon, fluentd.address, *JSON_CONTAINER, opts=("parse=json",))
    to_journal = daemon.ok("run", "-d", "--log-driver", "journald", "--log-opt", "parse=json", *JSON_CONTAINER).strip()
    for container_id in (to_fluentd, to_journal):
        daemon.ok("wait", container_id)
    records = [event.record for event in fluentd.wait_for(len(JSON_LINES), timeout=30)]
    assert records[0]["http"] == {"status": 200, "path": "/orders"} and records[0]["ms"] == 12.5
    assert records[0]["ok"] is True and records[0]["tags"] == ["a", "b"] and "log" not in records[0]
    assert records[1]["log"] == JSON_LINES[1] and records[2]["log"] == JSON_LINES[2]  # not JSON: unchanged
    assert records[3]["blob"] == "x" * 40000 and records[3]["level"] == "debug"  # 40 KB, put together first
    assert records[4]["json_source"] == "app" and records[4]["json_container_id"] == "not mine"
    assert records[4]["source"] == "stdout" and records[4]["container_id"] == to_fluentd
    found = entries(f"CONTAINER_ID_FULL={to_journal}", count=len(JSON_LINES))
    assert found[0]["HTTP_STATUS"] == "200" and found[0]["HTTP_PATH"] == "/orders" and found[0]["TAGS"] == '["a","b"]'
    assert found[0]["LEVEL"] == "info" and message_bytes(found[0]).decode() == JSON_LINES[0]
    assert "LEVEL" not in found[1] and found[4]["SOURCE"] == "app"
    assert daemon.inspect(to_fluentd)["LogStats"]["Processing"]["LinesParsed"] == 3
    assert daemon.inspect(to_journal)["LogStats"]["Processing"]["LinesNotParsed"] == 2


def test_parse_json_gives_gelf_additional_fields(daemon: Daemon, gelf: GelfReceiver) -> None:
    opts = ("--log-opt", f"gelf-address={gelf.address}", "--log-opt", "parse=json")
    container_id = daemon.ok("run", "-d", "--log-driver", "gelf", *opts, *JSON_CONTAINER).strip()
    daemon.ok("wait", container_id)
    gelf.wait_for(len(JSON_LINES), timeout=30)
    got = gelf_of(gelf, container_id)
    assert [m["short_message"] for m in got] == JSON_LINES  # the line as it is, parsed or not
    assert got[0]["_http_status"] == 200 and got[0]["_http_path"] == "/orders" and got[0]["_ms"] == 12.5
    assert got[0]["_ok"] == "true" and got[0]["_tags"] == '["a","b"]' and got[0]["_level"] == "info"
    assert "_level" not in got[1] and "_level" not in got[2]  # not JSON: no fields
    assert got[3]["_blob"] == "x" * 40000  # put together from its 16 KiB pieces first
    assert got[4]["_json_container_id"] == "not mine" and got[4]["_container_id"] == container_id
    assert daemon.inspect(container_id)["LogStats"]["Processing"]["LinesParsed"] == 3


SECRET = "hunter2-s3cr3t"


def test_secrets_never_reach_a_file_or_a_backend_and_every_match_and_filtered_line_is_counted(
    daemon: Daemon, fluentd_factory: FluentdFactory
) -> None:
    fluentd = fluentd_factory()
    # 20 lines with a secret, 10 debug lines, and a 40 KB line whose secret straddles the 16 KiB cut
    # (the secret is put together at run time: the command, in the container's config, never holds it)
    script = (
        's=hunter2; s="$s-s3cr3t"; '
        'i=0; while [ $i -lt 20 ]; do echo "login user=$i password=$s"; echo "DEBUG $i" ; '
        '[ $((i % 2)) -eq 0 ] && echo "DEBUG again $i" >&2; i=$((i+1)); done; '
        'head -c 16380 /dev/zero | tr "\\0" a; printf "password=$s "; head -c 24000 /dev/zero | tr "\\0" b; echo'
    )
    opts = ("redact=password=\\S+", "drop=^DEBUG")
    on_disk = daemon.ok("run", "-d", *(f"--log-opt={opt}" for opt in opts), "busybox", "sh", "-c", script).strip()
    shipped = run_with_fluentd(daemon, fluentd.address, "busybox", "sh", "-c", script, opts=opts)
    for container_id in (on_disk, shipped):
        daemon.ok("wait", container_id)
    records = [event.record["log"] for event in fluentd.wait_for(21 + 2, timeout=30)]  # the long line: 3 pieces
    assert not any(SECRET in record for record in records) and "".join(records).count("[REDACTED]") == 21
    assert [json.loads(line)["log"] for line in Path(daemon.inspect(on_disk)["LogPath"]).read_text().splitlines()][
        :2
    ] == [
        "login user=0 [REDACTED]\n",
        "login user=1 [REDACTED]\n",
    ]
    for container_id in (on_disk, shipped):
        directory = daemon.data_root / "containers" / container_id
        leaked = [str(path) for path in directory.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]
        assert leaked == []  # json-file, the cache, and the spool (gone once every driver has its lines)
        stats = daemon.inspect(container_id)["LogStats"]
        assert stats["Processing"]["MatchesRedacted"] == 21 and stats["Processing"]["LinesFiltered"] == 30
    table = daemon.ok("stats", "--no-stream", "--logging", shipped[:12])
    assert "redacted 21, filtered 30" in table
    _, _, metrics = daemon.api("GET", "/metrics")
    assert f'logship_log_matches_redacted_total{{container_id="{shipped}"'.encode() in metrics
    assert any(
        line.startswith(b"logship_log_lines_filtered_total") and shipped.encode() in line and line.endswith(b" 30.0")
        for line in metrics.splitlines()
    )


TRACE_COUNT = 40_000
NUMBERED_TRACES = (  # a few seconds' worth: it pauses 50 ms every 500 traces
    f"i=1; while [ $i -le {TRACE_COUNT} ]; do "
    'echo "Exception in thread \\"main\\" java.lang.IllegalStateException: n=$i"; '
    'echo "\tat a.B.c(B.java:1)"; echo "\tat a.B.d(B.java:2)"; echo "\t... 3 more"; '
    "[ $((i % 500)) -eq 0 ] && usleep 50000; i=$((i+1)); done"
)
FRAMES = "\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n\t... 3 more"


def numbered_trace(n: int) -> str:
    return f'Exception in thread "main" java.lang.IllegalStateException: n={n}{FRAMES}'


def test_daemon_kills_mid_event_lose_no_event_nor_split_one(
    new_daemon: Daemon, fluentd_factory: FluentdFactory
) -> None:
    """kill -9 while traces stream: json-file (a record per event) has each exactly once, fluentd (disk
    buffer, at least once) has each whole, none cut in two by the restart."""
    fluentd = fluentd_factory()
    new_daemon.start()
    new_daemon.import_busybox()
    in_file = run_json_file_events(new_daemon, "busybox", "sh", "-c", NUMBERED_TRACES)
    shipped = run_with_fluentd(
        new_daemon,
        fluentd.address,
        "busybox",
        "sh",
        "-c",
        NUMBERED_TRACES,
        opts=("multiline=java", "fluentd-request-ack=true"),
    )
    log_path = Path(new_daemon.inspect(in_file)["LogPath"])
    for _ in range(2):
        size = log_path.stat().st_size if log_path.exists() else 0
        deadline = time.monotonic() + 30
        while (log_path.stat().st_size if log_path.exists() else 0) <= size + 100_000:
            assert time.monotonic() < deadline, f"{log_path} stays at {size} bytes"
            time.sleep(0.01)
        assert new_daemon.inspect(in_file)["State"]["Running"], "the container should still be writing"
        new_daemon.kill9()
        new_daemon.start()
    for container_id in (in_file, shipped):
        assert new_daemon.ok("wait", container_id, timeout=300).strip() == "0"
    want = [numbered_trace(n) for n in range(1, TRACE_COUNT + 1)]
    assert [record["log"] for record in json_records(str(log_path))] == [f"{trace}\n" for trace in want]
    fluentd.wait_until(lambda: len(set(fluentd.values("log"))) >= TRACE_COUNT, timeout=120, what="every event")
    got = fluentd.values("log")
    assert set(got) == set(want)  # whole events only, every one of them (some twice: at least once)
    assert list(dict.fromkeys(got)) == want  # in order


def test_a_tty_container_and_a_non_blocking_one_are_processed_too(daemon: Daemon) -> None:
    script = 's=hunter2; s="$s-s3cr3t"; echo "token=$s"; echo "Exception: boom"; echo "	at a.B.c(B.java:1)"'
    opts = ["--log-opt", "redact=token=\\S+", "--log-opt", "multiline=java", "--log-opt", "multiline-files=events"]
    tty = daemon.ok("run", "-d", "-t", *opts, "busybox", "sh", "-c", script).strip()
    lossy = daemon.ok("run", "-d", "--log-opt", "mode=non-blocking", *opts, "busybox", "sh", "-c", script).strip()
    for container_id in (tty, lossy):
        daemon.ok("wait", container_id)
    tty_records = [r["log"] for r in json_records(daemon.inspect(tty)["LogPath"])]
    assert tty_records == ["[REDACTED]\r\n", "Exception: boom\r\n\tat a.B.c(B.java:1)\r\n"]
    lossy_records = [r["log"] for r in json_records(daemon.inspect(lossy)["LogPath"])]
    assert lossy_records == ["[REDACTED]\n", "Exception: boom\n\tat a.B.c(B.java:1)\n"]


def test_giving_up_the_oldest_lines_in_non_blocking_mode_counts_every_line_events_included(
    daemon: Daemon, fluentd_factory: FluentdFactory
) -> None:
    """A budget used up while fluentd is down: the oldest lines go, counted, open events with them; what
    arrives is whole events, or the rest of one that was cut, and received + dropped = written."""
    fluentd = fluentd_factory(start=False)
    container_id = run_with_fluentd(
        daemon, fluentd.address, "busybox", "sh", "-c", NUMBERED_TRACES,
        opts=(
            "mode=non-blocking", "fluentd-async=true", "fluentd-request-ack=true", "fluentd-buffer-limit=64k",
            "fluentd-retry-wait=100ms", "buffer-max-size=256k", "multiline=java",
        ),
    )  # fmt: skip
    assert daemon.ok("wait", container_id, timeout=120).strip() == "0"
    fluentd.start()

    def delivered() -> bool:
        return not daemon.inspect(container_id)["LogStats"]["Drivers"][0]["DiskBuffer"]["Pending"]

    deadline = time.monotonic() + 120
    while not delivered():
        assert time.monotonic() < deadline, "the delivery did not end"
        time.sleep(0.2)
    driver = daemon.inspect(container_id)["LogStats"]["Drivers"][0]
    assert driver["LinesDropped"] > 0 and driver["LinesFailed"] == 0

    def lines_received() -> int:
        return sum(record.count("\n") + 1 for record in fluentd.values("log"))

    fluentd.wait_until(lambda: lines_received() + driver["LinesDropped"] >= 4 * TRACE_COUNT, what="every line")
    assert lines_received() + driver["LinesDropped"] == 4 * TRACE_COUNT
    records = fluentd.values("log")
    whole = [record for record in records if record.startswith("Exception")]
    assert all(record == numbered_trace(int(record.split("n=")[1].split("\n")[0])) for record in whole)
    assert all(FRAMES.endswith("\n" + record) for record in records if not record.startswith("Exception"))
    assert whole[-1] == numbered_trace(TRACE_COUNT), "the newest lines are kept"


def test_an_event_goes_once_nothing_more_comes_for_the_timeout(daemon: Daemon, fluentd_factory: FluentdFactory) -> None:
    """No next line to end it: the wall clock does, in step (json-file) and from a disk buffer (fluentd)."""
    fluentd = fluentd_factory()
    script = 'printf "%s\\n" "$TRACE" >&2; sleep 5; echo "later" >&2'
    opts = ("multiline=java", "multiline-timeout=300ms")
    env = ("-e", f"TRACE={TRACES['java']()}")
    in_file = daemon.ok(
        "run", "-d", *(f"--log-opt={opt}" for opt in (*opts, "multiline-files=events")), *env,
        "busybox", "sh", "-c", script,
    ).strip()  # fmt: skip
    shipped = run_with_fluentd(daemon, fluentd.address, *env, "busybox", "sh", "-c", script, opts=opts)
    log_path = Path(daemon.inspect(in_file)["LogPath"])
    # Each event must arrive while its container still sleeps before its next line: the wall clock ended it,
    # not the next line nor the container's end (both come 5 s later).
    fluentd.wait_for(1, timeout=30)
    assert daemon.inspect(shipped)["State"]["Running"], "fluentd got the event only once the container went on"
    while not (log_path.exists() and log_path.read_text()) and daemon.inspect(in_file)["State"]["Running"]:
        time.sleep(0.05)
    assert daemon.inspect(in_file)["State"]["Running"], "json-file got the event only once the container went on"
    assert [r["log"] for r in json_records(str(log_path))] == [TRACES["java"]() + "\n"]
    assert fluentd.values("log") == [TRACES["java"]()]
    for container_id in (in_file, shipped):
        daemon.ok("wait", container_id)
    fluentd.wait_for(2, timeout=10)
    assert [r["log"] for r in json_records(str(log_path))] == [TRACES["java"]() + "\n", "later\n"]
    assert fluentd.values("log") == [TRACES["java"](), "later"]
