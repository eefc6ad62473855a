"""`exec` and `top`: a command run in a running container enters its namespaces, root, cgroup, user and
capabilities, as with dockerd; the real docker CLI, docker-py and logship's CLI drive it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.harness import DOCKER, LOGSHIP, Daemon, docker, docker_env, docker_ok, needs_docker, terminal_session

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def box(shared_daemon: Daemon) -> Iterator[str]:
    """A running container with a tell-tale file, a cap dropped and a memory limit (it has a cgroup)."""
    container = shared_daemon.ok(
        "run", "-d", "--name", "ex_box", "--cap-drop", "NET_RAW", "--memory", "64m", "-e", "FROM_RUN=1",
        "-w", "/home", "busybox", "sh", "-c", "echo inside > /marker; sleep 300",
    ).strip()  # fmt: skip
    yield container
    shared_daemon.ok("rm", "-f", "ex_box")


def status_field(text: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(\S+)", text, re.MULTILINE)
    assert match, text
    return match.group(1)


@needs_docker
def test_exec_runs_inside_the_container_with_its_environment_root_and_exit_code(
    shared_daemon: Daemon, box: str
) -> None:
    result = docker(
        shared_daemon, "exec", "-e", "EXTRA=2", "ex_box", "sh", "-c",
        "cat /marker; echo $FROM_RUN$EXTRA; pwd; hostname; echo oops >&2; exit 5",
    )  # fmt: skip
    assert result.code == 5
    assert result.out.split() == ["inside", "12", "/home", box[:12]]  # the container's root, env, workdir, name
    assert result.err == "oops\n"
    assert docker_ok(shared_daemon, "exec", "-w", "/tmp", "ex_box", "pwd") == "/tmp\n"
    assert docker_ok(shared_daemon, "exec", "-i", "ex_box", "tr", "a-z", "A-Z", input=b"piped\n") == "PIPED\n"


@needs_docker
def test_exec_has_the_containers_capabilities_cgroup_and_pid_namespace(shared_daemon: Daemon, box: str) -> None:
    own = docker_ok(shared_daemon, "exec", "ex_box", "cat", "/proc/1/status")
    execd = docker_ok(shared_daemon, "exec", "ex_box", "cat", "/proc/self/status")
    for field in ("CapBnd", "CapEff", "NoNewPrivs"):
        assert status_field(execd, field) == status_field(own, field), field
    assert not int(status_field(execd, "CapBnd"), 16) & (1 << 13)  # NET_RAW stays dropped
    assert f"/logship/{box}" in docker_ok(shared_daemon, "exec", "ex_box", "cat", "/proc/self/cgroup")
    processes = docker_ok(shared_daemon, "exec", "ex_box", "ps", "-o", "pid,comm").split()
    assert processes[:4] == ["PID", "COMMAND", "1", "sleep"]  # pid 1 is the container's: same pid namespace
    nobody = docker_ok(
        shared_daemon, "exec", "-u", "nobody", "ex_box", "sh", "-c", "id -u; grep CapEff /proc/self/status"
    )
    assert nobody.split()[0] == "65534" and int(nobody.split()[2], 16) == 0  # no capabilities for a user
    assert docker_ok(shared_daemon, "exec", "-u", "0:65534", "ex_box", "id", "-g") == "65534\n"


@needs_docker
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nosuchcommand"], 127, 'exec: "nosuchcommand": executable file not found in $PATH'),
        (["/etc"], 126, 'exec: "/etc": permission denied'),
        (["-w", "/nowhere", "ex_box", "pwd"], 126, 'chdir to cwd ("/nowhere") set in config.json failed'),
        (["-u", "ghost", "ex_box", "id"], 126, "unable to find user ghost: no matching entries in passwd file"),
    ],
)
def test_exec_failures_have_dockers_exit_codes(
    shared_daemon: Daemon, box: str, args: list[str], code: int, message: str
) -> None:
    argv = args if args[0].startswith("-") else ["ex_box", *args]
    result = docker(shared_daemon, "exec", *argv)
    assert result.code == code and message in result.out, (result.code, result.out, result.err)


@needs_docker
def test_exec_in_a_stopped_container_is_refused(shared_daemon: Daemon) -> None:
    shared_daemon.ok("run", "--name", "ex_done", "busybox", "true")
    result = docker(shared_daemon, "exec", "ex_done", "true")
    assert result.code == 1 and "is not running" in result.err
    shared_daemon.ok("rm", "ex_done")


@needs_docker
def test_exec_it_gives_a_real_terminal_and_a_detached_exec_shows_in_top(shared_daemon: Daemon, box: str) -> None:
    typed = b"[ -t 0 ] && echo is-a-tty; exit 7\r"
    code, _ = terminal_session([DOCKER, "exec", "-it", "ex_box", "sh"], docker_env(shared_daemon), typed, b"is-a-tty")
    assert code == 7
    ours = [*LOGSHIP, "exec", "-it", "ex_box", "sh"]
    code, _ = terminal_session(ours, shared_daemon.env(), typed.replace(b"7", b"8"), b"is-a-tty")
    assert code == 8
    docker_ok(shared_daemon, "exec", "-d", "ex_box", "sleep", "123")
    top = docker_ok(shared_daemon, "top", "ex_box")
    titles, *rows = top.splitlines()
    assert titles.split()[:3] == ["UID", "PID", "PPID"] and any(row.endswith("sleep 123") for row in rows)
    custom = docker_ok(shared_daemon, "top", "ex_box", "-o", "pid,args").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and len(custom) == 3  # sleep 300 and sleep 123, nothing else
    assert "sleep 123" in shared_daemon.ok("top", "ex_box")


@needs_docker
def test_top_of_a_stopped_container_is_refused(shared_daemon: Daemon) -> None:
    shared_daemon.ok("create", "--name", "ex_idle", "busybox", "true")
    result = docker(shared_daemon, "top", "ex_idle")
    assert result.code == 1 and "is not running" in result.err
    shared_daemon.ok("rm", "ex_idle")


def test_docker_py_exec_run_and_exec_inspect(shared_daemon: Daemon, box: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        container = client.containers.get("ex_box")
        assert container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"]) == (3, b"out\nerr\n")
        code, (out, err) = container.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
        assert (code, out, err) == (0, b"out\n", b"err\n")
        code, output = container.exec_run("tty", tty=True)
        assert code == 0 and output.startswith(b"/dev/pts/")
        created = client.api.exec_create("ex_box", ["sh", "-c", "exit 9"])
        assert client.api.exec_inspect(created["Id"])["ExitCode"] is None
        client.api.exec_start(created["Id"])
        inspected = client.api.exec_inspect(created["Id"])
        assert inspected["ExitCode"] == 9 and not inspected["Running"] and inspected["ContainerID"] == box
        assert inspected["ProcessConfig"] == {
            "tty": False,
            "entrypoint": "sh",
            "arguments": ["-c", "exit 9"],
            "privileged": False,
        }
    finally:
        client.close()


def test_an_exec_ends_with_its_container(shared_daemon: Daemon) -> None:
    docker_py = pytest.importorskip("docker")
    shared_daemon.ok("run", "-d", "--name", "ex_short", "busybox", "sleep", "300")
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        created = client.api.exec_create("ex_short", ["sleep", "300"])
        client.api.exec_start(created["Id"], detach=True)
        assert client.api.exec_inspect(created["Id"])["Running"]
        assert created["Id"] in client.api.inspect_container("ex_short")["ExecIDs"]
        shared_daemon.ok("kill", "ex_short")
        shared_daemon.ok("wait", "ex_short")
        deadline = time.monotonic() + 10
        while client.api.exec_inspect(created["Id"])["Running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.api.exec_inspect(created["Id"])["ExitCode"] == 137  # killed with the pid namespace
    finally:
        client.close()
        shared_daemon.ok("rm", "-f", "ex_short")
