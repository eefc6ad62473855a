"""The daemon: configuration, its own log kept apart, its socket, restarts, and the CLI's autostart."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import LOGSHIP, Daemon

pytestmark = pytest.mark.integration


def start_failure(daemon: Daemon, config_text: str) -> str:
    daemon.root.mkdir(parents=True, exist_ok=True)
    daemon.config_file.write_text(config_text)
    result = subprocess.run(
        [
            *LOGSHIP,
            "daemon",
            "-H",
            daemon.host,
            "--data-root",
            str(daemon.data_root),
            "--config-file",
            str(daemon.config_file),
        ],
        capture_output=True,
        timeout=30,
        env=daemon.env(),
    )
    assert result.returncode == 1
    return result.stderr.decode()


def test_malformed_daemon_json_stops_the_daemon_naming_line_and_column(new_daemon: Daemon) -> None:
    err = start_failure(new_daemon, '{\n  "log-driver": "json-file",\n  "log-opts": {"max-size": 10m}\n}')
    assert "line 3 column" in err and str(new_daemon.config_file) in err


def test_unknown_keys_and_bad_opts_stop_the_daemon(new_daemon: Daemon) -> None:
    assert "don't match any configuration option: log-drivers" in start_failure(new_daemon, '{"log-drivers": "x"}')
    assert "unknown log opt 'colour' for json-file log driver" in start_failure(
        new_daemon, '{"log-opts": {"colour": "red"}}'
    )


def test_daemon_log_opts_apply_only_to_containers_using_the_default_driver(new_daemon: Daemon) -> None:
    new_daemon.config = {"log-driver": "json-file", "log-opts": {"max-size": "1m", "max-file": "2"}}
    new_daemon.start()
    new_daemon.import_busybox()
    new_daemon.ok("create", "--name", "inherits", "--log-opt", "max-file=5", "busybox", "true")
    new_daemon.ok("create", "--name", "other", "--log-driver", "none", "busybox", "true")
    assert new_daemon.inspect("inherits")["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "1m", "max-file": "5"},
    }
    assert new_daemon.inspect("other")["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}


def test_the_daemon_log_is_its_own_and_never_holds_container_output(new_daemon: Daemon) -> None:
    new_daemon.config = {"log-level": "debug"}
    new_daemon.start()
    new_daemon.import_busybox()
    new_daemon.ok("run", "--name", "chatty", "busybox", "sh", "-c", "echo SECRET-CONTAINER-LINE; echo ERR-LINE >&2")
    log = new_daemon.daemon_log()
    assert 'level=info msg="logship' in log and "daemon ready" in log
    assert "started container" in log
    assert "SECRET-CONTAINER-LINE" not in log and "ERR-LINE" not in log
    assert "SECRET-CONTAINER-LINE" in new_daemon.ok("logs", "chatty")


def test_the_socket_is_0660_and_other_users_are_told_what_to_do(new_daemon: Daemon) -> None:
    new_daemon.start()
    mode = stat.S_IMODE(os.stat(new_daemon.socket).st_mode)
    assert mode == 0o660
    os.chmod(new_daemon.root, 0o755)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *LOGSHIP, "ps"],
        capture_output=True,
        env={**new_daemon.env(), "HOME": "/tmp"},
        timeout=30,
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "permission denied" in err and "'logship' group" in err and "sudo" in err
    assert "Traceback" not in err


def test_a_second_daemon_on_the_same_data_root_is_refused(new_daemon: Daemon) -> None:
    new_daemon.start()
    other = Daemon(new_daemon.root / "second")
    other.root.mkdir()
    result = subprocess.run(
        [*LOGSHIP, "daemon", "-H", other.host, "--data-root", str(new_daemon.data_root)],
        capture_output=True,
        timeout=30,
        env=new_daemon.env(),
    )
    assert result.returncode == 1
    assert "already using data root" in result.stderr.decode()


def test_containers_and_their_logs_survive_a_daemon_restart(new_daemon: Daemon) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    assert new_daemon.cli("run", "--name", "before", "busybox", "sh", "-c", "echo kept; exit 4").code == 4
    new_daemon.stop()
    new_daemon.start()
    info = new_daemon.inspect("before")
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 4
    assert new_daemon.ok("logs", "before") == "kept\n"
    assert "busybox" in new_daemon.ok("images")


def test_a_running_container_outlives_a_daemon_crash_and_is_reattached(new_daemon: Daemon) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    new_daemon.ok(
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 30 ]; do echo beat$i; i=$((i+1)); sleep 0.1; done; exit 9",
    )
    time.sleep(0.5)
    new_daemon.kill9()
    time.sleep(0.5)
    new_daemon.start()
    assert new_daemon.ok("wait", "survivor").strip() == "9"
    beats = new_daemon.ok("logs", "survivor").split()
    assert beats == [f"beat{i}" for i in range(30)]


def test_the_cli_starts_a_daemon_when_none_answers(tmp_path: Path) -> None:
    """Run in private mount and pid namespaces so the default paths are empty and the started daemon
    (and anything it starts) dies with the namespace."""
    script = f"""
        set -e
        mount -t tmpfs tmpfs /run
        mount -t tmpfs tmpfs /var/lib
        {sys.executable} -m logship ps
        echo ---
        {sys.executable} -m logship ps
    """
    result = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script],
        capture_output=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP")},
        cwd=tmp_path,
    )
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    assert err.count("started one in the background") == 1
    first, second = out.split("---")
    assert "CONTAINER ID" in first and "CONTAINER ID" in second


def test_autostart_can_be_turned_off(tmp_path: Path) -> None:
    result = subprocess.run(
        [*LOGSHIP, "-H", f"unix://{tmp_path}/nobody.sock", "ps"],
        capture_output=True,
        timeout=30,
        env={**os.environ, "LOGSHIP_NO_AUTOSTART": "1"},
    )
    assert result.returncode == 1
    assert "Cannot connect to the logship daemon" in result.stderr.decode()
    assert "LOGSHIP_NO_AUTOSTART" in result.stderr.decode()


def test_no_process_is_left_after_the_daemon_stops(new_daemon: Daemon) -> None:
    new_daemon.start()
    new_daemon.import_busybox()
    new_daemon.ok("run", "-d", "--name", "long", "busybox", "sleep", "300")
    assert new_daemon.process is not None
    new_daemon.process.terminate()  # without live-restore, stopping the daemon stops its containers
    new_daemon.process.wait(timeout=60)
    leftovers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(new_daemon.data_root)):
                    leftovers.append(entry.name)
            except OSError:
                pass
    assert leftovers == []
