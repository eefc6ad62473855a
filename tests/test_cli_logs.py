"""`logship logs` with every flag, over live, rotated and compressed json-file logs."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import LOGSHIP, Daemon

pytestmark = pytest.mark.integration

TS = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@pytest.fixture(scope="module")
def lo1(shared_daemon: Daemon) -> Daemon:
    """Docker's `lo1` sample container: six out/err pairs a second apart and a last line without newline."""
    shared_daemon.ok(
        "run",
        "--name",
        "lo1",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; sleep 0.2; done; printf last-no-nl",
    )
    return shared_daemon


def records(daemon: Daemon, name: str) -> list[dict[str, str]]:
    path = daemon.inspect(name)["LogPath"]
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_stdout_goes_to_stdout_and_stderr_to_stderr(lo1: Daemon) -> None:
    result = lo1.cli("logs", "lo1")
    assert result.stdout == b"out1\nout2\nout3\nout4\nout5\nout6\nlast-no-nl"
    assert result.stderr == b"err1\nerr2\nerr3\nerr4\nerr5\nerr6\n"


def test_tail_counts_records_across_both_streams(lo1: Daemon) -> None:
    result = lo1.cli("logs", "--tail", "3", "lo1")
    assert result.stdout == b"out6\nlast-no-nl"
    assert result.stderr == b"err6\n"
    assert lo1.cli("logs", "--tail", "0", "lo1").stdout == b""
    assert lo1.cli("logs", "-n", "all", "lo1").stdout.count(b"out") == 6


def test_timestamps_are_nine_digit_rfc3339_and_details_add_a_space(lo1: Daemon) -> None:
    lines = lo1.cli("logs", "-t", "lo1").stdout.splitlines()
    assert all(TS.match(line) for line in lines)
    stamped = lo1.cli("logs", "-t", "--details", "--tail", "1", "lo1").stdout
    assert re.match(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z  last-no-nl$", stamped)


def test_since_and_until_are_inclusive_at_a_records_exact_time(lo1: Daemon) -> None:
    recs = records(lo1, "lo1")
    fifth = recs[4]
    after = lo1.cli("logs", "--since", fifth["time"], "lo1")
    assert sorted(after.stdout.split() + after.stderr.split()) == sorted(r["log"].encode().strip() for r in recs[4:])
    before = lo1.cli("logs", "--until", fifth["time"], "lo1")
    assert sorted(before.stdout.split() + before.stderr.split()) == sorted(r["log"].encode().strip() for r in recs[:5])


def test_since_accepts_unix_seconds_and_relative_durations(lo1: Daemon) -> None:
    assert lo1.cli("logs", "--since", "1", "lo1").stdout.count(b"out") == 6
    assert lo1.cli("logs", "--since", str(int(time.time()) + 3600), "lo1").stdout == b""
    assert lo1.cli("logs", "--since", "1h", "lo1").stdout.count(b"out") == 6
    assert lo1.cli("logs", "--until", "1h", "lo1").stdout == b""
    bad = lo1.cli("logs", "--since", "yesterday", "lo1")
    assert bad.code != 0 and 'failed to parse value as time or duration: "yesterday"' in bad.err


def test_details_show_labels_env_and_tag_url_escaped(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run",
        "--name",
        "detailed",
        "--label",
        "foo=bar",
        "-e",
        "baz=qux x",
        "--log-opt",
        "labels=foo",
        "--log-opt",
        "env=baz",
        "busybox",
        "echo",
        "hello",
    )
    result = shared_daemon.cli("logs", "-t", "--details", "detailed")
    fields = result.stdout.split(b" ", 2)
    assert TS.match(fields[0] + b" ")
    assert fields[1:] == [b"baz=qux+x,foo=bar", b"hello\n"]


def test_a_running_container_is_followed_until_it_stops(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run", "-d", "--name", "ticker", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo tick$i; sleep 0.3; done"
    )
    result = shared_daemon.cli("logs", "-f", "--tail", "2", "ticker", timeout=30)
    lines = result.stdout.decode().split()
    assert lines[-1] == "tick5" and len(lines) >= 3 and lines == [f"tick{i}" for i in range(6 - len(lines), 6)]


def test_follow_across_rotations_loses_and_repeats_nothing(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run",
        "-d",
        "--name",
        "rotor",
        "--log-opt",
        "max-size=20k",
        "--log-opt",
        "max-file=4",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding-padding; "
        "i=$((i+1)); [ $((i % 100)) -eq 0 ] && sleep 0.05; done; true",
    )
    follower = subprocess.run(
        [*LOGSHIP, "logs", "-f", "rotor"], capture_output=True, env=shared_daemon.env(), timeout=60
    )
    got = follower.stdout.decode().split()
    assert got == [f"line-{i}-padding-padding-padding" for i in range(3000)]


def test_rotation_keeps_max_file_files_gzipped_with_lasttime_and_logs_reads_them(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run",
        "--name",
        "rotated",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do echo n$i; i=$((i+1)); done",
    )
    log_path = Path(shared_daemon.inspect("rotated")["LogPath"])
    deadline = time.monotonic() + 10
    while not Path(f"{log_path}.2.gz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # compression runs in the background after rotation
    names = sorted(p.name.removeprefix(log_path.name) for p in log_path.parent.glob(log_path.name + "*"))
    assert names == ["", ".1.gz", ".2.gz"]
    with open(f"{log_path}.1.gz", "rb") as raw:
        header = raw.read(10 + 2)
        extra_len = header[10] | header[11] << 8
        extra = json.loads(raw.read(extra_len))
    assert header[3] & 0x04 and set(extra) == {"lastTime"}
    last_record = json.loads(gzip.decompress(Path(f"{log_path}.1.gz").read_bytes()).splitlines()[-1])
    assert extra["lastTime"] == last_record["time"]
    out = shared_daemon.cli("logs", "rotated").stdout.split()
    kept = [int(word[1:]) for word in out]
    assert kept == list(range(kept[0], 2000)) and kept[0] > 0
    tail = shared_daemon.cli("logs", "--tail", "5", "rotated").stdout.split()
    assert tail == [b"n1995", b"n1996", b"n1997", b"n1998", b"n1999"]


def test_logs_of_none_driver_is_dockers_error(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--name", "silent", "--log-driver", "none", "busybox", "echo", "hi")
    result = shared_daemon.cli("logs", "silent")
    assert result.code == 1
    assert "configured logging driver does not support reading" in result.err


def test_non_blocking_mode_counts_every_dropped_line(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run",
        "--name",
        "flood",
        "--log-opt",
        "mode=non-blocking",
        "--log-opt",
        "max-buffer-size=4k",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do echo flood-$i; i=$((i+1)); done",
    )
    stats = shared_daemon.inspect("flood")["LogStats"]
    written = shared_daemon.cli("logs", "flood").stdout.split()
    assert stats["LinesRead"] == 20000
    assert stats["LinesDropped"] + len(written) == 20000
    assert stats["Drivers"][0]["LinesWritten"] == len(written)
    numbers = [int(w.split(b"-")[1]) for w in written]
    assert numbers == sorted(numbers)  # what survives is in order


def test_huge_lines_and_nul_bytes_survive_the_round_trip(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run",
        "--name",
        "huge",
        "busybox",
        "sh",
        "-c",
        "head -c 1000000 /dev/zero | tr '\\0' x; echo; printf 'a\\000b\\n'",
    )
    out = shared_daemon.cli("logs", "huge").stdout
    assert out == b"x" * 1_000_000 + b"\na\x00b\n"


def strip_timestamps(output: bytes) -> bytes:
    """`logs -t` output without the 31-byte `2006-01-02T15:04:05.000000000Z ` prefixes (whole lines only)."""
    return b"".join(line[31:] for line in output.splitlines(keepends=True))


def test_plain_logs_print_what_timestamped_logs_print_after_the_stamps(shared_daemon: Daemon) -> None:
    # Plain `logs` is read as runs of bytes, `logs -t` message by message: both must agree, with escapes,
    # both streams, and rotated, gzipped files; with --since/--until at a record's own time too.
    shared_daemon.ok(
        "run",
        "--name",
        "awkward",
        "--log-opt",
        "max-size=4k",
        "--log-opt",
        "max-file=40",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do "
        "printf '<b>%s</b> & \"q\" back\\\\slash\\ttab caf\\303\\251 \\342\\200\\250\\n' $i; "
        "echo err$i >&2; i=$((i+1)); done",
    )
    log_path = Path(shared_daemon.inspect("awkward")["LogPath"])
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    middle = records[len(records) // 2]["time"]
    for flags in ([], ["--since", middle], ["--until", middle], ["--since", middle, "--until", middle]):
        plain = shared_daemon.cli("logs", *flags, "awkward")
        stamped = shared_daemon.cli("logs", "-t", *flags, "awkward")
        assert plain.code == stamped.code == 0
        assert plain.stdout == strip_timestamps(stamped.stdout), flags
        assert plain.stderr == strip_timestamps(stamped.stderr), flags
    everything = shared_daemon.cli("logs", "awkward")
    assert everything.stdout.count(b' & "q" back\\slash\ttab caf\xc3\xa9 \xe2\x80\xa8\n') == 300
    assert everything.stderr == b"".join(b"err%d\n" % i for i in range(300))
    assert len(list(log_path.parent.glob("*.gz"))) > 5
