"""A plain `logship logs ...` runs without click (logship.logscommand), and nobody can tell: it reads every
command line as click's `logs` command does, hands anything else to click (help, mistakes, unusual cases),
and prints, fails and exits exactly as the click command. Also the small stand-ins that keep its imports
few: UTC seconds without calendar, socket paths without pathlib, queries without urllib.parse."""

from __future__ import annotations

import calendar
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logship import paths
from logship.cli.logs import logs as click_logs
from logship.client import _query_string, path_quote
from logship.logscommand import OPTIONS, api_timestamp, parse_plain, utc_seconds
from tests.harness import Daemon

# Pieces of command lines: every form of every option, values that look like options, mistakes.
TOKENS = [
    *(flag for option in OPTIONS for flag in option.flags),
    *("-ft", "-tf", "-n5", "-tn", "-tn5", "-nf", "-n=5", "-fx", "-f-", "-h", "-x", "-5", "-", "--", "---", "--=3"),
    *("--tail=3", "--tail=", "--since=1h", "--until=", "--follow=1", "--details=", "--tai", "--tail=a=b", "--help"),
    *("web", "db", "", "3", "all", "1h", "--help=x", "-n-1"),
]


def click_reading(args: list[str]) -> dict[str, Any] | None:
    """The values click's `logs` command gets for ARGS, or None when click answers with help or an error."""
    try:
        return click_logs.make_context("logs", list(args)).params
    except (click.exceptions.Exit, click.UsageError):
        return None


def plain_reading(args: list[str]) -> dict[str, Any] | None:
    parsed = parse_plain(args)
    if parsed is None:
        return None
    containers, values = parsed
    return {**values, "containers": containers}


@pytest.mark.parametrize(
    "args",
    [
        ["web"],
        ["-f", "web"],
        ["-ft", "web"],
        ["-n", "5", "web"],
        ["-n5", "web"],
        ["-tn5", "web"],
        ["-tn", "5", "web"],
        ["-n=5", "web"],
        ["--tail", "5", "web"],
        ["--tail=5", "web"],
        ["--tail=", "web"],
        ["web", "--tail", "5", "-t"],
        ["--since", "2013-01-02T13:23:37Z", "--until", "10m", "web"],
        ["--since", "--tail", "web"],
        ["--tail", "1", "--tail", "2", "web"],
        ["-f", "-f", "web"],
        ["--details", "--no-color", "--no-log-prefix", "--timestamps", "--follow", "web", "db"],
        ["--", "--tail", "-f"],
        ["-t", "--", "web", "--", "-n"],
        ["-", "web"],
        [""],
    ],
)
def test_plain_command_lines_are_read_as_click_reads_them(args: list[str]) -> None:
    reading = click_reading(args)
    assert reading is not None
    assert plain_reading(args) == reading


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["web", "--help"],
        ["-h", "web"],
        ["-x", "web"],
        ["-fx", "web"],
        ["--tai", "3", "web"],
        ["--follow=1", "web"],
        ["--tail"],
        ["web", "-n"],
        ["-tn"],
        ["-f"],
        ["--"],
        ["-5", "web"],
    ],
)
def test_what_click_refuses_or_answers_with_help_is_left_to_click(args: list[str]) -> None:
    assert click_reading(args) is None
    assert plain_reading(args) is None


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=6))
def test_any_command_line_is_read_as_click_reads_it_or_left_to_click(args: list[str]) -> None:
    assert plain_reading(args) == click_reading(args)


def test_the_click_command_has_the_options_of_the_table() -> None:
    options = [param for param in click_logs.params if isinstance(param, click.Option)]
    assert [(tuple(o.opts), o.name, o.is_flag) for o in options] == [
        (option.flags, option.name, not option.takes_value) for option in OPTIONS
    ]


@settings(max_examples=500, deadline=None)
@given(
    st.integers(1, 9999),
    st.integers(1, 12),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
)
def test_utc_seconds_are_calendar_timegm(year: int, month: int, day: int, hour: int, minute: int, second: int) -> None:
    fields = (year, month, day, hour, minute, second)
    assert utc_seconds(*fields) == calendar.timegm((*fields, 0, 0, 0))


def test_a_month_calendar_cannot_count_with_is_an_invalid_time() -> None:
    assert api_timestamp("2020-12-31T23:59:59.5Z", "since") == "1609459199.500000000"
    for value in ("2020-13-01T00:00:00Z", "2020-00-01Z", "0000-01-01T00:00:00+01:00"):
        message = f'invalid value for "since": failed to parse value as time or duration: "{value}"'
        with pytest.raises(ValueError, match=re.escape(message)):
            api_timestamp(value, "since")


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from("/.a-~ _"), max_size=12))
def test_socket_paths_are_spelled_as_pathlib_spells_them(text: str) -> None:
    assert paths.path_text(text) == str(Path(text))
    assert paths.UnixHost(text).path == Path(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=8), st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5) | st.integers()), max_size=4))
def test_names_and_queries_are_quoted_as_urllib_quotes_them(name: str, items: list[tuple[str, Any]]) -> None:
    assert path_quote(name) == quote(name, safe="")
    assert _query_string(items) == urlencode(items, doseq=True)


# ---- the whole command: the plain route against click's, in a fresh interpreter each ----------------------

# Both run as the `logship` console script does (program name `logship`); the second never takes the plain
# route. Each reports, after its output, whether click was imported.
VIA_CONSOLE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("\\nclick " + str("click" in sys.modules)))
sys.argv = ["logship", *sys.argv[1:]]
from logship.console import main
main()
"""
VIA_CLICK = VIA_CONSOLE.replace("from logship.console import main", "from logship.cli import main")


def run(daemon: Daemon, script: str, args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes, bool]:
    completed = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, env={**daemon.env(), **env}, timeout=60
    )
    err, _, used_click = completed.stderr.rpartition(b"\nclick ")
    return completed.returncode, completed.stdout, err, used_click == b"True"


@pytest.fixture(scope="module")
def daemon(shared_daemon: Daemon) -> Daemon:
    shared_daemon.ok("run", "--name", "plain_a", "busybox", "sh", "-c", "echo a1; echo a2 >&2; echo a3")
    shared_daemon.ok("run", "--name", "plain_b", "busybox", "sh", "-c", "echo b1; echo b2")
    return shared_daemon


PLAIN = [
    ["plain_a"],
    ["-n", "2", "plain_a"],
    ["--tail=1", "-t", "plain_a"],
    ["-tn1", "plain_a"],
    ["-n=1", "plain_a"],
    ["--since", "1", "--until", "2999-01-01T00:00:00Z", "plain_a"],
    ["--since", "2000-01-01T00:00:00+02:00", "--details", "plain_a"],
    ["plain_a", "plain_b", "--no-color"],
    ["--no-log-prefix", "-t", "plain_a", "plain_b"],
    ["--", "plain_a"],
    ["no_such_container"],
    ["plain_a", "no_such_container"],
]
TO_CLICK = [
    ["--help"],
    [],
    ["--tail"],
    ["-x", "plain_a"],
    ["--follow=1", "plain_a"],
    ["--since", "yesterday", "plain_a"],
    ["--until", "2020-13-01T00:00:00Z", "plain_a"],
]


@pytest.mark.integration
@pytest.mark.parametrize("args", PLAIN + TO_CLICK)
def test_the_plain_route_prints_and_exits_as_click_does(daemon: Daemon, args: list[str]) -> None:
    code, out, err, used_click = run(daemon, VIA_CONSOLE, ["logs", *args], {})
    assert (code, out, err) == run(daemon, VIA_CLICK, ["logs", *args], {})[:3]
    several = len([arg for arg in args if arg.startswith("plain_")]) > 1  # multilogs lives under logship.cli
    assert used_click == (args in TO_CLICK or several)


@pytest.mark.integration
@pytest.mark.parametrize(
    "env", [{"LOGSHIP_HOST": "ftp://nowhere"}, {"LOGSHIP_HOST": "unix:///nonexistent/sock"}, {"_LOGSHIP_COMPLETE": ""}]
)
def test_the_environment_is_read_as_click_reads_it(daemon: Daemon, env: dict[str, str]) -> None:
    args = ["logs", "plain_a"]
    assert run(daemon, VIA_CONSOLE, args, env)[:3] == run(daemon, VIA_CLICK, args, env)[:3]


@pytest.mark.integration
def test_shell_completion_is_click_s(daemon: Daemon) -> None:
    env = {"_LOGSHIP_COMPLETE": "bash_complete", "COMP_WORDS": "logship logs --ta", "COMP_CWORD": "2"}
    code, out, _, used_click = run(daemon, VIA_CONSOLE, ["logs", "plain_a"], env)
    assert (code, used_click) == (0, True)
    assert b"--tail" in out
