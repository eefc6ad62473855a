"""The CLI's import graph stays small (issue 9): `logship logs` and `logship version` load neither the
other commands' modules nor the daemon's, drivers', TLS or http.client code. (Their speed is measured in
bench/cli.py; here only what they import, which does not depend on the machine's load.)"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from logship.cli import COMMAND_MODULES, cli
from tests.harness import Daemon

pytestmark = pytest.mark.integration

# Run the CLI in a fresh interpreter and report, after it is done, every module it imported.
REPORT_MODULES = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n"))
sys.argv = ["logship", *sys.argv[1:]]
from logship.console import main
main()
"""

NEVER_FOR_READING = (
    "aiohttp",
    "asyncio",
    "boto3",
    "email",
    "http.client",
    "logship.cli.containers",
    "logship.cli.images",
    "logship.cli.multilogs",
    "logship.cli.stats",
    "logship.daemon",
    "logship.drivers",
    "logship.pipeline",
    "logship.tls",
    "orjson",
    "ssl",
    "subprocess",
    "tarfile",
)


def imported_by(daemon: Daemon, *args: str) -> tuple[str, set[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", REPORT_MODULES, *args], capture_output=True, env=daemon.env(), timeout=60
    )
    err = completed.stderr.decode()
    assert completed.returncode == 0, err
    modules = set(err.rpartition("MODULES ")[2].split())
    return completed.stdout.decode(), modules


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_logs_of_one_container_imports_only_what_reading_needs(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--name", "startup_logs", "busybox", "sh", "-c", "echo one; echo two; echo three")
    output, modules = imported_by(shared_daemon, "logs", "--tail", "2", "startup_logs")
    assert output == "two\nthree\n"
    assert "logship.logscommand" in modules
    assert loaded(modules, NEVER_FOR_READING) == []


# What a plain `logs` (no --help, no mistake, no option of the `logship` group) does without: it is read
# without click (logship.logscommand), and the client avoids the modules whose import costs milliseconds.
NEVER_FOR_PLAIN_LOGS = (
    "calendar",
    "click",
    "dataclasses",
    "inspect",
    "logship.cli",
    "logship.units",
    "pathlib",
    "socket",
    "typing",
    "urllib.parse",
)


def test_plain_logs_imports_neither_click_nor_what_reading_one_log_can_do_without(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--name", "startup_plain", "busybox", "sh", "-c", "echo one; echo two; echo three")
    args = ("logs", "-n2", "--since", "2000-01-01T00:00:00Z", "--until=2999-01-01T00:00:00+01:00", "startup_plain")
    output, modules = imported_by(shared_daemon, *args)
    assert output == "two\nthree\n"
    assert loaded(modules, NEVER_FOR_PLAIN_LOGS) == []


def test_version_imports_neither_the_daemon_nor_other_commands(shared_daemon: Daemon) -> None:
    output, modules = imported_by(shared_daemon, "version")
    assert "Server:" in output
    assert loaded(modules, NEVER_FOR_READING) == []


def test_every_command_is_found_in_the_module_the_table_names() -> None:
    defined = {
        command.name: module
        for module in set(COMMAND_MODULES.values())
        for command in importlib.import_module(f"logship.cli.{module}").COMMANDS
    }
    assert defined == COMMAND_MODULES
    for name in COMMAND_MODULES:
        found = cli.get_command(cli.make_context("logship", [name, "--help"], resilient_parsing=True), name)
        assert found is not None and found.name == name
