"""Every log driver from a rootless daemon (json-file is in test_rootless.py): what the user's containers
write reaches each backend as it does from root's, and comes back with `logs` where the driver reads.

The backends are the real ones the other driver tests use: the real Fluentd of ../shared/peers (else the
in-process receiver, as the `fluentd` fixture says), LocalStack for CloudWatch Logs, and for journald a
standalone systemd-journald of the test's own with per-user journals (tests/journal.py, PrivateJournald:
the user journal is the file journald keeps for the user's uid and opens to that user alone). syslog and
gelf (issue 18, another branch) are checked here once they are in the tree: against Debian's rsyslog and
the GELF receiver written from the spec (tests/rsyslog.py, tests/gelf_receiver.py); skipped, saying so,
before.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from logship.drivers import registry
from tests.fluentd_real import FluentdServer
from tests.harness import run_with_awslogs, run_with_fluentd
from tests.journal import Journald, PrivateJournald, entries
from tests.localstack import CREDENTIALS, LocalStack, read_back
from tests.rootless import RootlessDaemon, TestUser, rootless_problem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(rootless_problem()), reason=f"rootless tests {rootless_problem()}"),
]

SCRIPT = "echo first; echo second >&2; printf 'no newline at the end'"
EXPECTED = ["first", "second", "no newline at the end"]


@pytest.fixture(scope="module")
def daemon(rootless_user: TestUser) -> Iterator[RootlessDaemon]:
    started = RootlessDaemon(rootless_user)
    started.extra_env = dict(CREDENTIALS)  # for awslogs, as a user would export them
    with started.started():
        yield started


def test_local_driver(daemon: RootlessDaemon) -> None:
    daemon.ok("run", "--name", "local", "--log-driver", "local", "busybox", "sh", "-c", SCRIPT)
    result = daemon.cli("logs", "local")
    assert result.out.splitlines() == ["first", "no newline at the end"] and result.err.splitlines() == ["second"]
    files = list((daemon.data_root / "containers" / daemon.inspect("local")["Id"]).rglob("container.log*"))
    assert files and all(path.stat().st_uid == daemon.user.uid for path in files)


def test_fluentd_driver(daemon: RootlessDaemon, fluentd: FluentdServer) -> None:
    container_id = run_with_fluentd(daemon, fluentd.address, "--name", "shipped", "busybox", "sh", "-c", SCRIPT)
    events = fluentd.wait_for(3)
    assert sorted(event.record["log"] for event in events) == sorted(EXPECTED)
    assert {event.record["container_id"] for event in events} == {container_id}
    assert {event.record["container_name"] for event in events} == {"/shipped"}
    assert [event.record["source"] for event in events if event.record["log"] == "second"] == ["stderr"]
    assert daemon.ok("logs", "shipped").splitlines() == ["first", "no newline at the end"]  # dual logging


def test_awslogs_driver(daemon: RootlessDaemon, localstack: LocalStack) -> None:
    group = f"rootless-{uuid.uuid4().hex[:8]}"
    container_id = run_with_awslogs(daemon, localstack.endpoint, group, SCRIPT)
    events = read_back(localstack, group, container_id, 3)
    assert sorted(event["message"] for event in events) == sorted(EXPECTED)


def test_journald_driver_writes_the_users_journal(rootless_user: TestUser, private_journald: PrivateJournald) -> None:
    daemon = JournalDaemon(rootless_user, private_journald)
    with daemon.started():
        name = f"journaled-{uuid.uuid4().hex[:6]}"
        daemon.ok("run", "--name", name, "--log-driver", "journald", "busybox", "sh", "-c", SCRIPT)
        # As the user, with journalctl --user: its own journal, where journald filed the entries.
        shown = subprocess.run(
            [*private_journald.enter(), *rootless_user.prefix(), "journalctl", "--user", "--no-pager", "-o", "json",
             f"CONTAINER_NAME={name}"],
            capture_output=True, env=rootless_user.env(), timeout=30,
        )  # fmt: skip
        entries = [json.loads(line) for line in shown.stdout.splitlines()]
        assert sorted(entry["MESSAGE"] for entry in entries) == sorted(EXPECTED), shown.stderr
        assert {entry["_UID"] for entry in entries} == {str(rootless_user.uid)}
        machine_id = Path("/etc/machine-id").read_text().strip()
        user_journal = private_journald.root / f"var/log/journal/{machine_id}/user-{rootless_user.uid}.journal"
        assert user_journal.exists()
        result = daemon.cli("logs", name)  # read back by the rootless daemon, from the user journal
        assert result.out.splitlines() == ["first", "no newline at the end"] and result.err.splitlines() == ["second"]


class JournalDaemon(RootlessDaemon):
    """A rootless daemon that sees the private journald (started in its mount namespace)."""

    def __init__(self, user: TestUser, journal: PrivateJournald) -> None:
        super().__init__(user, "journal")
        self.journal = journal

    @property
    def daemon_command(self) -> list[str]:
        return [*self.journal.enter(), *self.logship]


def test_journald_without_per_user_journals_says_why_logs_cannot_read_back(
    daemon: RootlessDaemon, journald: Journald
) -> None:
    machine_id = Path("/etc/machine-id").read_text().strip()
    if (Path("/var/log/journal") / machine_id).is_dir():
        pytest.skip("this machine's journal is persistent: it keeps a journal per user, which logs reads")
    name = f"volatile-{uuid.uuid4().hex[:6]}"
    daemon.ok("run", "--name", name, "--log-driver", "journald", "busybox", "echo", "into the runtime journal")
    assert entries(f"CONTAINER_NAME={name}")[0]["MESSAGE"] == "into the runtime journal"  # journald has it
    result = daemon.cli("logs", name)
    assert result.code == 1
    assert "may read none of the journal's files" in result.err and "systemd-journal group" in result.err


def network_driver(name: str, helper: str) -> ModuleType:
    """The test helper module of a driver added by other work (issue 18), or a skip naming what is missing."""
    if name not in registry.names():
        pytest.skip(f"the {name} driver is not in this tree (issue 18 adds it)")
    try:
        return importlib.import_module(helper)
    except ImportError:
        pytest.skip(f"the {name} driver's test server ({helper}) is not in this tree")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_syslog_driver(daemon: RootlessDaemon, tmp_path: Path, transport: str) -> None:
    rsyslog = network_driver("syslog", "tests.rsyslog")
    if rsyslog.rsyslog_problem():
        pytest.skip(f"syslog tests {rsyslog.rsyslog_problem()}")
    marker = f"rootless-{uuid.uuid4().hex[:8]}"
    with rsyslog.Rsyslog(tmp_path / "rsyslog") as server:
        address = server.udp_address if transport == "udp" else server.tcp_address
        daemon.ok(
            "run", "--rm", "--log-driver", "syslog", "--log-opt", f"syslog-address={address}",
            "--log-opt", "syslog-format=rfc5424", "--log-opt", f"tag={marker}", "busybox", "sh", "-c", SCRIPT,
        )  # fmt: skip
        server.wait_until(lambda got: sum(marker.encode() in r.raw for r in got) >= 3, what="the 3 lines")
        raw = [r.raw for r in server.received if marker.encode() in r.raw]
    for line in EXPECTED:
        assert [message for message in raw if line.encode() in message], (line, raw)
    assert all(message.startswith((b"<30>1 ", b"<27>1 ")) for message in raw)  # daemon facility, info / err


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_gelf_driver(daemon: RootlessDaemon, transport: str) -> None:
    gelf = network_driver("gelf", "tests.gelf_receiver")
    with gelf.GelfReceiver(transport) as server:
        daemon.ok(
            "run", "--rm", "--name", f"gelf-{transport}", "--log-driver", "gelf",
            "--log-opt", f"gelf-address={server.address}", "busybox", "sh", "-c", SCRIPT,
        )  # fmt: skip
        server.wait_for(3)
        fields = server.fields()
    assert sorted(field["short_message"] for field in fields) == sorted(EXPECTED)
    assert {field["_container_name"] for field in fields} == {f"gelf-{transport}"}
    assert [field["level"] for field in fields if field["short_message"] == "second"] == [3]  # stderr
