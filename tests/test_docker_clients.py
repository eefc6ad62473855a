"""The real docker CLI (28.x) and docker-py drive logship as they drive dockerd: people keep their tools."""

from __future__ import annotations

import json
import os
import re
import tarfile
import time
from pathlib import Path

import pytest

from tests.harness import DOCKER, Daemon, docker, needs_docker, terminal_session
from tests.harness import docker_ok as ok

pytestmark = pytest.mark.integration


@needs_docker
def test_version_negotiates_the_api_and_info_shows_the_logging_setup(shared_daemon: Daemon) -> None:
    version = json.loads(ok(shared_daemon, "version", "--format", "{{json .}}"))
    assert version["Server"]["ApiVersion"] == "1.47" and version["Server"]["MinAPIVersion"] == "1.24"
    assert version["Client"]["ApiVersion"] == "1.47"  # the 28.x CLI negotiated down to logship's
    info = json.loads(ok(shared_daemon, "info", "--format", "{{json .}}"))
    assert info["LoggingDriver"] == "json-file" and "json-file" in info["Plugins"]["Log"]


@needs_docker
def test_run_attached_detached_and_removed(shared_daemon: Daemon) -> None:
    attached = docker(shared_daemon, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (attached.code, attached.stdout, attached.stderr) == (4, b"out\n", b"err\n")
    piped = docker(shared_daemon, "run", "-i", "--rm", "busybox", "tr", "a-z", "A-Z", input=b"shout\n")
    assert piped.stdout == b"SHOUT\n"
    container_id = ok(
        shared_daemon,
        "run",
        "-d",
        "--name",
        "dk_detached",
        "-e",
        "K=v",
        "--label",
        "team=x",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "echo $K",
    ).strip()
    assert ok(shared_daemon, "wait", "dk_detached").strip() == "0"
    fields = ok(
        shared_daemon,
        "inspect",
        "--format",
        "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.HostConfig.LogConfig.Type}} "
        "{{json .HostConfig.LogConfig.Config}} {{.Config.Labels.team}} {{.LogPath}}",
        container_id,
    ).split()
    assert fields[:6] == ["/dk_detached", "exited", "0", "json-file", '{"max-file":"2","max-size":"1m"}', "x"]
    assert fields[6].endswith(f"{container_id}-json.log") and Path(fields[6]).exists()
    assert ok(shared_daemon, "logs", "dk_detached") == "v\n"
    assert ok(shared_daemon, "rm", "dk_detached").strip() == "dk_detached"
    missing = docker(shared_daemon, "run", "--rm", "busybox", "nosuchcommand")
    assert missing.code == 127 and "executable file not found" in missing.err


@needs_docker
def test_run_flags_reach_the_runtime(shared_daemon: Daemon) -> None:
    out = ok(
        shared_daemon,
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "--cap-drop",
        "NET_RAW",
        "--cap-add",
        "SYS_TIME",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "grep CapEff /proc/self/status; cat /proc/net/dev | wc -l",
    )
    cap_eff = int(out.split()[1], 16)
    assert not cap_eff & (1 << 13) and cap_eff & (1 << 25)
    assert int(out.split()[2]) > 3  # the host's interfaces
    isolated = ok(shared_daemon, "run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev")
    assert len(isolated.splitlines()) == 3  # two header lines and lo


@needs_docker
def test_log_driver_and_log_opt_flags(shared_daemon: Daemon) -> None:
    bad = docker(shared_daemon, "run", "--log-opt", "colour=red", "busybox", "true")
    assert bad.code == 125 and "unknown log opt 'colour' for json-file log driver" in bad.err
    ok(shared_daemon, "run", "--name", "dk_local", "--log-driver", "local", "busybox", "echo", "in local")
    assert ok(shared_daemon, "logs", "dk_local") == "in local\n"
    assert ok(shared_daemon, "inspect", "--format", "{{.HostConfig.LogConfig.Type}}", "dk_local").strip() == "local"
    ok(shared_daemon, "rm", "dk_local")


@needs_docker
def test_ps_logs_stop_kill_wait_rm(shared_daemon: Daemon) -> None:
    ok(
        shared_daemon,
        "run",
        "-d",
        "--name",
        "dk_life",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 0.3; echo three; sleep 60",
    )
    time.sleep(1)
    assert "dk_life" in ok(shared_daemon, "ps")
    logs = docker(shared_daemon, "logs", "-t", "--details", "-n", "2", "--since", "1h", "dk_life")
    lines = (logs.out + logs.err).splitlines()
    assert len(lines) == 2 and all(re.match(r"\d{4}-\d\d-\d\dT\S+Z  \w+$", line) for line in lines)
    assert docker(shared_daemon, "logs", "--until", "1h", "dk_life").out == ""
    ok(shared_daemon, "stop", "-t", "1", "dk_life")
    assert ok(shared_daemon, "wait", "dk_life").strip() == "137"
    assert "Exited (137)" in ok(shared_daemon, "ps", "-a", "--filter", "name=dk_life")
    ok(shared_daemon, "start", "dk_life")
    ok(shared_daemon, "kill", "-s", "KILL", "dk_life")
    ok(shared_daemon, "run", "-d", "--name", "dk_forced", "busybox", "sleep", "60")
    refused = docker(shared_daemon, "rm", "dk_forced")
    assert refused.code != 0 and "stop the container before removing or force remove" in refused.err
    ok(shared_daemon, "rm", "-f", "dk_forced", "dk_life")
    assert "dk_" not in ok(shared_daemon, "ps", "-a")


@needs_docker
def test_run_it_gives_a_real_terminal(shared_daemon: Daemon) -> None:
    env = {**os.environ, "DOCKER_HOST": shared_daemon.host, "DOCKER_CONFIG": str(shared_daemon.root / "dcfg")}
    command = [DOCKER, "run", "-it", "--rm", "busybox", "sh"]
    code, _ = terminal_session(command, env, b"[ -t 0 ] && echo is-a-tty; exit 6\r", b"is-a-tty")
    assert code == 6


@needs_docker
def test_images_import_and_rmi(shared_daemon: Daemon, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(shared_daemon.root / "rootfs-busybox", arcname=".")
    image_id = ok(
        shared_daemon, "import", "--change", 'CMD ["echo", "from the config"]', str(tarball), "dkimported:1"
    ).strip()
    assert image_id.startswith("sha256:")
    assert "dkimported" in ok(shared_daemon, "images")
    assert ok(shared_daemon, "run", "--rm", "dkimported:1") == "from the config\n"
    removed = ok(shared_daemon, "rmi", "dkimported:1")
    assert "Untagged: dkimported:1" in removed and f"Deleted: {image_id}" in removed


@needs_docker
def test_what_logship_lacks_is_a_clear_docker_style_error(shared_daemon: Daemon) -> None:
    for args, flag in (
        (["run", "--device", "/dev/null:/dev/x", "busybox", "true"], "--device"),
        (["run", "--dns", "10.0.0.1", "busybox", "true"], "--dns"),
    ):
        result = docker(shared_daemon, *args)
        assert result.code == 125
        assert f"Error response from daemon: {flag}" in result.err and "is not supported by logship" in result.err
    networks = docker(shared_daemon, "network", "create", "--driver", "overlay", "mine")
    assert networks.code != 0 and 'network driver "overlay" is not supported by logship' in networks.err
    assert "Traceback" not in networks.err
    assert docker(shared_daemon, "network", "ls", "--format", "{{.Name}}").out.split() == ["bridge", "host", "none"]


def test_docker_py_runs_follows_waits_stops_and_removes(docker_py: object, shared_daemon: Daemon) -> None:
    from docker.types import LogConfig

    api = docker_py
    info = api.info()  # type: ignore[attr-defined]
    assert info["LoggingDriver"] == "json-file"
    container = api.containers.run(  # type: ignore[attr-defined]
        "busybox",
        ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"],
        detach=True,
        log_config=LogConfig(type="json-file", config={"max-size": "1m"}),
    )
    chunks = list(container.logs(stream=True, follow=True, timestamps=True))
    text = b"".join(chunks).decode()
    assert re.findall(r"Z (line\d)", text) == ["line1", "line2", "line3"]
    assert container.wait() == {"Error": None, "StatusCode": 0}
    container.reload()
    assert container.attrs["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    container.remove()
    sleeper = api.containers.run("busybox", "sleep 60", detach=True)  # type: ignore[attr-defined]
    sleeper.stop(timeout=1)
    assert sleeper.wait()["StatusCode"] == 137
    sleeper.remove()
    assert api.containers.run("busybox", "echo direct", remove=True) == b"direct\n"  # type: ignore[attr-defined]


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_docker_py_streams_logs_a_message_per_item_as_from_dockerd(docker_py: object, driver: str) -> None:
    # Scripts do `for line in container.logs(stream=True)`: each item must be one line, as dockerd sends
    # a frame per message; a 20,000-byte line comes as dockerd's two messages (16 KiB, then the rest).
    from docker.types import LogConfig

    container = docker_py.containers.run(  # type: ignore[attr-defined]
        "busybox",
        ["sh", "-c", "seq 1 3000; head -c 20000 /dev/zero | tr '\\0' x; echo; echo after"],
        detach=True,
        log_config=LogConfig(type=driver, config={}),
    )
    try:
        assert container.wait()["StatusCode"] == 0
        items = list(container.logs(stream=True))
        assert items[:3000] == [b"%d\n" % number for number in range(1, 3001)]
        assert items[3000:] == [b"x" * 16384, b"x" * 3616 + b"\n", b"after\n"]
        assert b"".join(items) == container.logs()
    finally:
        container.remove(force=True)
