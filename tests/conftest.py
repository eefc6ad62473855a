"""Fixtures for tests that drive a real daemon with real containers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fluentd_receiver import ForwardReceiver
from tests.harness import Daemon
from tests.journal import Journald, journal_problem
from tests.localstack import LocalStack, localstack_problem
from tests.rootfs import container_problem


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
def new_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of the test's own, not started: the test sets `config` then calls `start()`."""
    daemon = Daemon(tmp_path / "logship")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def journald() -> Iterator[Journald]:
    """A running systemd-journald: the machine's if one answers, else one started (and stopped) here."""
    problem = journal_problem()
    if problem:
        pytest.skip(f"journald tests {problem}")
    journal = Journald()
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
