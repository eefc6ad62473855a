"""`logship logs a b c`: several containers' logs merged by time, each line prefixed with its container's
name as `docker compose logs` prints it; one container's output stays exactly `docker logs`'."""

from __future__ import annotations

import calendar
import io
import itertools
import os
import pty
import re
import select
import subprocess
import time

import pytest

from logship.cli.multilogs import (
    HOLD_BACK_S,
    STDERR,
    STDOUT,
    Ended,
    HistoryMark,
    Lines,
    Merge,
    Output,
    StampedLines,
)
from logship.client import STREAM_HEADER
from logship.pipeline.message import MAX_LINE_SIZE
from tests.harness import LOGSHIP, Daemon

pytestmark = pytest.mark.integration

TRIO = ("web", "db", "worker")
PREFIX = {"web": b"web     | ", "db": b"db      | ", "worker": b"worker  | "}
STAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


def run_together(daemon: Daemon, scripts: dict[str, str], *flags: str) -> None:
    """Start detached busybox containers at the same time, so that their output overlaps in time."""
    starts = [
        subprocess.Popen(
            [*LOGSHIP, "run", "-d", *flags, "--name", name, "busybox", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=daemon.env(),
        )
        for name, script in scripts.items()
    ]
    for start in starts:
        _, err = start.communicate(timeout=60)
        assert start.returncode == 0, err


@pytest.fixture(scope="module")
def trio(shared_daemon: Daemon) -> Daemon:
    """Three containers writing alternately to stdout and stderr for about a second, ending without a newline."""
    run_together(
        shared_daemon,
        {
            name: f"for i in 1 2 3 4 5; do echo {name}-out$i; echo {name}-err$i >&2; sleep 0.25; done; "
            f"printf {name}-end"
            for name in TRIO
        },
    )
    shared_daemon.ok("wait", *TRIO)
    return shared_daemon


def own_lines(name: str) -> list[bytes]:
    return [f"{name}-out{i}".encode() for i in range(1, 6)] + [f"{name}-end".encode()]


def split_prefixed(output: bytes) -> list[tuple[str, bytes]]:
    """(container name, rest of the line) for each line of prefixed output."""
    pairs = []
    for line in output.splitlines():
        name, rest = line.split(b" | ", 1)
        pairs.append((name.decode().rstrip(), rest))
    return pairs


def switches(names: list[str]) -> int:
    return sum(1 for before, after in itertools.pairwise(names) if before != after)


# ---- prefixes -----------------------------------------------------------------------------------


def test_every_line_starts_with_its_containers_name_padded_to_the_longest_name_plus_one(trio: Daemon) -> None:
    result = trio.cli("logs", *TRIO)
    assert result.code == 0
    lines = result.stdout.split(b"\n")
    assert lines.pop() == b""  # the last line, written without a newline, got one
    for line in lines:
        name = line.split(b" ")[0].decode()
        assert line.startswith(PREFIX[name])
    for name in TRIO:
        assert [line[len(PREFIX[name]) :] for line in lines if line.startswith(PREFIX[name])] == own_lines(name)
    assert b"\033[" not in result.stdout + result.stderr  # piped: no colours


def test_a_last_line_without_newline_is_ended_and_never_glued_to_the_next_line(trio: Daemon) -> None:
    out = trio.cli("logs", *TRIO).stdout
    for name in TRIO:
        assert PREFIX[name] + f"{name}-end\n".encode() in out
    assert out.count(b"\n") == len(TRIO) * 6


def test_without_prefixes_the_lines_are_bare_and_still_merged_by_time(trio: Daemon) -> None:
    prefixed = trio.cli("logs", *TRIO).stdout
    bare = trio.cli("logs", "--no-log-prefix", *TRIO).stdout
    assert bare == b"".join(line.split(b" | ", 1)[1] for line in prefixed.splitlines(keepends=True))


def test_details_apply_to_each_container(trio: Daemon) -> None:
    out = trio.cli("logs", "--details", "web", "db").stdout
    assert b"web  |  web-out1\n" in out and b"db   |  db-out1\n" in out  # no attrs: Docker's lone space


def ns_of(stamp: bytes) -> int:
    seconds = calendar.timegm(time.strptime(stamp[:19].decode(), "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int(stamp[20:29])


def rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def test_since_and_until_apply_to_each_container(trio: Daemon) -> None:
    stamped = trio.cli("logs", "-t", *TRIO).stdout.splitlines()
    times = [ns_of(line.split(b" | ", 1)[1]) for line in stamped]
    # Cut in the middle of the widest pause between two lines, far from any line's time.
    _, cut = max((after - before, (before + after) // 2) for before, after in itertools.pairwise(times))
    before = [line for line, ns in zip(stamped, times, strict=True) if ns <= cut]
    after = [line for line, ns in zip(stamped, times, strict=True) if ns > cut]
    assert before and after
    assert trio.cli("logs", "-t", "--until", rfc3339(cut), *TRIO).stdout.splitlines() == before
    assert trio.cli("logs", "-t", "--since", rfc3339(cut), *TRIO).stdout.splitlines() == after


# ---- order --------------------------------------------------------------------------------------


def test_history_comes_out_in_time_order_across_containers_each_in_its_own_order(trio: Daemon) -> None:
    result = trio.cli("logs", "-t", *TRIO)
    lines = split_prefixed(result.stdout)
    stamps = [rest[:30] for _, rest in lines]
    assert stamps == sorted(stamps)
    assert switches([name for name, _ in lines]) >= 6  # the containers really alternate
    for name in TRIO:
        alone = trio.cli("logs", "-t", name).stdout
        assert [rest for who, rest in lines if who == name] == (alone + b"\n").splitlines()


def test_stamps_are_shown_after_the_prefix_only_with_t(trio: Daemon) -> None:
    stamped = trio.cli("logs", "-t", *TRIO).stdout.splitlines()
    assert all(re.match(rb"^(web|db|worker) +\| " + STAMP + rb" \S", line) for line in stamped)
    plain = trio.cli("logs", *TRIO).stdout.splitlines()
    assert plain == [re.sub(rb"\| " + STAMP + b" ", b"| ", line) for line in stamped]


def test_stdout_lines_go_to_stdout_and_stderr_lines_to_stderr_both_prefixed(trio: Daemon) -> None:
    result = trio.cli("logs", *TRIO)
    assert b"-err" not in result.stdout
    for name in TRIO:
        errors = [line for line in result.stderr.splitlines() if line.startswith(PREFIX[name])]
        assert errors == [PREFIX[name] + f"{name}-err{i}".encode() for i in range(1, 6)]
    assert len(result.stderr.splitlines()) == 15


def test_tail_counts_the_last_lines_of_each_container(trio: Daemon) -> None:
    result = trio.cli("logs", "--tail", "2", *TRIO)
    assert sorted(result.stdout.splitlines()) == sorted(PREFIX[n] + f"{n}-end".encode() for n in TRIO)
    assert sorted(result.stderr.splitlines()) == sorted(PREFIX[n] + f"{n}-err5".encode() for n in TRIO)


def test_follow_shows_running_containers_to_their_ends(shared_daemon: Daemon) -> None:
    # Both wait before writing, so every line is written while `logs -f` already follows.
    run_together(
        shared_daemon,
        {
            "tick": "sleep 2; for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.3; done",
            "tock": "sleep 2.15; for i in 1 2 3 4 5 6; do echo tock-$i; sleep 0.3; done",
        },
    )
    result = shared_daemon.cli("logs", "-f", "tick", "tock", timeout=60)
    assert result.code == 0
    lines = split_prefixed(result.stdout)
    for name in ("tick", "tock"):
        assert [rest for who, rest in lines if who == name] == [f"{name}-{i}".encode() for i in range(1, 7)]
    assert switches([name for name, _ in lines]) >= 3  # live lines are interleaved, not one container then the other


# ---- lines as the daemon cuts them ---------------------------------------------------------------


def test_a_line_longer_than_16k_comes_out_whole_with_one_prefix(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--name", "long", "busybox", "sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" a; echo')
    shared_daemon.ok("run", "--name", "short", "busybox", "echo", "after")
    out = shared_daemon.cli("logs", "long", "short").stdout
    assert out == b"long   | " + b"a" * 20000 + b"\nshort  | after\n"
    # With -t each 16 KiB piece keeps its stamp, as `docker logs -t` and `docker compose logs -t` show it.
    stamped = shared_daemon.cli("logs", "-t", "long", "short").stdout.splitlines()[0]
    assert re.fullmatch(b"long   \\| " + STAMP + b" a{16384}" + STAMP + b" a{3616}", stamped)


def test_tty_containers_are_split_into_lines_with_their_prefix(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "-t", "--name", "term", "busybox", "sh", "-c", "echo one; echo two")
    shared_daemon.ok("run", "--name", "pipe", "busybox", "echo", "three")
    result = shared_daemon.cli("logs", "term", "pipe")
    assert result.stdout == b"term  | one\r\nterm  | two\r\npipe  | three\n"


# ---- colours ------------------------------------------------------------------------------------


def in_a_terminal(daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> bytes:
    """What `logship <args>` shows when its stdout and stderr are a terminal."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*LOGSHIP, *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env={**daemon.env(), **(env or {})},
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 30)
            assert ready, f"no output or end within 30 s: {seen!r}"
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(timeout=30) == 0, seen
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    return seen.replace(b"\r\n", b"\n")


def test_on_a_terminal_each_container_gets_composes_next_colour(trio: Daemon) -> None:
    shown = in_a_terminal(trio, "logs", *TRIO)
    assert b"\033[36mweb     | \033[0mweb-out1\n" in shown
    assert b"\033[33mdb      | \033[0mdb-out1\n" in shown
    assert b"\033[32mworker  | \033[0mworker-err1\n" in shown


def test_no_color_and_the_no_color_variable_keep_a_terminal_monochrome(trio: Daemon) -> None:
    assert b"\033[" not in in_a_terminal(trio, "logs", "--no-color", *TRIO)
    assert b"\033[" not in in_a_terminal(trio, "logs", *TRIO, env={"NO_COLOR": "1"})
    assert b"web     | web-out1\n" in in_a_terminal(trio, "logs", "--no-color", *TRIO)


# ---- errors -------------------------------------------------------------------------------------


def test_an_unknown_container_fails_the_command_before_anything_is_printed(trio: Daemon) -> None:
    result = trio.cli("logs", "-f", "web", "nope", "db")
    assert result.code == 1
    assert result.stdout == b""
    assert result.stderr == b"Error response from daemon: No such container: nope\n"


def test_an_unreadable_container_is_reported_with_its_prefix_and_the_others_still_shown(trio: Daemon) -> None:
    trio.ok("run", "--name", "mute", "--log-driver", "none", "busybox", "echo", "hi")
    result = trio.cli("logs", "web", "mute")
    assert result.code == 1
    assert result.stdout.splitlines() == [b"web   | " + line for line in own_lines("web")]
    assert b"mute  | Error response from daemon: configured logging driver does not support reading\n" in result.stderr
    assert len(result.stderr.splitlines()) == 6
    bare = trio.cli("logs", "--no-log-prefix", "web", "mute")
    assert bare.stdout.splitlines() == own_lines("web")
    assert b"mute  | Error response from daemon:" in bare.stderr  # an error always names its container


# ---- one container: docker logs, unchanged -------------------------------------------------------


def test_one_container_prints_docker_logs_output_without_prefix_or_added_newline(trio: Daemon) -> None:
    result = trio.cli("logs", "--no-color", "web")
    assert result.stdout == b"web-out1\nweb-out2\nweb-out3\nweb-out4\nweb-out5\nweb-end"
    assert result.stderr == b"web-err1\nweb-err2\nweb-err3\nweb-err4\nweb-err5\n"
    assert trio.cli("logs", "web", "web").stdout == result.stdout  # the same container twice is one container


# ---- the merge's rules, with time passed in -------------------------------------------------------


def at(second: int) -> bytes:
    return f"2026-01-01T00:00:{second:02d}.000000000Z".encode()


def lines(source: int, *seconds: int, arrived: float = 0.0) -> Lines:
    return Lines(
        source,
        [at(s) for s in seconds],
        [STDOUT] * len(seconds),
        [f"{source}:{s}\n".encode() for s in seconds],
        arrived,
    )


def new_merge(sources: int) -> tuple[Merge, io.BytesIO]:
    out = io.BytesIO()
    merge = Merge([b""] * sources, Output(out, io.BytesIO()), lambda index: None)
    return merge, out


def test_a_line_waits_until_every_other_container_delivered_something_as_new_or_ended() -> None:
    merge, out = new_merge(2)
    merge.take(lines(0, 2, 5))
    assert merge.write_ready(now=1000.0) is None  # no hold-back without -f: the other log is still coming
    assert out.getvalue() == b""
    merge.take(lines(1, 1, 3))
    merge.write_ready(now=1000.0)
    assert out.getvalue() == b"1:1\n0:2\n1:3\n"
    merge.take(Ended(1))
    merge.write_ready(now=1000.0)
    assert out.getvalue() == b"1:1\n0:2\n1:3\n0:5\n"


def test_a_live_line_waits_for_an_idle_followed_container_only_for_the_hold_back() -> None:
    merge, out = new_merge(2)
    merge.take(HistoryMark(0, None))
    merge.take(HistoryMark(1, None))
    merge.take(lines(0, 7, arrived=10.0))
    assert merge.write_ready(now=10.0) == 10.0 + HOLD_BACK_S
    assert out.getvalue() == b""
    merge.write_ready(now=10.0 + HOLD_BACK_S)
    assert out.getvalue() == b"0:7\n"


def test_history_still_coming_holds_other_containers_back_however_long_it_takes() -> None:
    merge, out = new_merge(2)
    merge.take(HistoryMark(0, None))
    merge.take(HistoryMark(1, at(5)))  # container 1's log had a line at :05 when following began
    merge.take(lines(0, 9, arrived=0.0))
    merge.take(lines(1, 4, arrived=0.0))
    assert merge.write_ready(now=3600.0) is None
    assert out.getvalue() == b"1:4\n"
    merge.take(lines(1, 5, arrived=3600.0))  # its history is complete: from now on it is only waited for briefly
    merge.write_ready(now=3600.0)
    assert out.getvalue() == b"1:4\n1:5\n0:9\n"


def test_lines_with_equal_stamps_go_in_the_order_the_containers_were_named() -> None:
    merge, out = new_merge(3)
    merge.take(lines(2, 1))
    merge.take(lines(1, 1))
    merge.take(lines(0, 1))
    for source in range(3):
        merge.take(Ended(source))
    merge.write_ready(now=0.0)
    assert out.getvalue() == b"0:1\n1:1\n2:1\n"


def test_an_error_is_shown_after_the_lines_its_container_delivered_before_it() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    merge = Merge([b"a | ", b"b | "], Output(out, err), lambda index: None)
    merge.take(lines(1, 3))
    merge.take(Ended(1, "error from daemon in stream: Error grabbing logs: broken"))
    merge.take(Ended(0))
    merge.write_ready(now=0.0)
    assert out.getvalue() == b"1:3\n"
    assert err.getvalue() == b"b | error from daemon in stream: Error grabbing logs: broken\n"
    assert merge.finished and merge.failed


# ---- the reader's cutting, on bytes shaped as the daemon sends them -------------------------------


def frame(stream: int, payload: bytes) -> bytes:
    return STREAM_HEADER.pack(stream, len(payload)) + payload


def test_pieces_of_a_long_line_are_joined_and_each_piece_loses_its_stamp() -> None:
    reader = StampedLines(0, tty=False, keep_stamps=False, details=False, prefixes={STDOUT: b"> ", STDERR: b"! "})
    data = (
        frame(STDOUT, at(1) + b" " + b"a" * MAX_LINE_SIZE)
        + frame(STDERR, at(2) + b" oops\n")
        + frame(STDOUT, at(1) + b" bbb\n")
        + frame(STDOUT, at(3) + b" end-without-newline")
    )
    first = reader.feed(data[:100])  # frames may arrive cut anywhere
    second = reader.feed(data[100:])
    last = reader.finish()
    assert first.texts == []
    assert second.texts == [b"! oops\n", b"> " + b"a" * MAX_LINE_SIZE + b"bbb\n"]
    assert second.stamps == [at(2), at(1)]  # a joined line has its first piece's time
    assert second.streams == [STDERR, STDOUT]
    assert last.texts == [b"> end-without-newline\n"]


def test_a_tty_line_loses_the_stamps_docker_puts_before_each_16k_piece() -> None:
    reader = StampedLines(0, tty=True, keep_stamps=False, details=False, prefixes={STDOUT: b"", STDERR: b""})
    got = reader.feed(at(1) + b" " + b"x" * MAX_LINE_SIZE + at(1) + b" yz\r\n" + at(2) + b" next\r\n")
    assert got.texts == [b"x" * MAX_LINE_SIZE + b"yz\r\n", b"next\r\n"]


def test_a_stream_error_stops_the_reading_after_the_lines_before_it() -> None:
    reader = StampedLines(0, tty=False, keep_stamps=True, details=False, prefixes={STDOUT: b"", STDERR: b""})
    got = reader.feed(frame(STDOUT, at(1) + b" fine\n") + frame(3, b"Error grabbing logs: bad\n") + frame(1, b"x\n"))
    assert got.texts == [at(1) + b" fine\n"]
    assert reader.error == "error from daemon in stream: Error grabbing logs: bad"


def test_stamps_sort_like_times_so_the_merge_never_parses_them() -> None:
    earlier = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000)) + ".999999999Z"
    later = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_001)) + ".000000000Z"
    assert earlier.encode() < later.encode()
