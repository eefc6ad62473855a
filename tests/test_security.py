"""Who may talk to the daemon, what a container may do, and where secrets must never show up.

- The unix socket is 0660 with group `logship` (as docker.sock with group docker): another user is refused
  with a message saying what to do, a member of the group gets in.
- Through the daemon (what `logship run` gives, beyond the runtime tests in test_runtime_isolation.py): a
  container cannot mount, load a kernel module, rename the host or see its processes; it runs with
  Docker's default capabilities and no_new_privs.
- The daemon's AWS secret key and TLS private key never appear in the daemon log (even at debug level),
  `inspect`, `info` or error messages.
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon
from tests.localstack import CREDENTIALS, SECRET, LocalStack
from tests.tls import make_certificate

pytestmark = pytest.mark.integration

SOCKET_GROUP = "logship"
NOBODY = 65534
DOCKER_DEFAULT_CAPS = 0x00000000A80425FB  # CapEff of a `docker run` container


# ---- the socket ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def socket_group() -> Iterator[int]:
    """The `logship` group: the machine's if it exists, else created for these tests and removed after."""
    existing = {group.gr_name: group.gr_gid for group in grp.getgrall()}
    if SOCKET_GROUP in existing:
        yield existing[SOCKET_GROUP]
        return
    if shutil.which("groupadd") is None:
        pytest.skip("needs groupadd (passwd) to create the logship group")
    subprocess.run(["groupadd", "--system", SOCKET_GROUP], check=True)
    try:
        yield grp.getgrnam(SOCKET_GROUP).gr_gid
    finally:
        subprocess.run(["groupdel", SOCKET_GROUP], check=True)


@pytest.fixture(scope="module")
def reachable_daemon(socket_group: int) -> Iterator[Daemon]:
    """A daemon whose socket other users can reach (pytest's own temporary folders are 0700), so that
    only the socket's own mode and group decide who gets in."""
    root = Path(tempfile.mkdtemp(prefix="logship-security-"))
    root.chmod(0o711)
    daemon = Daemon(root)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_socket_is_0660_with_the_logship_group(reachable_daemon: Daemon, socket_group: int) -> None:
    status = reachable_daemon.socket.stat()
    assert stat.S_ISSOCK(status.st_mode)
    assert stat.S_IMODE(status.st_mode) == 0o660
    assert (status.st_uid, status.st_gid) == (0, socket_group)


def cli_as(uid: int, gid: int, groups: list[int], host: str, *args: str) -> tuple[int, str]:
    """Run the real CLI (in a forked child: this machine's Python is not readable by other users) as
    another user; its exit code and stderr."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, point stdout/stderr at the pipe, run the CLI, never return
        code = 70
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            os.dup2(write_end, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            # The real descriptors, not pytest's capture objects inherited from the parent.
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
            os.environ["LOGSHIP_NO_AUTOSTART"] = "1"
            from logship.cli import main

            sys.argv = ["logship", "-H", host, *args]
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException as err:  # report anything else, and never run pytest's code in the child
            os.write(2, repr(err).encode())
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as output:
        err = output.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


def test_another_user_is_refused_with_what_to_do(reachable_daemon: Daemon) -> None:
    code, err = cli_as(NOBODY, NOBODY, [], reachable_daemon.host, "version")
    assert code != 0
    assert "permission denied while trying to connect to the logship daemon socket" in err
    assert "add your user to the 'logship' group" in err
    assert "Traceback" not in err


def test_a_member_of_the_logship_group_gets_in(reachable_daemon: Daemon, socket_group: int) -> None:
    code, err = cli_as(NOBODY, NOBODY, [socket_group], reachable_daemon.host, "version")
    assert (code, err) == (0, "")


# ---- inside a container ----------------------------------------------------------------------------------

# Each probe prints "<name>=<exit status>"; a status of 0 would mean the container could do it.
PROBES = {
    "mount": "mount -t tmpfs x /mnt",
    # Junk instead of a module: without CAP_SYS_MODULE the kernel refuses with EPERM before reading it
    # (with it, the error would be "invalid module format": see the control test below).
    "insmod": "printf junk > /tmp/junk.ko; insmod /tmp/junk.ko",
    "hostname": "hostname evil",
}
SCRIPT = "; ".join(
    f"{command} 2>/tmp/{name}.err; echo {name}=$?; cat /tmp/{name}.err" for name, command in PROBES.items()
)
SCRIPT += "; echo hostname-now=$(hostname); echo pids=$(ls -d /proc/[0-9]* | wc -l); ps -o pid,comm"
SCRIPT += "; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status"


@pytest.fixture(scope="module")
def inside(shared_daemon: Daemon) -> tuple[str, str]:
    """What the probes printed in a default container, and the host's hostname before it ran."""
    host_name = socket.gethostname()
    output = shared_daemon.ok("run", "--rm", "--hostname", "box", "busybox", "sh", "-c", SCRIPT)
    return output, host_name


def probed(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line and " " not in line.split("=")[0])


def test_a_container_cannot_mount(inside: tuple[str, str]) -> None:
    output, _ = inside
    assert probed(output)["mount"] != "0"
    assert "Operation not permitted" in output or "Permission denied" in output


def test_a_container_cannot_load_a_kernel_module(inside: tuple[str, str]) -> None:
    output, _ = inside
    assert probed(output)["insmod"] != "0"
    assert "Operation not permitted" in output


def test_the_module_probe_can_tell_a_refusal_from_a_bad_module(shared_daemon: Daemon) -> None:
    """The control for the test above: with CAP_SYS_MODULE the same junk gets past the permission check."""
    script = f"{PROBES['insmod']}; echo insmod=$?"
    result = shared_daemon.cli("run", "--rm", "--cap-add", "SYS_MODULE", "busybox", "sh", "-c", script)
    assert "Operation not permitted" not in result.out + result.err


def test_a_container_cannot_rename_itself_or_the_host(inside: tuple[str, str]) -> None:
    output, host_name_before = inside
    assert probed(output)["hostname"] != "0"
    assert probed(output)["hostname-now"] == "box"
    assert socket.gethostname() == host_name_before != "evil"


def test_a_container_sees_only_its_own_processes(inside: tuple[str, str]) -> None:
    output, _ = inside
    # The shell, `ls` and `wc` at most (busybox may run some in-process), while the host has hundreds.
    assert int(probed(output)["pids"]) <= 4 < len([p for p in os.listdir("/proc") if p.isdigit()])
    commands = [line.split()[1] for line in output.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert commands[0] == "sh" and set(commands) <= {"sh", "ps", "grep", "cat", "ls", "wc"}


def test_a_container_has_dockers_default_capabilities_and_no_new_privs(inside: tuple[str, str]) -> None:
    fields = dict(line.split(":\t") for line in inside[0].splitlines() if ":\t" in line)
    assert int(fields["CapEff"], 16) == int(fields["CapBnd"], 16) == DOCKER_DEFAULT_CAPS
    assert fields["NoNewPrivs"] == "1"


# ---- secrets ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secret_holding_daemon(localstack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon at debug level holding AWS credentials (environment) and a TLS key (a tcp:// host)."""
    root = tmp_path_factory.mktemp("secrets")
    cert, key, ca = make_certificate(root / "tls")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tls_args = ["--tlsverify", "--tlscacert", ca, "--tlscert", cert, "--tlskey", key, "-H", f"tcp://127.0.0.1:{port}"]
    with Daemon(root, extra_args=["--log-level", "debug", *tls_args], extra_env=dict(CREDENTIALS)).started() as daemon:
        yield daemon


def key_material(daemon: Daemon) -> list[str]:
    """The secrets: the AWS keys (the id too: it names the account), and the lines of the TLS private key."""
    key_file = Path(daemon.extra_args[daemon.extra_args.index("--tlskey") + 1])
    key_lines = [line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")]
    return [SECRET, CREDENTIALS["AWS_ACCESS_KEY_ID"], *key_lines]


def test_no_secret_shows_in_logs_inspect_info_or_errors(secret_holding_daemon: Daemon, localstack: LocalStack) -> None:
    daemon = secret_holding_daemon
    log_opts = ["awslogs-group=security", "awslogs-create-group=true", f"awslogs-endpoint={localstack.endpoint}"]
    args = [item for opt in log_opts for item in ("--log-opt", opt)]
    shown = [daemon.ok("run", "--name", "shipped", "--log-driver", "awslogs", *args, "busybox", "echo", "hello")]
    # A failing backend: the endpoint refuses connections, so errors are logged and counted.
    refused = ["--log-opt", "awslogs-endpoint=http://127.0.0.1:9", "--log-opt", "awslogs-group=g"]
    shown.append(daemon.ok("run", "-d", "--name", "failing", "--log-driver", "awslogs", *refused, "busybox", "true"))
    for arguments in (
        ["run", "--log-driver", "awslogs", "busybox", "true"],  # no group: an error message
        ["run", "--log-driver", "awslogs", "--log-opt", "awslogs-group=g", "--log-opt", "nope=1", "busybox", "true"],
    ):
        result = daemon.cli(*arguments)
        assert result.code != 0
        shown.append(result.out + result.err)
    daemon.ok("wait", "failing")
    shown += [daemon.ok("inspect", "shipped", "failing"), daemon.ok("info"), daemon.ok("logs", "shipped")]
    shown.append(daemon.daemon_log())
    everything = "\n".join(shown)
    assert "hello" in everything and "debug" in daemon.daemon_log().lower()  # the checks looked at real output
    for secret in key_material(daemon):
        assert secret not in everything
