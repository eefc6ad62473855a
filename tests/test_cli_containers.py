"""The container commands behave as docker's do: run, ps, inspect, wait, stop, kill, rm."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.harness import Daemon

pytestmark = pytest.mark.integration


def test_run_attached_splits_stdout_and_stderr_and_exits_with_the_containers_code(shared_daemon: Daemon) -> None:
    result = shared_daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
    assert result.code == 3
    assert result.stdout == b"to-out\n"
    assert result.stderr == b"to-err\n"


def test_run_detached_prints_the_id_and_the_container_runs(shared_daemon: Daemon) -> None:
    container_id = shared_daemon.ok("run", "-d", "--name", "sleeper", "busybox", "sleep", "30").strip()
    assert len(container_id) == 64
    info = shared_daemon.inspect("sleeper")
    assert info["Id"] == container_id
    assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
    assert info["Name"] == "/sleeper"
    assert container_id[:12] in shared_daemon.ok("ps")
    shared_daemon.ok("rm", "-f", "sleeper")
    assert "sleeper" not in shared_daemon.ok("ps", "-a")


def test_stdin_is_passed_with_i(shared_daemon: Daemon) -> None:
    result = shared_daemon.cli("run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z", input=b"hello\nworld\n")
    assert result.code == 0, result.err
    assert result.stdout == b"HELLO\nWORLD\n"


def test_tty_merges_stderr_into_stdout_with_crlf(shared_daemon: Daemon) -> None:
    result = shared_daemon.cli(
        "run", "-t", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; [ -t 1 ] && echo tty"
    )
    assert result.code == 0, result.err
    assert result.stdout == b"out\r\nerr\r\ntty\r\n"
    assert result.stderr == b""


def test_exec_failures_exit_127_and_126_with_dockers_message(shared_daemon: Daemon) -> None:
    missing = shared_daemon.cli("run", "--rm", "busybox", "nosuchcmd")
    assert missing.code == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in missing.err
    denied = shared_daemon.cli("run", "--rm", "busybox", "/etc")
    assert denied.code == 126
    assert "permission denied" in denied.err


def test_unknown_image_is_reported_and_nothing_is_created(shared_daemon: Daemon) -> None:
    before = shared_daemon.ok("ps", "-aq")
    result = shared_daemon.cli("run", "--rm", "--pull", "never", "nosuchimage", "true")
    assert result.code == 125
    assert "Unable to find image 'nosuchimage:latest' locally" in result.err
    assert "No such image" in result.err
    # Without --pull never, run tries to pull it (from Docker Hub, out of reach here) and fails as docker does.
    pulled = shared_daemon.cli("run", "--rm", "nosuchimage", "true")
    assert pulled.code == 125 and "Unable to find image 'nosuchimage:latest' locally" in pulled.err
    assert shared_daemon.ok("ps", "-aq") == before


def test_unknown_log_opt_and_driver_fail_create_with_dockers_text(shared_daemon: Daemon) -> None:
    before = shared_daemon.ok("ps", "-aq")
    opt = shared_daemon.cli("run", "--log-opt", "max-sise=1m", "busybox", "true")
    assert opt.code == 125
    assert "unknown log opt 'max-sise' for json-file log driver" in opt.err
    driver = shared_daemon.cli("run", "--log-driver", "splunkish", "busybox", "true")
    assert driver.code == 125
    assert "logger: no log driver named 'splunkish' is registered" in driver.err
    assert shared_daemon.ok("ps", "-aq") == before


def test_bad_option_values_fail_at_start_as_in_docker(shared_daemon: Daemon) -> None:
    result = shared_daemon.cli("run", "--name", "badsize", "--log-opt", "max-size=abc", "busybox", "true")
    assert result.code == 125
    assert "failed to initialize logging driver: invalid size: 'abc'" in result.err
    assert shared_daemon.inspect("badsize")["State"]["Status"] == "created"
    shared_daemon.ok("rm", "badsize")


def test_names_are_unique_and_conflicts_say_how_to_fix(shared_daemon: Daemon) -> None:
    shared_daemon.ok("create", "--name", "twin", "busybox", "true")
    again = shared_daemon.cli("create", "--name", "twin", "busybox", "true")
    assert again.code != 0
    assert 'The container name "/twin" is already in use' in again.err
    assert "remove (or rename)" in again.err
    bad = shared_daemon.cli("create", "--name", "../evil", "busybox", "true")
    assert "Invalid container name (../evil)" in bad.err
    shared_daemon.ok("rm", "twin")


def test_containers_are_found_by_name_id_and_unique_prefix(shared_daemon: Daemon) -> None:
    container_id = shared_daemon.ok("create", "--name", "findme", "busybox", "true").strip()
    for ref in ("findme", "/findme", container_id, container_id[:12], container_id[:5]):
        assert shared_daemon.inspect(ref)["Id"] == container_id
    missing = shared_daemon.cli("inspect", "nosuch")
    assert missing.code == 1 and "No such object: nosuch" in missing.err  # neither a container nor an image
    only_containers = shared_daemon.cli("inspect", "--type", "container", "nosuch")
    assert only_containers.code == 1 and "No such container: nosuch" in only_containers.err
    shared_daemon.ok("rm", "findme")


def test_an_ambiguous_prefix_is_an_error_that_says_so(shared_daemon: Daemon) -> None:
    ids = [shared_daemon.ok("create", "busybox", "true").strip() for _ in range(40)]
    first_chars = [i[0] for i in ids]
    shared = next(c for c in first_chars if first_chars.count(c) > 1)
    result = shared_daemon.cli("inspect", shared)
    assert result.code == 1
    assert f"multiple containers found with provided prefix: {shared}" in result.err
    shared_daemon.ok("rm", *ids)


def test_wait_prints_the_exit_code_and_ps_shows_exited(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "-d", "--name", "exit7", "busybox", "sh", "-c", "exit 7")
    assert shared_daemon.ok("wait", "exit7").strip() == "7"
    state = shared_daemon.inspect("exit7")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 7 and state["Running"] is False
    assert "Exited (7)" in shared_daemon.ok("ps", "-a", "--filter", "name=exit7")
    assert "exit7" not in shared_daemon.ok("ps")
    shared_daemon.ok("rm", "exit7")


def test_stop_sends_sigterm_then_sigkill_after_the_timeout(shared_daemon: Daemon) -> None:
    # A shell as pid 1 ignores SIGTERM (no handler), so stop must escalate to SIGKILL: 137.
    shared_daemon.ok("run", "-d", "--name", "stubborn", "busybox", "sleep", "60")
    started = time.monotonic()
    assert shared_daemon.ok("stop", "-t", "1", "stubborn").strip() == "stubborn"
    assert time.monotonic() - started < 30
    assert shared_daemon.inspect("stubborn")["State"]["ExitCode"] == 137
    # A container that handles SIGTERM stops with its own code.
    shared_daemon.ok(
        "run", "-d", "--name", "polite", "busybox", "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"
    )
    time.sleep(0.5)
    shared_daemon.ok("stop", "polite")
    assert shared_daemon.inspect("polite")["State"]["ExitCode"] == 42
    again = shared_daemon.cli("stop", "polite")
    assert again.code == 0  # stopping a stopped container is not an error (304)
    shared_daemon.ok("rm", "stubborn", "polite")


def test_kill_sends_the_signal_and_refuses_a_stopped_container(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "-d", "--name", "victim", "busybox", "sleep", "60")
    shared_daemon.ok("kill", "victim")
    assert shared_daemon.ok("wait", "victim").strip() == "137"
    again = shared_daemon.cli("kill", "victim")
    assert again.code == 1 and "is not running" in again.err
    shared_daemon.ok(
        "run", "-d", "--name", "usr1", "busybox", "sh", "-c", "trap 'exit 10' USR1; while :; do sleep 0.1; done"
    )
    time.sleep(0.5)
    shared_daemon.ok("kill", "-s", "USR1", "usr1")
    assert shared_daemon.ok("wait", "usr1").strip() == "10"
    shared_daemon.ok("rm", "victim", "usr1")


def test_rm_refuses_a_running_container_unless_forced(shared_daemon: Daemon) -> None:
    container_id = shared_daemon.ok("run", "-d", "--name", "busy", "busybox", "sleep", "60").strip()
    refused = shared_daemon.cli("rm", "busy")
    assert refused.code == 1
    assert "container is running: stop the container before removing or force remove" in refused.err
    shared_daemon.ok("rm", "-f", "busy")
    assert not (shared_daemon.data_root / "containers" / container_id).exists()


def test_rm_flag_removes_the_container_after_exit(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--rm", "--name", "ephemeral", "busybox", "true")
    assert shared_daemon.cli("inspect", "ephemeral").code == 1


def test_inspect_shows_docker_shapes_and_the_log_path(shared_daemon: Daemon) -> None:
    shared_daemon.ok(
        "run",
        "-d",
        "--name",
        "shaped",
        "--label",
        "team=logs",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=3",
        "busybox",
        "true",
    )
    shared_daemon.ok("wait", "shaped")
    info = shared_daemon.inspect("shaped")
    assert info["Path"] == "true" and info["Args"] == []
    assert info["Config"]["Labels"] == {"team": "logs"}
    assert "A=1" in info["Config"]["Env"] and info["Config"]["WorkingDir"] == "/tmp"
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "3"}}
    assert info["LogPath"] == str(shared_daemon.data_root / "containers" / info["Id"] / f"{info['Id']}-json.log")
    assert Path(info["LogPath"]).exists()
    assert oct(os.stat(info["LogPath"]).st_mode & 0o777) == "0o640"
    assert info["State"]["StartedAt"].endswith("Z") and info["Created"].endswith("Z")
    assert info["LogStats"]["LinesRead"] == 0
    formatted = shared_daemon.ok("inspect", "--format", "{{.State.Status}} {{json .Config.Labels}}", "shaped")
    assert formatted.strip() == 'exited {"team": "logs"}'
    shared_daemon.ok("rm", "shaped")


def test_ps_lists_running_by_default_and_all_with_a(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "-d", "--name", "up", "busybox", "sleep", "60")
    shared_daemon.ok("run", "--name", "down", "busybox", "true")
    running = shared_daemon.ok("ps")
    assert running.splitlines()[0].split() == [
        "CONTAINER",
        "ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    assert "up" in running and " down" not in running
    listing = shared_daemon.ok("ps", "-a")
    assert "down" in listing and '"sleep 60"' in listing
    quiet = shared_daemon.ok("ps", "-aq", "--no-trunc").split()
    assert all(len(i) == 64 for i in quiet)
    shared_daemon.ok("rm", "-f", "up", "down")


def test_restarting_a_stopped_container_appends_to_its_log(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--name", "again", "busybox", "echo", "run")
    shared_daemon.ok("start", "again")
    shared_daemon.ok("wait", "again")
    assert shared_daemon.ok("logs", "again") == "run\nrun\n"
    shared_daemon.ok("rm", "again")


def test_info_and_version_describe_the_daemon(shared_daemon: Daemon) -> None:
    info = shared_daemon.ok("info")
    assert "Logging Driver: json-file" in info
    assert f"Data Root: {shared_daemon.data_root}" in info
    assert f"Daemon Log: {shared_daemon.data_root / 'daemon.log'}" in info
    version = shared_daemon.ok("version")
    assert "Server: logship" in version and "API version" in version


def test_the_api_answers_with_a_version_prefix_and_docker_error_shapes(shared_daemon: Daemon) -> None:
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(shared_daemon.socket))

    conn = Conn("localhost")
    conn.request("GET", "/v1.41/_ping")
    ping = conn.getresponse()
    assert ping.status == 200 and ping.read() == b"OK" and ping.getheader("Api-Version")
    conn.request("GET", "/containers/nosuch/json")
    missing = conn.getresponse()
    assert missing.status == 404
    assert json.loads(missing.read()) == {"message": "No such container: nosuch"}
    conn.request("POST", "/containers/create", body=b"{not json", headers={"Content-Type": "application/json"})
    bad = conn.getresponse()
    assert bad.status == 400 and "invalid JSON" in json.loads(bad.read())["message"]
    conn.close()
