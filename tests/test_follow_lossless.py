"""`logs -f` loses nothing (issue 16): a container writes 20,000 numbered lines at full speed into a small
rotated log (`max-size=50k`, `max-file=5`), and a follower started before its first line prints every
line once, in order, through logship's CLI, the docker CLI and docker-py, for json-file, local and the
dual-logging cache, compressed or not. One read of the container's output can rotate such a log many
times in a single write, so no follower can keep up with the files by name: the writer hands it the
files max-file deletes (Docker loses them: moby#23913, #39235).

Each follower here also reads slowly on purpose: nobody reads its output until the container has
ended, so it stalls once the pipes between it and the daemon are full, and meanwhile max-file deletes
dozens of files it has not read. That the daemon holds those files open for it then is checked in
/proc, so these tests fail if the files are ever not handed over, however the copier batches.

Past a follower's bound (`follow-backlog`) the loss is counted and told, never printed as output: the
logship CLI warns on stderr where the lines were and exits 1; the docker CLI gets Docker's in-stream
error at the end (`error from daemon in stream: Error grabbing logs: ...`, exit 1); docker-py yields
that error as its last item; the daemon log says it each time.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Sequence

import pytest

from tests.fluentd_real import FluentdServer
from tests.harness import DOCKER, LOGSHIP, Daemon, docker_env, needs_docker

pytestmark = pytest.mark.integration

LINES = 20_000
PAD = "x" * 494  # 500 bytes a line: 10 MB of output, over 200 json-file files of 50k, 40 local ones
# Waits for SIGUSR1, sent once the follower is there (`go`), then writes at full speed.
WRITER = (
    "trap 'go=1' USR1; while [ -z \"$go\" ]; do sleep 0.02; done; "
    f"awk 'BEGIN {{ for (i = 1; i <= {LINES}; i++) printf \"%05d {PAD}\\n\", i }}'"
)
LOG_FILES = ("-json.log", "/container.log", "/container-cached.log")  # json-file's, local's, the cache's
SMALL_LOG = ("--log-opt", "max-size=50k", "--log-opt", "max-file=5")
LINE = re.compile(rb"(\d{5}) x{494}")


def numbers(stdout: bytes) -> list[int]:
    """The number of every line; fails on any line that is not one the container wrote."""
    found = []
    for line in stdout.split(b"\n")[:-1]:
        match = LINE.fullmatch(line)
        assert match is not None, f"not a line the container wrote: {line[:200]!r}"
        found.append(int(match.group(1)))
    assert stdout.endswith(b"\n")
    return found


def opened_by_daemon(daemon: Daemon, container_id: str) -> list[str]:
    """The container's log files the daemon holds open (deleted ones end with ` (deleted)`)."""
    assert daemon.process is not None
    held = []
    for fd in os.listdir(f"/proc/{daemon.process.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{daemon.process.pid}/fd/{fd}")
        except OSError:
            continue
        if container_id in target and any(name in target for name in LOG_FILES):
            held.append(target)
    return held


def held_for_followers(daemon: Daemon, container_id: str) -> list[str]:
    """The container's log files that max-file deleted and the daemon holds open (for a follower)."""
    return [target for target in opened_by_daemon(daemon, container_id) if target.endswith(" (deleted)")]


def go(daemon: Daemon, container_id: str) -> None:
    """Once a follower reads the container's log (the daemon holds the current file open twice: the writer's
    descriptor and the reader's), let the container write."""
    deadline = time.monotonic() + 60
    while len(opened_by_daemon(daemon, container_id)) < 2:
        assert time.monotonic() < deadline, "the follower never opened the log"
        time.sleep(0.02)
    daemon.ok("kill", "-s", "USR1", container_id)


def stalled_follower(
    daemon: Daemon, command: Sequence[str], env: dict[str, str], container: str
) -> tuple[int, bytes, bytes, list[str]]:
    """Run `command` (a `logs -f` of a container that is about to write) without reading its output until
    the container has ended; then what the daemon held open for it at that moment, and what it printed."""
    follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        container_id = daemon.inspect(container)["Id"]
        go(daemon, container_id)
        daemon.ok("wait", container, timeout=120)
        held = held_for_followers(daemon, container_id)
        stdout, stderr = follower.communicate(timeout=120)
    finally:
        follower.kill()
        follower.wait()
    return follower.returncode, stdout, stderr, held


@pytest.fixture(scope="module")
def daemon(shared_daemon: Daemon) -> Daemon:
    return shared_daemon


def log_options(setup: str, compress: str, request: pytest.FixtureRequest) -> list[str]:
    """`run` options for a small rotated log: json-file's or local's, or the cache of a fluentd container (the
    real Fluentd of ../shared/peers when it is there, else the in-process receiver: the run says which)."""
    if setup != "cache":
        return ["--log-driver", setup, *SMALL_LOG, "--log-opt", f"compress={compress}"]
    fluentd: FluentdServer = request.getfixturevalue("fluentd")
    return [
        "--log-driver",
        "fluentd",
        "--log-opt",
        f"fluentd-address={fluentd.address}",
        *(option.replace("max-", "cache-max-") for option in SMALL_LOG),
        "--log-opt",
        f"cache-compress={compress}",
    ]


def follow_command(daemon: Daemon, client: str, name: str, *options: str) -> tuple[list[str], dict[str, str]]:
    if client == "docker":
        return [DOCKER, "logs", "-f", *options, name], docker_env(daemon)
    return [*LOGSHIP, "logs", "-f", *options, name], daemon.env()


CLIENTS = [pytest.param("logship", id="logship-cli"), pytest.param("docker", id="docker-cli", marks=needs_docker)]
SETUPS = [
    pytest.param(setup, compress, id=f"{setup}-compress-{compress}")
    for setup in ("json-file", "local", "cache")
    for compress in ("false", "true")
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("setup", "compress"), SETUPS)
def test_a_follower_started_before_the_first_line_prints_every_line_once_in_order(
    daemon: Daemon, request: pytest.FixtureRequest, client: str, setup: str, compress: str
) -> None:
    name = f"lossless-{client}-{setup}-{compress}"
    daemon.ok("run", "-d", "--name", name, *log_options(setup, compress, request), "busybox", "sh", "-c", WRITER)
    code, stdout, stderr, held = stalled_follower(daemon, *follow_command(daemon, client, name), name)
    assert (code, stderr) == (0, b"")
    assert numbers(stdout) == list(range(1, LINES + 1))
    # Dozens of files were deleted by max-file while it stalled: it read them through what it was handed
    # (without that, it would hold its own file and at most the max-file - 1 it had opened by name).
    assert len(held) > 5
    assert daemon.cli("logs", "--tail", "1", name).stdout.startswith(b"%05d " % LINES)
    assert not daemon.cli("logs", name).stdout.startswith(b"00001 ")  # max-file did delete the first lines
    assert "lost lines" not in daemon.daemon_log()


def docker_py_follow(daemon: Daemon, api: object, driver: str, config: dict[str, str]) -> tuple[list[bytes], list[str]]:
    """docker-py's `logs(stream=True, follow=True)` of a container about to write, read only once it ended:
    the items, and the deleted files the daemon held open for it meanwhile."""
    from docker.types import LogConfig

    container = api.containers.run(  # type: ignore[attr-defined]
        "busybox", ["sh", "-c", WRITER], detach=True, log_config=LogConfig(type=driver, config=config)
    )
    try:
        items = container.logs(stream=True, follow=True)  # the request is made (and followed) here
        go(daemon, container.id)
        assert container.wait()["StatusCode"] == 0
        held = held_for_followers(daemon, container.id)
        return list(items), held
    finally:
        container.remove(force=True)


@pytest.mark.parametrize(("driver", "compress"), [("json-file", "false"), ("local", "true")])
def test_docker_py_follows_every_line_once_in_order(
    daemon: Daemon, docker_py: object, driver: str, compress: str
) -> None:
    config = {"max-size": "50k", "max-file": "5", "compress": compress}
    items, held = docker_py_follow(daemon, docker_py, driver, config)
    assert len(held) > 5
    assert len(items) == LINES  # an item per line, as from dockerd
    assert numbers(b"".join(items)) == list(range(1, LINES + 1))


# ---- past the bound ------------------------------------------------------------------------------
# follow-backlog=100k: a stalled follower may hold two deleted files of 50k, and loses the rest.

BOUNDED = "follow-backlog=100k"
LOSS = re.compile(
    r"(\d+) log lines \((\d+) rotated files?, (\d+) bytes\) were deleted by max-file before this follower could read"
)


def lost_lines(text: str) -> int:
    """The lines the notices in `text` say were lost, added up."""
    counts = [int(match.group(1)) for match in LOSS.finditer(text)]
    assert counts, f"no loss reported in {text!r}"
    return sum(counts)


def in_order_with_gaps(got: list[int]) -> int:
    """How many of the container's lines `got` lacks; asserts it holds the rest once each, in order."""
    assert got == sorted(set(got)) and got[0] == 1 and got[-1] == LINES
    return LINES - len(got)


def test_past_the_bound_the_logship_cli_warns_on_stderr_and_exits_1_with_stdout_intact(daemon: Daemon) -> None:
    name = "bounded-cli"
    options = ["--log-opt", BOUNDED, *SMALL_LOG]
    daemon.ok("run", "-d", "--name", name, *options, "busybox", "sh", "-c", WRITER)
    code, stdout, stderr, _ = stalled_follower(daemon, *follow_command(daemon, "logship", name), name)
    assert code == 1
    missing = in_order_with_gaps(numbers(stdout))  # stdout: only the container's lines
    assert missing > 0
    warnings = stderr.decode().splitlines()
    assert warnings and all(line.startswith("WARNING: ") for line in warnings)
    assert lost_lines(stderr.decode()) == missing
    assert lost_lines(daemon.daemon_log()) >= missing  # the daemon log has it too


@needs_docker
def test_past_the_bound_the_docker_cli_gets_dockers_in_stream_error_at_the_end(daemon: Daemon) -> None:
    name = "bounded-docker"
    options = ["--log-driver", "local", "--log-opt", BOUNDED, *SMALL_LOG, "--log-opt", "compress=false"]
    daemon.ok("run", "-d", "--name", name, *options, "busybox", "sh", "-c", WRITER)
    code, stdout, stderr, _ = stalled_follower(daemon, *follow_command(daemon, "docker", name), name)
    assert code == 1
    missing = in_order_with_gaps(numbers(stdout))
    assert missing > 0
    assert stderr.startswith(b"error from daemon in stream: Error grabbing logs: ")
    assert len(stderr.strip().splitlines()) == 1 and lost_lines(stderr.decode()) == missing


def test_past_the_bound_docker_py_yields_dockers_error_as_its_last_item(daemon: Daemon, docker_py: object) -> None:
    config = {"max-size": "50k", "max-file": "5", "follow-backlog": "100k"}
    items, _ = docker_py_follow(daemon, docker_py, "json-file", config)
    *lines, error = items
    missing = in_order_with_gaps(numbers(b"".join(lines)))
    assert missing > 0
    assert error.startswith(b"Error grabbing logs: ") and lost_lines(error.decode()) == missing


def test_a_tty_container_is_followed_by_the_logship_cli_as_raw_output(daemon: Daemon) -> None:
    # The CLI asks for notices, which frames even a tty container's output: it prints it as it was.
    daemon.ok("run", "-d", "-t", "--name", "lossless-tty", "busybox", "sh", "-c", "sleep 0.5; seq 1 3; printf 4")
    single = daemon.cli("logs", "-f", "lossless-tty", timeout=60)
    assert (single.code, single.stdout, single.stderr) == (0, b"1\r\n2\r\n3\r\n4", b"")
    daemon.ok("run", "-d", "-t", "--name", "lossless-tty2", "busybox", "sh", "-c", "sleep 0.5; echo five")
    several = daemon.cli("logs", "-f", "lossless-tty", "lossless-tty2", timeout=60)
    assert several.code == 0
    first, second = b"lossless-tty   | ", b"lossless-tty2  | "  # as docker compose pads the names
    assert several.stdout == first + (b"\r\n" + first).join([b"1", b"2", b"3", b"4"]) + b"\n" + second + b"five\r\n"
