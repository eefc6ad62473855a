"""The syslog driver end to end against a real rsyslog (Debian's, started here on loopback ports and a unix
socket of its own, tests/rsyslog.py): Docker's recorded cases arrive as dockerd sent them, facilities and
priorities, the three formats, mutual TLS, the unix socket, octet-counted framing, a server that is down
when the container starts, and an rsyslog restarted mid-stream over TCP in blocking mode losing nothing."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logship.drivers import syslog
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch
from tests.harness import Daemon
from tests.rsyslog import Received, Rsyslog, rsyslog_escaped, rsyslog_problem
from tests.syslog_gelf_samples import IMAGE, SYSLOG_CASES, normalise_syslog, syslog_messages, transport
from tests.tls import make_certificate, make_client_certificate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("syslog-tls")
    cert, key, ca = make_certificate(folder)
    client_cert, client_key = make_client_certificate(folder, ca, str(folder / "ca.key"))
    return {"cert": cert, "key": key, "ca": ca, "client_cert": client_cert, "client_key": client_key}


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, certificates: dict[str, str]) -> Iterator[Rsyslog]:
    problem = rsyslog_problem(tls=True)
    if problem:
        pytest.skip(f"syslog tests {problem}")
    server = Rsyslog(
        tmp_path_factory.mktemp("rsyslog"), tls=(certificates["cert"], certificates["key"], certificates["ca"])
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("logship")).started() as started:
        started.import_busybox(IMAGE)
        yield started


def run_syslog(daemon: Daemon, address: str, *args: str, opts: dict[str, str] | None = None) -> str:
    log_opts = [
        item
        for key, value in {"syslog-address": address, **(opts or {})}.items()
        for item in ("--log-opt", f"{key}={value}")
    ]
    return daemon.ok("run", "-d", "--log-driver", "syslog", *log_opts, *args).strip()


def of_container(received: list[Received], marker: str) -> list[Received]:
    return [r for r in received if marker.encode() in r.raw[:200]]


def _priority(message: bytes) -> bytes:
    return message[: message.index(b">")]


def test_every_docker_sample_reaches_rsyslog_as_dockerd_sent_it(daemon: Daemon, rsyslog: Rsyslog) -> None:
    """Same command, options and container name as the recording; rsyslog stores the message without its
    framing and with control characters as #ooo, so the expected bytes are treated the same way."""
    started = {}
    for case, (opts, run_args, command) in SYSLOG_CASES.items():
        address = rsyslog.udp_address if transport(case) == "udp" else rsyslog.tcp_address
        started[case] = run_syslog(
            daemon, address, "--network", "none", "--name", f"s_{case}", *run_args, IMAGE, *command, opts=opts
        )
    for container_id in started.values():
        daemon.ok("wait", container_id)
    for case, container_id in started.items():
        opts = SYSLOG_CASES[case][0]
        expected = [
            normalise_syslog(rsyslog_escaped(m if transport(case) == "udp" else m[:-1]), opts.get("syslog-format", ""))
            for m in syslog_messages(case)
        ]
        marker, wanted = (f"s_{case}/" if "tag" in opts else container_id[:12]), len(expected)
        rsyslog.wait_until(lambda got, m=marker, n=wanted: len(of_container(got, m)) >= n, what=case)
        got = [normalise_syslog(r.raw, opts.get("syslog-format", "")) for r in of_container(rsyslog.received, marker)]
        # Each stream in its order; between stdout and stderr, lines written together race (in dockerd too).
        assert sorted(got, key=_priority) == sorted(expected, key=_priority), case
        assert {r.input for r in of_container(rsyslog.received, marker)} == {transport(case)}
    # What the placeholders stand for: the daemon's pid, this host's name, the line's time.
    (first, *_) = of_container(rsyslog.received, started["syslog_tcp_rfc5424"][:12])
    header = re.match(rb"<30>1 (\S+) (\S+) \S+ (\d+) ", first.raw)
    assert header and header[2] == socket.gethostname().encode()
    assert daemon.process is not None and int(header[3]) == daemon.process.pid


def test_facility_and_priority_over_the_unix_socket(daemon: Daemon, rsyslog: Rsyslog) -> None:
    container_id = run_syslog(
        daemon,
        rsyslog.unix_address,
        IMAGE,
        "sh",
        "-c",
        "echo to-local7; echo err-local7 >&2",
        opts={"syslog-facility": "local7"},
    )
    daemon.ok("wait", container_id)
    rsyslog.wait_until(lambda got: len(of_container(got, container_id[:12])) >= 2, what="two messages")
    got = {r.raw.split(b": ", 1)[1]: (r.input, r.raw[:5]) for r in of_container(rsyslog.received, container_id[:12])}
    assert got == {b"to-local7#012": ("imuxsock", b"<190>"), b"err-local7#012": ("imuxsock", b"<187>")}


def test_mutual_tls_sends_rfc5424_octet_counted_as_docker_and_an_unknown_client_gets_nothing_in(
    daemon: Daemon, rsyslog: Rsyslog, certificates: dict[str, str]
) -> None:
    tls = {
        "syslog-tls-ca-cert": certificates["ca"],
        "syslog-tls-cert": certificates["client_cert"],
        "syslog-tls-key": certificates["client_key"],
        "syslog-format": "rfc5424",
    }
    container_id = run_syslog(daemon, rsyslog.tls_address, IMAGE, "sh", "-c", "echo one; echo two", opts=tls)
    daemon.ok("wait", container_id)
    rsyslog.wait_until(lambda got: len(of_container(got, container_id[:12])) >= 2, what="two messages over TLS")
    got = of_container(rsyslog.received, container_id[:12])
    # Octet counting, as Docker frames RFC 5424 over TLS: the message's own newline is part of it (#012).
    assert [(r.input, r.raw.rsplit(b" - ", 1)[1]) for r in got] == [("tls", b"one#012"), ("tls", b"two#012")]
    anonymous = {"syslog-tls-ca-cert": certificates["ca"], "syslog-format": "rfc5424"}
    stranger = run_syslog(daemon, rsyslog.tls_address, IMAGE, "sh", "-c", "echo sneaky; sleep 2", opts=anonymous)
    daemon.ok("wait", stranger)
    time.sleep(0.5)
    assert of_container(rsyslog.received, stranger[:12]) == []
    assert "peer did not provide a certificate" in rsyslog.log_file.read_text()


def test_a_bad_tls_file_stops_the_start_with_the_option_named(daemon: Daemon, tmp_path: Path) -> None:
    result = daemon.cli(
        "run", "--log-driver", "syslog", "--log-opt", "syslog-address=tcp+tls://127.0.0.1:1",
        "--log-opt", f"syslog-tls-ca-cert={tmp_path / 'missing.pem'}", IMAGE, "true",
    )  # fmt: skip
    assert result.code == 125 and f"syslog-tls-ca-cert {tmp_path / 'missing.pem'}: cannot load" in result.err


def test_octet_counted_framing_keeps_a_message_with_a_newline_whole(rsyslog: Rsyslog) -> None:
    """A line never holds a newline today, but a joined multi-line event does: with newline framing it
    would become two messages; octet-counted, rsyslog gets one."""

    async def ship() -> None:
        info = ContainerInfo(
            "f" * 64,
            "/framing",
            config={"syslog-address": rsyslog.tcp_address, "syslog-framing": "octet-counted", "tag": "framing"},
        )
        driver = await syslog.new(info)
        await driver.log(Batch("stdout", time.time_ns(), [b"Traceback:\n  line 1\n  line 2", b"after"]))
        await driver.close()

    asyncio.run(ship())
    rsyslog.wait_until(lambda got: len(of_container(got, " framing[")) >= 2, what="two framed messages")
    assert [r.raw.split(b": ", 1)[1] for r in of_container(rsyslog.received, " framing[")] == [
        b"Traceback:#012  line 1#012  line 2#012",
        b"after#012",
    ]


def test_down_at_start_then_restarted_mid_stream_over_tcp_blocking_loses_nothing(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Docker fails the start when the server is down, and loses what was in flight at a restart. The
    driver connects behind, and after a break sends again what the server may not have read."""
    server = Rsyslog(tmp_path / "rsyslog")
    count = 20000
    # About 6 s of output: the server starts after 1 s, and is restarted twice while the container writes.
    script = f"i=0; while [ $i -lt {count} ]; do echo seq$i; i=$((i+1)); [ $((i % 200)) -eq 0 ] && usleep 60000; done"
    try:
        container_id = run_syslog(daemon, server.tcp_address, IMAGE, "sh", "-c", script)
        assert daemon.inspect(container_id)["State"]["Running"], "the container started with the server down"
        time.sleep(1)
        server.start()
        for seen in (4000, 11000):
            server.wait_until(lambda got, n=seen: len(got) >= n, timeout=60, what=f"{seen} lines")
            server.restart(down_for=0.5)
        assert daemon.inspect(container_id)["State"]["Running"], "the restarts came while the container wrote"
        daemon.ok("wait", container_id, timeout=120)

        def numbers(got: list[Received]) -> list[int]:
            return [int(r.raw.rsplit(b"seq", 1)[1]) for r in got]

        server.wait_until(lambda got: set(numbers(got)) >= set(range(count)), timeout=60, what=f"all {count} lines")
        got = numbers(server.received)
        assert list(dict.fromkeys(got)) == list(range(count)), "in order, apart from what was sent again"
        stats = daemon.inspect(container_id)["LogStats"]
        assert stats["LinesDropped"] == 0 and stats["Drivers"][0]["LinesFailed"] == 0
        resent = stats["Drivers"][0]["LinesRetried"]
        assert 0 < len(got) - count <= resent, "every line that came twice is one the driver counted as sent again"
    finally:
        server.stop()


def test_delivery_is_confirmed_in_lines_as_log_received_them_empty_lines_included(rsyslog: Rsyslog) -> None:
    """The disk buffer's contract (drivers/base.py ConfirmsDelivery): the listener hears every line once,
    when written to the socket; a batch of only empty lines sends nothing and is confirmed all the same."""
    confirmed: list[int] = []

    async def ship() -> None:
        info = ContainerInfo("e" * 64, "/ledger", config={"syslog-address": rsyslog.tcp_address, "tag": "ledger"})
        driver = await syslog.new(info)
        assert syslog.disk_buffer is True
        driver.set_delivery_listener(confirmed.append)
        now = time.time_ns()
        for batch in (
            Batch("stdout", now, [b"a", b"b"]),
            Batch("stdout", now, [b"", b""]),
            Batch("stderr", now, [b"c"]),
        ):
            await driver.log(batch)
        await driver.close()

    asyncio.run(ship())
    assert sum(confirmed) == 5
    rsyslog.wait_until(lambda got: len(of_container(got, " ledger[")) >= 3, what="three messages")
