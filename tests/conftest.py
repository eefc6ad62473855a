"""Fixtures for tests that drive a real daemon with real containers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.fluentd_real import FluentdServer, fluentd_kind, new_fluentd_server, problems_of
from tests.fluentd_receiver import ForwardReceiver
from tests.harness import Daemon
from tests.hostnet import differences, host_network
from tests.journal import Journald, PrivateJournald, journal_problem
from tests.localstack import LocalStack, localstack_problem
from tests.rootfs import container_problem
from tests.rootless import TestUser, interpreter_note

AnyJournald = TypeVar("AnyJournald", Journald, PrivateJournald)


def pytest_report_header(config: pytest.Config) -> str:
    return f"fluentd tests: {fluentd_kind()}"


# The host's interfaces, addresses, routes and firewall rules when the run began: no test may change them
# (logship's networks live in a namespace of their own). Checked when the run ends; a change fails it.
_host_network_before: dict[str, str] = {}
_host_network_changes: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _host_network_before.update(host_network())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _host_network_changes.extend(differences(_host_network_before, host_network()))
    if _host_network_changes:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_fluentd_used = False


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _host_network_changes:
        terminalreporter.write_line("FAILED: the host's network changed during the run:", red=True)
        for change in _host_network_changes:
            terminalreporter.write_line(change)
    else:
        terminalreporter.write_line("the host's interfaces, addresses, routes and firewall rules are unchanged")
    if _fluentd_used:  # said at the end too: -q shows no header
        terminalreporter.write_line(f"fluentd tests ran against the {fluentd_kind()}")
    for note in sorted(_rootless_notes):  # which interpreter the rootless tests' users ran
        terminalreporter.write_line(f"rootless tests: {note}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = container_problem()
    if not problem:
        return
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"real containers {problem}"))


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon with a busybox image for a whole test module (containers are cheap, daemons less so)."""
    with Daemon(tmp_path_factory.mktemp("logship")).started() as daemon:
        yield daemon


@pytest.fixture
def docker_py(shared_daemon: Daemon) -> Iterator[object]:
    """docker-py's client of the module's daemon (the test is skipped where docker-py is not installed)."""
    docker_sdk = pytest.importorskip("docker")
    api = docker_sdk.DockerClient(base_url=shared_daemon.host)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def new_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of the test's own, not started: the test sets `config` then calls `start()`."""
    daemon = Daemon(tmp_path / "logship")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon whose containers (and so their logs) live on a 64 MiB tmpfs."""
    daemon = Daemon(tmp_path / "logship")
    containers = daemon.data_root / "containers"
    containers.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(containers)])
    if mounted.returncode != 0:
        pytest.skip("needs to mount a tmpfs (root)")
    try:
        daemon.start()
        daemon.import_busybox()
        yield daemon
    finally:
        daemon.stop()
        if subprocess.run(["umount", str(containers)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(containers)], check=True)


@pytest.fixture(scope="session")
def journald() -> Iterator[Journald]:
    """A running systemd-journald: the machine's if one answers, else one started (and stopped) here."""
    yield from _started(Journald)


def _started(kind: Callable[[], AnyJournald]) -> Iterator[AnyJournald]:
    problem = journal_problem()
    if problem:
        pytest.skip(f"journald tests {problem}")
    journal = kind()
    journal.start()
    try:
        yield journal
    finally:
        journal.stop()


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A CloudWatch Logs emulator: AWS_ENDPOINT_URL's, else LocalStack started (and stopped) here."""
    problem = localstack_problem()
    if problem:
        pytest.skip(f"awslogs tests {problem}")
    emulator = LocalStack(tmp_path_factory.mktemp("localstack"))
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def receiver() -> Iterator[ForwardReceiver]:
    """A fluentd forward receiver on a loopback port; at the end, nothing a driver sent broke the protocol."""
    server = ForwardReceiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert server.protocol_errors == []


# A fluentd server: its address, how it is started.
FluentdFactory = Callable[..., FluentdServer]


@pytest.fixture
def fluentd_factory(tmp_path: Path) -> Iterator[FluentdFactory]:
    """Makes fluentd servers for a test: the real Fluentd of ../shared/peers when it can run here, else the
    in-process receiver (tests/fluentd_receiver.py), behind the same interface (tests/fluentd_real.py).
    `fluentd_factory(unix_path=..., tls=(cert, key), start=True)`; with start=False its address is known and
    nothing listens there until `start()`. At the end every server is stopped and
    none may have found fault with what it was sent."""
    global _fluentd_used
    _fluentd_used = True
    servers: list[FluentdServer] = []

    def make(
        *,
        unix_path: str | os.PathLike[str] | None = None,
        tls: tuple[str, str] | None = None,
        start: bool = True,
    ) -> FluentdServer:
        server = new_fluentd_server(tmp_path / f"fluentd-{len(servers)}", unix_path=unix_path, tls=tls)
        servers.append(server)
        if start:
            server.start()
        elif isinstance(server, ForwardReceiver):  # its port is chosen when it listens: the same one next time
            server.start()
            server.stop()
        return server

    print(f"fluentd: {fluentd_kind()}")
    try:
        yield make
    finally:
        for server in servers:
            server.stop()
    assert [problem for server in servers for problem in problems_of(server)] == []


@pytest.fixture
def fluentd(fluentd_factory: FluentdFactory) -> FluentdServer:
    """A started fluentd on a loopback port: the real Fluentd when present, else the in-process receiver."""
    return fluentd_factory()


_rootless_notes: set[str] = set()


def _test_user(subordinate_range: bool) -> Iterator[TestUser]:
    created = TestUser.create(subordinate_range=subordinate_range)
    _rootless_notes.add(interpreter_note(created))
    try:
        yield created
    finally:
        created.delete()


@pytest.fixture(scope="module")
def rootless_user() -> Iterator[TestUser]:
    """A real user (useradd) with subordinate uid and gid ranges, removed with its home at the end."""
    yield from _test_user(subordinate_range=True)


@pytest.fixture(scope="module")
def lone_user() -> Iterator[TestUser]:
    """A real user without any subordinate range: only its own id can be mapped."""
    yield from _test_user(subordinate_range=False)


@pytest.fixture
def private_journald() -> Iterator[PrivateJournald]:
    """A journald in a mount namespace of its own, with persistent storage (per-user journals): see there."""
    yield from _started(PrivateJournald)
