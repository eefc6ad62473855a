"""Restart policies as Docker has them (`--restart no|on-failure[:N]|always|unless-stopped`), kept across
daemon restarts, and `logs -f` that follows a container across its restarts (moby#37630)."""

from __future__ import annotations

import calendar
import itertools
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from logship.daemon import restart
from logship.daemon.restart import Policy
from logship.errors import InvalidParameter
from tests.harness import LOGSHIP, Daemon
from tests.test_docker_clients import docker, needs_docker
from tests.test_docker_clients import ok as docker_ok

# Each run appends to a counter kept in the container's own filesystem (it survives restarts, as in
# Docker), so every run's lines say which run wrote them.
COUNTING = 'n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; echo "run $n start"; '
# A service that ends on SIGTERM (as the shutdown's stop sends it) and fails on SIGHUP. The command is the
# container's pid 1, which receives only the signals it handles, as in Docker.
SERVICE = ["sh", "-c", 'trap "exit 0" TERM; trap "exit 3" HUP; while true; do sleep 1; done']


# ---- the rules (no daemon) ----------------------------------------------------------------------


def test_back_off_starts_at_100ms_doubles_up_to_a_minute_and_resets_after_a_10s_run() -> None:
    delays = []
    delay = 0.0
    for _ in range(12):
        delay = restart.next_delay(delay, ran_for_s=0.5)
        delays.append(delay)
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == 60.0 and max(delays) == 60.0
    assert restart.next_delay(60.0, ran_for_s=10.0) == 0.1


@pytest.mark.parametrize(
    ("policy", "exit_code", "count", "stopped", "expected"),
    [
        (Policy("no"), 1, 0, False, False),
        (Policy("always"), 0, 50, False, True),
        (Policy("always"), 0, 0, True, True),  # a user's stop is enforced by calling the restart off
        (Policy("unless-stopped"), 0, 0, False, True),
        (Policy("unless-stopped"), 0, 0, True, False),
        (Policy("on-failure"), 0, 0, False, False),  # only failures count
        (Policy("on-failure"), 1, 1000, False, True),  # 0 = no limit
        (Policy("on-failure", 2), 1, 1, False, True),
        (Policy("on-failure", 2), 1, 2, False, False),
    ],
)
def test_who_restarts_after_an_exit(policy: Policy, exit_code: int, count: int, stopped: bool, expected: bool) -> None:
    assert restart.restarts_after_exit(policy, exit_code, count, stopped) is expected


def test_who_restarts_when_the_daemon_starts() -> None:
    def at_start(policy: Policy, exit_code: int = 137, stopped: bool = False, started: bool = True) -> bool:
        return restart.restarts_at_daemon_start(policy, exit_code, 0, stopped, started)

    assert at_start(Policy("always"), stopped=True)  # Docker: always comes back when the daemon does
    assert not at_start(Policy("unless-stopped"), stopped=True)
    assert at_start(Policy("unless-stopped"))
    assert at_start(Policy("on-failure"))
    assert not at_start(Policy("on-failure"), stopped=True)
    assert not at_start(Policy("on-failure"), exit_code=0)
    assert not at_start(Policy("always"), started=False)  # created, never started: stays created
    assert not at_start(Policy("no"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"Name": "on-failure", "MaximumRetryCount": -1}, "maximum retry count cannot be negative"),
        ({"Name": "always", "MaximumRetryCount": 3}, "maximum retry count can only be used with 'on-failure'"),
        ({"Name": "no", "MaximumRetryCount": -1}, "can only be used with 'on-failure' and cannot be negative"),
        ({"Name": "sometimes"}, "unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or"),
        ({"Name": "always", "MaximumRetryCount": "3"}, "MaximumRetryCount: expected an integer"),
    ],
)
def test_bad_policies_get_dockers_messages(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid") as caught:
        restart.normalize(raw)
    assert message in str(caught.value)


def test_an_empty_policy_means_no_as_older_clients_send_it() -> None:
    assert restart.normalize(None) == Policy("no", 0)
    assert restart.normalize({"Name": "", "MaximumRetryCount": 5}) == Policy("no", 0)
    assert restart.normalize({"Name": "on-failure", "MaximumRetryCount": 4}) == Policy("on-failure", 4)


def test_the_restart_flag_is_split_as_the_docker_cli_splits_it() -> None:
    assert restart.parse_flag("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert restart.parse_flag("always") == {"Name": "always", "MaximumRetryCount": 0}
    with pytest.raises(ValueError, match="no policy provided before colon"):
        restart.parse_flag(":3")
    with pytest.raises(ValueError, match="maximum retry count must be an integer"):
        restart.parse_flag("on-failure:x")


# ---- a real daemon ------------------------------------------------------------------------------


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll a condition that the daemon reaches by itself (restarts happen on their own schedule)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def state_of(daemon: Daemon, ref: str) -> dict[str, Any]:
    info = daemon.inspect(ref)
    return {**info["State"], "RestartCount": info["RestartCount"]}


def json_log_runs(daemon: Daemon, ref: str) -> list[tuple[str, str]]:
    """(line, time) of each entry of the container's json-file log, in file order."""
    path = daemon.inspect(ref)["LogPath"]
    with open(path, encoding="utf-8") as log_file:
        entries = [json.loads(line) for line in log_file]
    return [(e["log"].rstrip("\n"), e["time"]) for e in entries]


@pytest.mark.integration
def test_bad_policies_are_refused_at_create_with_dockers_messages(shared_daemon: Daemon) -> None:
    for flag, message in [
        ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
        ("always:3", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
        ("sometimes", "invalid restart policy: unknown policy 'sometimes'"),
    ]:
        result = shared_daemon.cli("create", "--restart", flag, "busybox", "true")
        assert result.code != 0 and message in result.err, result.err
    conflict = shared_daemon.cli("run", "--rm", "--restart", "always", "busybox", "true")
    assert conflict.code != 0 and "cannot specify both --restart and --rm" in conflict.err
    unparsable = shared_daemon.cli("create", "--restart", "on-failure:x", "busybox", "true")
    assert unparsable.code != 0 and "maximum retry count must be an integer" in unparsable.err


@pytest.mark.integration
def test_on_failure_retries_up_to_its_maximum_and_keeps_every_runs_lines_in_order(shared_daemon: Daemon) -> None:
    cid = shared_daemon.ok(
        "run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", COUNTING + 'echo "run $n end"; exit 3'
    ).strip()
    wait_until("the retries are used up", lambda: state_of(shared_daemon, cid)["RestartCount"] == 2)
    assert shared_daemon.ok("wait", cid).strip() == "3"
    wait_until("it stopped for good", lambda: state_of(shared_daemon, cid)["Status"] == "exited")
    state = state_of(shared_daemon, cid)
    assert (state["Running"], state["Restarting"], state["ExitCode"], state["RestartCount"]) == (False, False, 3, 2)
    assert shared_daemon.inspect(cid)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    runs = ["run 1 start", "run 1 end", "run 2 start", "run 2 end", "run 3 start", "run 3 end"]
    assert shared_daemon.ok("logs", cid).splitlines() == runs
    assert [line for line, _ in json_log_runs(shared_daemon, cid)] == runs


@pytest.mark.integration
def test_on_failure_does_not_restart_a_success_and_no_never_restarts(shared_daemon: Daemon) -> None:
    success = shared_daemon.ok("run", "-d", "--restart", "on-failure", "busybox", "true").strip()
    failure = shared_daemon.ok("run", "-d", "--restart", "no", "busybox", "false").strip()
    for cid in (success, failure):
        shared_daemon.ok("wait", cid)
        state = state_of(shared_daemon, cid)
        assert (state["Status"], state["RestartCount"]) == ("exited", 0)


@pytest.mark.integration
def test_always_backs_off_between_restarts_instead_of_looping(shared_daemon: Daemon) -> None:
    cid = shared_daemon.ok("run", "-d", "--restart", "always", "busybox", "sh", "-c", COUNTING + "exit 0").strip()
    # With a doubling back-off (0.1 0.2 0.4 0.8 1.6 s) the fifth restart waits long enough to be seen.
    wait_until("it restarted five times", lambda: state_of(shared_daemon, cid)["RestartCount"] >= 5)
    wait_until("it waits out a back-off", lambda: state_of(shared_daemon, cid)["Status"] == "restarting")
    state = state_of(shared_daemon, cid)
    # As in dockerd: a restarting container counts as running, with no process.
    assert (state["Running"], state["Restarting"], state["Pid"]) == (True, True, 0)
    listed = shared_daemon.ok("ps", "--no-trunc", "-q")
    assert cid in listed.split()  # `ps` lists it without -a, like a running one
    wait_until("ps shows it restarting", lambda: "Restarting (0) " in shared_daemon.ok("ps", "--filter", f"id={cid}"))
    shared_daemon.ok("stop", cid)
    # Each run starts only after the back-off: the gaps between runs' first lines grow by doubling.
    times = [_seconds(t) for line, t in json_log_runs(shared_daemon, cid)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) >= 4  # five runs at least (the fifth restart may have been pending at the stop)
    for index, gap in enumerate(gaps[:4]):  # 0.1 0.2 0.4 0.8 s (a 10% allowance for clock rounding)
        assert gap >= 0.09 * 2**index, f"run {index + 2} started {gap:.3f}s after run {index + 1}"


def _seconds(rfc3339: str) -> float:
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (fraction or "0"))


@pytest.mark.integration
def test_stop_and_kill_prevent_restarts_even_during_a_back_off(shared_daemon: Daemon) -> None:
    running = shared_daemon.ok("run", "-d", "--restart", "always", "busybox", "sleep", "600").strip()
    shared_daemon.ok("stop", "-t", "1", running)
    state = state_of(shared_daemon, running)
    assert (state["Status"], state["Restarting"], state["RestartCount"]) == ("exited", False, 0)

    killed = shared_daemon.ok("run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "600").strip()
    shared_daemon.ok("kill", killed)
    shared_daemon.ok("wait", killed)
    state = state_of(shared_daemon, killed)
    assert (state["Status"], state["RestartCount"]) == ("exited", 0)

    crashing = shared_daemon.ok("run", "-d", "--restart", "always", "busybox", "sh", "-c", "exit 1").strip()
    wait_until("it waits out a back-off", lambda: state_of(shared_daemon, crashing)["Status"] == "restarting")
    assert "stop the container before removing or force remove" in shared_daemon.cli("rm", crashing).err
    shared_daemon.ok("stop", crashing)
    state = state_of(shared_daemon, crashing)
    assert (state["Status"], state["Running"], state["Restarting"], state["ExitCode"]) == ("exited", False, False, 1)
    count = state["RestartCount"]
    assert count >= 1
    shared_daemon.ok("start", crashing)  # a start by the user: a fresh count
    wait_until("it restarts again", lambda: state_of(shared_daemon, crashing)["RestartCount"] >= 1)
    shared_daemon.ok("rm", "-f", crashing)


@pytest.mark.integration
def test_restart_command_starts_a_fresh_run_and_resets_the_count(shared_daemon: Daemon) -> None:
    script = COUNTING + '[ "$n" -lt 3 ] && exit 1; sleep 600'  # fails twice, then keeps running
    cid = shared_daemon.ok("run", "-d", "--restart", "on-failure", "busybox", "sh", "-c", script).strip()
    wait_until("it restarted twice", lambda: state_of(shared_daemon, cid)["RestartCount"] == 2)
    wait_until("it runs", lambda: state_of(shared_daemon, cid)["Status"] == "running")
    assert shared_daemon.ok("restart", "-t", "0", cid).strip() == cid
    state = state_of(shared_daemon, cid)
    assert (state["Status"], state["RestartCount"]) == ("running", 0)  # a start by the user: a fresh count
    assert shared_daemon.ok("logs", cid).splitlines() == ["run 1 start", "run 2 start", "run 3 start", "run 4 start"]
    shared_daemon.ok("rm", "-f", cid)
    sleeper = shared_daemon.ok("run", "-d", "busybox", "sleep", "600").strip()
    first_start = state_of(shared_daemon, sleeper)["StartedAt"]
    assert shared_daemon.ok("restart", "-t", "0", sleeper).strip() == sleeper
    state = state_of(shared_daemon, sleeper)
    assert state["Status"] == "running" and state["StartedAt"] != first_start
    shared_daemon.ok("rm", "-f", sleeper)


@pytest.mark.integration
@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_logs_follow_goes_on_across_restarts_and_ends_when_the_container_stops_for_good(
    shared_daemon: Daemon, driver: str
) -> None:
    script = COUNTING + 'sleep 0.3; echo "run $n end"; exit 7'
    cid = shared_daemon.ok(
        "run", "-d", "--log-driver", driver, "--restart", "on-failure:2", "busybox", "sh", "-c", script
    ).strip()
    follower = subprocess.run(
        [*LOGSHIP, "logs", "-f", cid], capture_output=True, env=shared_daemon.env(), timeout=60, check=True
    )
    runs = ["run 1 start", "run 1 end", "run 2 start", "run 2 end", "run 3 start", "run 3 end"]
    assert follower.stdout.decode().splitlines() == runs
    assert state_of(shared_daemon, cid)["Status"] == "exited"


@pytest.mark.integration
def test_a_follow_begun_during_a_back_off_sees_the_next_run_and_ends_at_stop(shared_daemon: Daemon) -> None:
    script = COUNTING + "exit 1"
    cid = shared_daemon.ok("run", "-d", "--restart", "always", "busybox", "sh", "-c", script).strip()
    wait_until("it restarted four times", lambda: state_of(shared_daemon, cid)["RestartCount"] >= 4)
    wait_until("it waits out a back-off", lambda: state_of(shared_daemon, cid)["Status"] == "restarting")
    runs_so_far = state_of(shared_daemon, cid)["RestartCount"]  # the pending restart starts run runs_so_far + 1
    follower = subprocess.Popen(
        [*LOGSHIP, "logs", "-f", cid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=shared_daemon.env()
    )
    try:
        assert follower.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != f"run {runs_so_far + 1} start":
            line = follower.stdout.readline()
            assert line, f"the follower ended after {lines}"
            lines.append(line.decode().rstrip("\n"))
        shared_daemon.ok("stop", cid)
        follower.wait(timeout=30)  # ends once the container is stopped for good
        lines += follower.stdout.read().decode().splitlines()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.integration
def test_policies_are_kept_across_a_daemon_restart(new_daemon: Daemon) -> None:
    daemon = new_daemon
    daemon.start()
    daemon.import_busybox()
    always_stopped = daemon.ok("run", "-d", "--restart", "always", "busybox", *SERVICE).strip()
    unless_stopped = daemon.ok("run", "-d", "--restart", "unless-stopped", "busybox", *SERVICE).strip()
    unless_running = daemon.ok("run", "-d", "--restart", "unless-stopped", "busybox", *SERVICE).strip()
    never = daemon.ok("run", "-d", "--restart", "no", "busybox", *SERVICE).strip()
    daemon.ok("stop", "-t", "0", always_stopped, unless_stopped)

    daemon.stop()  # a clean shutdown stops the running ones; that is not a user's stop
    daemon.start()

    def status(ref: str) -> str:
        return str(state_of(daemon, ref)["Status"])

    wait_until("always is back", lambda: status(always_stopped) == "running")
    wait_until("unless-stopped (not stopped) is back", lambda: status(unless_running) == "running")
    assert status(unless_stopped) == "exited"  # remembered across the daemon restart
    assert status(never) == "exited"
    assert state_of(daemon, unless_running)["RestartCount"] == 0  # the daemon's start is not a policy restart

    # The policy acts on the runs the new daemon started.
    daemon.ok("kill", "-s", "HUP", unless_running)  # a failure, not a stop: the policy restarts it
    wait_until("unless-stopped restarted it", lambda: state_of(daemon, unless_running)["RestartCount"] == 1)
    wait_until("it runs again", lambda: status(unless_running) == "running")


@pytest.mark.integration
def test_policies_survive_a_daemon_crash(new_daemon: Daemon) -> None:
    daemon = new_daemon
    daemon.start()
    daemon.import_busybox()
    script = COUNTING + "sleep 2; exit 5"
    looping = daemon.ok("run", "-d", "--restart", "on-failure:3", "busybox", "sh", "-c", script).strip()
    stopped = daemon.ok("run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "600").strip()
    daemon.ok("stop", "-t", "0", stopped)

    daemon.kill9()  # the container keeps running without the daemon
    daemon.start()

    wait_until("the retries are used up", lambda: state_of(daemon, looping)["RestartCount"] == 3, timeout=90)
    daemon.ok("wait", looping)
    wait_until("it stopped for good", lambda: state_of(daemon, looping)["Status"] == "exited")
    lines = daemon.ok("logs", looping).splitlines()
    assert lines == ["run 1 start", "run 2 start", "run 3 start", "run 4 start"]
    assert state_of(daemon, stopped)["Status"] == "exited"


@pytest.mark.integration
def test_a_pending_restart_is_resumed_by_the_next_daemon(new_daemon: Daemon) -> None:
    daemon = new_daemon
    daemon.start()
    daemon.import_busybox()
    cid = daemon.ok("run", "-d", "--restart", "always", "busybox", "sh", "-c", COUNTING + "exit 1").strip()
    wait_until("it restarted five times", lambda: state_of(daemon, cid)["RestartCount"] >= 5)
    wait_until("it waits out a back-off", lambda: state_of(daemon, cid)["Status"] == "restarting")
    count = state_of(daemon, cid)["RestartCount"]
    daemon.kill9()
    daemon.start()
    wait_until("it restarted again", lambda: state_of(daemon, cid)["RestartCount"] > count)
    daemon.ok("stop", cid)
    numbers = [int(line.split()[1]) for line in daemon.ok("logs", cid).splitlines()]
    assert numbers == list(range(1, len(numbers) + 1))


@needs_docker
@pytest.mark.integration
def test_the_docker_cli_sets_and_reads_restart_policies(shared_daemon: Daemon) -> None:
    cid = docker_ok(
        shared_daemon, "run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", COUNTING + "exit 2"
    ).strip()
    wait_until("the retries are used up", lambda: state_of(shared_daemon, cid)["RestartCount"] == 2)
    fields = docker_ok(
        shared_daemon,
        "inspect",
        "--format",
        "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.RestartCount}}",
        cid,
    ).split()
    assert fields == ["on-failure", "2", "2"]
    assert docker_ok(shared_daemon, "logs", "-f", cid).splitlines() == ["run 1 start", "run 2 start", "run 3 start"]
    bad = docker(shared_daemon, "create", "--restart", "always:3", "busybox", "true")
    assert bad.code != 0 and "maximum retry count can only be used with 'on-failure'" in bad.err
    conflict = docker(shared_daemon, "run", "--rm", "--restart", "always", "busybox", "true")
    assert conflict.code != 0 and "--restart and --rm" in conflict.err
    sleeper = docker_ok(shared_daemon, "run", "-d", "--restart", "always", "busybox", "sleep", "600").strip()
    assert docker_ok(shared_daemon, "restart", "-t", "0", sleeper).strip() == sleeper
    assert docker_ok(shared_daemon, "inspect", "--format", "{{.State.Status}}", sleeper).strip() == "running"
    docker_ok(shared_daemon, "rm", "-f", sleeper)
