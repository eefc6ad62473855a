"""Live restore: the daemon is killed with SIGKILL while containers write, and restarted.

What a user relies on: the containers keep running, every line they wrote reaches the log exactly once and
in order (json-file and local), containers that ended while the daemon was away show their real exit code
in `ps -a` and keep their last output, and an outage longer than the pipe holds only makes the container
wait.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from tests.harness import Daemon

pytestmark = pytest.mark.integration

F_GETPIPE_SZ = 1032


def state_dir(daemon: Daemon, ref: str) -> Path:
    return daemon.data_root / "containers" / str(daemon.inspect(ref)["Id"])


def numbers_in(text: str) -> list[int]:
    return [int(line) for line in text.split()]


def until(condition: object, what: str, timeout: float = 60.0, poll: float = 0.05) -> None:
    """Poll a condition that the test waits for (not a timed assertion: the bound only stops a hang)."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(poll)


def pipe_size(fifo: Path) -> int:
    """How much the FIFO's pipe holds (an extra reader that never reads changes nothing for the container)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return fcntl.fcntl(fd, F_GETPIPE_SZ)
    finally:
        os.close(fd)


def ps_row(daemon: Daemon, name: str) -> str:
    """The row of `ps -a` that lists the container called `name`."""
    rows = [row for row in daemon.ok("ps", "-a").splitlines()[1:] if row.split()[-1] == name]
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_every_line_survives_repeated_daemon_crashes_exactly_once_and_in_order(new_daemon: Daemon, driver: str) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    count = 1_000_000  # a shell loop writing as fast as it can: several seconds, one write per line
    script = f"i=1; while [ $i -le {count} ]; do echo $i; i=$((i+1)); done"
    started = new_daemon.ok("run", "-d", "--name", "counter", "--log-driver", driver, "busybox", "sh", "-c", script)
    directory = new_daemon.data_root / "containers" / started.strip()
    for _ in range(3):
        size = _log_bytes(directory)
        until(lambda size=size: _log_bytes(directory) > size, "the daemon to write the log", poll=0.01)
        assert not (directory / "exitcode").exists(), "the container should still be writing"
        new_daemon.kill9()
        new_daemon.start()
    assert new_daemon.ok("wait", "counter", timeout=300).strip() == "0"
    assert numbers_in(new_daemon.ok("logs", "counter", timeout=300)) == list(range(1, count + 1))


def _log_bytes(container_dir: Path) -> int:
    return sum(path.stat().st_size for path in container_dir.rglob("*.log*") if path.is_file())


def test_a_container_that_ends_while_the_daemon_is_down_keeps_its_output_and_exit_code(new_daemon: Daemon) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    new_daemon.ok(
        "run", "-d", "--name", "brief", "busybox", "sh", "-c", "sleep 1; seq 1 50000; echo last words >&2; exit 7"
    )
    directory = state_dir(new_daemon, "brief")
    new_daemon.kill9()
    until(lambda: (directory / "exitcode").exists(), "the container to end while the daemon is down")
    new_daemon.start()
    assert "Exited (7)" in ps_row(new_daemon, "brief")
    assert new_daemon.inspect("brief")["State"]["ExitCode"] == 7
    result = new_daemon.cli("logs", "brief")
    assert numbers_in(result.out) == list(range(1, 50001))
    assert result.err == "last words\n"


def test_an_outage_longer_than_the_pipe_holds_makes_the_container_wait_and_loses_nothing(new_daemon: Daemon) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    count = 800_000  # about 5.5 MB: more than the 1 MiB pipe
    new_daemon.ok("run", "-d", "--name", "patient", "busybox", "sh", "-c", f"sleep 1; seq 1 {count}; echo done")
    directory = state_dir(new_daemon, "patient")
    assert pipe_size(directory / "stdout.fifo") == int(Path("/proc/sys/fs/pipe-max-size").read_text())
    new_daemon.kill9()
    time.sleep(3)  # the container writes into a full pipe and waits
    assert not (directory / "exitcode").exists(), "the container should be blocked on its full pipe"
    new_daemon.start()
    assert new_daemon.ok("wait", "patient", timeout=300).strip() == "0"
    lines = new_daemon.ok("logs", "patient", timeout=300).split()
    assert lines[-1] == "done"
    assert numbers_in("\n".join(lines[:-1])) == list(range(1, count + 1))


def test_ps_after_a_restart_shows_running_and_ended_containers_as_they_are(new_daemon: Daemon) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    new_daemon.ok("run", "-d", "--name", "stays", "busybox", "sleep", "300")
    new_daemon.ok("run", "-d", "--name", "ends", "busybox", "sh", "-c", "sleep 1; exit 3")
    ends_dir = state_dir(new_daemon, "ends")
    new_daemon.kill9()
    until(lambda: (ends_dir / "exitcode").exists(), "the container to end while the daemon is down")
    new_daemon.start()
    assert " Up " in ps_row(new_daemon, "stays")
    assert "Exited (3)" in ps_row(new_daemon, "ends")
    new_daemon.ok("rm", "-f", "stays")


def test_fifty_running_containers_are_all_reattached_after_a_kill_and_lose_nothing(new_daemon: Daemon) -> None:
    import docker as docker_py  # the API as docker-py drives it: fifty CLI processes would dominate the test

    new_daemon.start()
    new_daemon.import_busybox()
    client = docker_py.DockerClient(base_url=new_daemon.host, version="1.41")
    writer = "trap 'exit 0' TERM; i=0; while true; do echo $i; i=$((i+1)); sleep 0.02; done"
    containers = [client.containers.run("busybox", ["sh", "-c", writer], detach=True) for _ in range(50)]

    until(lambda: all(_lines_read(client, c.id) > 0 for c in containers), "every container's first lines")
    new_daemon.kill9()
    time.sleep(1)  # they write on meanwhile, into their pipes
    new_daemon.start()
    client = docker_py.DockerClient(base_url=new_daemon.host, version="1.41")
    assert sorted(c.id for c in client.containers.list()) == sorted(c.id for c in containers), "all reattached"
    until(lambda: all(_lines_read(client, c.id) > 100 for c in containers), "more lines after the restart")
    for container in containers:
        container.stop(timeout=5)
    for container in containers:
        numbers = numbers_in(container.logs().decode())
        assert numbers == list(range(len(numbers))), f"{container.id[:12]}: each line once, in order"
    client.close()


def _lines_read(client: object, container_id: str) -> int:
    return int(client.api.inspect_container(container_id)["LogStats"]["LinesRead"])  # type: ignore[attr-defined]
