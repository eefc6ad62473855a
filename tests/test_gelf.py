"""The gelf driver end to end: a real daemon and real containers shipping to a GELF receiver written from
the GELF 1.1 specification (tests/gelf_receiver.py: chunk reassembly, gzip and zlib, NUL-framed TCP; no
Graylog server installs here). Docker's recorded cases arrive with the same fields, in the same order,
with the same escaping, byte for byte apart from host, times and ids; UDP chunks and compression are
Docker's; a TCP server that is down at the start and restarted mid-stream loses nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.gelf_receiver import GelfReceiver, decode
from tests.harness import Daemon
from tests.syslog_gelf_samples import (
    GELF_CASES,
    IMAGE,
    datagrams,
    gelf_fields,
    gelf_messages,
    normalise_gelf,
    transport,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("logship")).started() as started:
        started.import_busybox(IMAGE)
        yield started


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, GelfReceiver]]:
    servers = {"udp": GelfReceiver("udp"), "tcp": GelfReceiver("tcp")}
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        assert [error for server in servers.values() for error in server.errors] == []


def run_gelf(daemon: Daemon, address: str, *args: str, opts: dict[str, str] | None = None) -> str:
    pairs = {"gelf-address": address, **(opts or {})}.items()
    log_opts = [item for key, value in pairs for item in ("--log-opt", f"{key}={value}")]
    return daemon.ok("run", "-d", "--log-driver", "gelf", *log_opts, *args).strip()


def of_container(server: GelfReceiver, container_id: str) -> list[bytes]:
    return [m for m in server.wait_for(0) if json.loads(m).get("_container_id") == container_id]


def test_every_docker_sample_arrives_as_dockerd_sent_it(daemon: Daemon, receivers: dict[str, GelfReceiver]) -> None:
    started = {}
    for case, (opts, run_args, command) in GELF_CASES.items():
        address = receivers[transport(case)].address
        started[case] = run_gelf(
            daemon, address, "--network", "none", "--name", f"s_{case}", *run_args, IMAGE, *command, opts=opts
        )
    for container_id in started.values():
        daemon.ok("wait", container_id)
    for case, container_id in started.items():
        server, expected = receivers[transport(case)], gelf_messages(case)
        wanted = len(expected)
        server.wait_until(lambda s=server, c=container_id, n=wanted: len(of_container(s, c)) >= n, what=case)
        got = of_container(server, container_id)

        def level(message: bytes) -> int:
            return int(json.loads(message)["level"])

        # Each stream in its order; between stdout and stderr, lines written together race (in dockerd too).
        got, expected = sorted(got, key=level), sorted(expected, key=level)
        assert [gelf_fields(m) for m in got] == [gelf_fields(m) for m in expected], case
        assert [normalise_gelf(m) for m in got] == [normalise_gelf(m) for m in expected], case


def test_udp_datagrams_are_compressed_and_chunked_as_dockers(
    daemon: Daemon, receivers: dict[str, GelfReceiver]
) -> None:
    udp = receivers["udp"]
    for case, magic in (("gelf_udp_default", b"\x1f\x8b"), ("gelf_udp_zlib", b"\x78"), ("gelf_udp_none", b"{")):
        opts, run_args, command = GELF_CASES[case]
        before = len(udp.datagrams)
        container_id = run_gelf(daemon, udp.address, *run_args, IMAGE, *command, opts=opts)
        daemon.ok("wait", container_id)
        udp.wait_until(lambda c=container_id: bool(of_container(udp, c)), what=case)
        ours = [d for d in udp.datagrams[before:] if container_id.encode() in decode(d)]
        assert ours and all(d.startswith(magic) for d in ours), case
        assert [d[: len(magic)] for d in datagrams(case)] == [magic] * len(datagrams(case))
    opts, _, command = GELF_CASES["gelf_udp_long20000"]
    before = len(udp.datagrams)
    container_id = run_gelf(daemon, udp.address, IMAGE, *command, opts=opts)
    daemon.ok("wait", container_id)
    udp.wait_until(lambda: len(of_container(udp, container_id)) >= 2, what="both pieces")
    chunked = [d for d in udp.datagrams[before:] if d[:2] == b"\x1e\x0f"]

    def layout(chunks: list[bytes]) -> list[tuple[int, int, int]]:
        """(size, number, count) of each chunk; a last chunk's size depends on the name, host and time."""
        return [(len(d) if d[10] < d[11] - 1 else 0, d[10], d[11]) for d in chunks]

    assert layout(chunked) == layout(datagrams("gelf_udp_long20000"))
    assert [len(json.loads(m)["short_message"]) for m in of_container(udp, container_id)] == [16384, 3616]


def test_a_tcp_server_down_at_start_and_restarted_mid_stream_loses_nothing(daemon: Daemon) -> None:
    """Docker fails the start when a TCP GELF server is down and loses what was in flight at a restart."""
    server = GelfReceiver("tcp")
    server.start()
    address = server.address
    server.stop()
    count = 20000
    script = f"i=0; while [ $i -lt {count} ]; do echo seq$i; i=$((i+1)); [ $((i % 200)) -eq 0 ] && usleep 60000; done"
    try:
        container_id = run_gelf(daemon, address, IMAGE, "sh", "-c", script)
        assert daemon.inspect(container_id)["State"]["Running"]
        time.sleep(1)
        server.start()
        for seen in (4000, 11000):
            server.wait_for(seen, timeout=60)
            server.restart(down_for=0.5)
        assert daemon.inspect(container_id)["State"]["Running"], "the restarts came while the container wrote"
        daemon.ok("wait", container_id, timeout=120)

        def numbers() -> list[int]:
            return [int(f["short_message"][3:]) for f in server.fields()]

        server.wait_until(lambda: set(numbers()) >= set(range(count)), timeout=60, what=f"all {count} lines")
        got = numbers()
        assert list(dict.fromkeys(got)) == list(range(count)), "in order, apart from what was sent again"
        driver = daemon.inspect(container_id)["LogStats"]["Drivers"][0]
        assert driver["LinesFailed"] == 0 and 0 < len(got) - count <= driver["LinesRetried"]
        assert server.errors == []
    finally:
        server.stop()


def test_with_docker_s_reconnect_bound_a_dead_server_costs_only_the_lines_given_up(daemon: Daemon) -> None:
    server = GelfReceiver("tcp")
    server.start()
    address = server.address
    server.stop()
    opts = {"gelf-tcp-max-reconnect": "1", "gelf-tcp-reconnect-delay": "0"}
    container_id = run_gelf(daemon, address, IMAGE, "sh", "-c", "echo lost; sleep 1", opts=opts)
    daemon.ok("wait", container_id)
    deadline = time.monotonic() + 10
    while daemon.inspect(container_id)["LogStats"]["Drivers"][0]["LinesFailed"] < 1:
        assert time.monotonic() < deadline, "the line was not given up"
        time.sleep(0.2)
    assert "gave up on 1 lines" in daemon.daemon_log()
