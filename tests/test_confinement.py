"""Who a container runs as and what it may do: --user and --group-add from the image's own files,
--ulimit, --shm-size, --init, --privileged, no-new-privileges, and Docker's default seccomp profile
(with seccomp=unconfined and a user's profile), all in real containers.

System calls busybox has no applet for are made by tests/helpers/sysprobe.c, built static here with
gcc and put into an image of its own. Its arguments make the kernel itself accept the call or fail it
with something other than EPERM where it can, so an EPERM is the filter's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon
from tests.rootfs import build_busybox_rootfs
from tests.test_docker_clients import docker, needs_docker

pytestmark = pytest.mark.integration

PROBE_SOURCE = Path(__file__).parent / "helpers" / "sysprobe.c"


def host_bounding_set() -> int:
    """Every capability a container can have here: --privileged gets all of the daemon's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise AssertionError("no CapBnd in /proc/self/status")


@pytest.fixture(scope="module")
def probe_image(shared_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc to build tests/helpers/sysprobe.c (installed by .ci/setup)")
    root = build_busybox_rootfs(tmp_path_factory.mktemp("probe") / "rootfs")
    built = subprocess.run(
        [gcc, "-static", "-O2", "-o", str(root / "bin" / "sysprobe"), str(PROBE_SOURCE)], capture_output=True
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build a static sysprobe (libc6-dev's libc.a?): {built.stderr.decode()[-300:]}")
    shared_daemon.ok("import", str(root), "probe")
    yield "probe"


def probe(daemon: Daemon, *flags: str, calls: tuple[str, ...]) -> dict[str, str]:
    script = "; ".join(f"sysprobe {call}" for call in calls)
    out = daemon.ok("run", "--rm", *flags, "probe", "sh", "-c", script)
    return dict(line.split(": ") for line in out.splitlines())


def status_field(daemon: Daemon, name: str, *flags: str) -> str:
    return daemon.ok("run", "--rm", *flags, "busybox", "grep", f"^{name}:", "/proc/self/status").split()[1]


def test_the_default_profile_refuses_what_dockers_refuses(shared_daemon: Daemon, probe_image: str) -> None:
    assert status_field(shared_daemon, "Seccomp") == "2"
    calls = ("keyctl", "add_key", "bpf", "perf_event_open", "reboot", "unshare_user", "clone_newns")
    refused = probe(shared_daemon, calls=calls)
    assert refused == dict.fromkeys(calls, "EPERM")
    unshare = shared_daemon.cli("run", "--rm", "busybox", "unshare", "-U", "true")
    assert unshare.code != 0 and "Operation not permitted" in unshare.err
    mount = shared_daemon.cli("run", "--rm", "busybox", "mount", "-t", "tmpfs", "none", "/mnt")
    assert mount.code != 0 and "permission denied" in mount.err


def test_unconfined_lets_the_calls_through_to_the_kernel(shared_daemon: Daemon, probe_image: str) -> None:
    unconfined = ("--security-opt", "seccomp=unconfined")
    assert status_field(shared_daemon, "Seccomp", *unconfined) == "0"
    passed = probe(shared_daemon, *unconfined, calls=("keyctl", "add_key", "perf_event_open", "unshare_user"))
    assert passed == {"keyctl": "ok", "add_key": "ok", "perf_event_open": "EFAULT", "unshare_user": "ok"}
    assert (
        shared_daemon.ok("run", "--rm", *unconfined, "busybox", "unshare", "-U", "echo", "in-userns") == "in-userns\n"
    )


def test_the_profile_follows_added_capabilities_as_dockers(shared_daemon: Daemon, probe_image: str) -> None:
    """A rule with `includes.caps` applies once the container has the capability."""
    assert probe(shared_daemon, "--cap-add", "SYS_BOOT", calls=("reboot",)) == {"reboot": "EINVAL"}
    assert probe(shared_daemon, "--cap-add", "BPF", calls=("bpf",)) == {"bpf": "EINVAL"}
    admin = shared_daemon.ok(
        "run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "mount -t tmpfs none /tmp && echo mounted"
    )
    assert admin == "mounted\n"


def test_a_users_profile_file_is_read_as_docker_reads_it(shared_daemon: Daemon, tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps(profile, indent=2))
    out = shared_daemon.cli("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "mkdir", "/made")
    assert out.code == 1 and "Permission denied" in out.err
    (tmp_path / "bad.json").write_text('{"defaultAction": "ALLOW"}')
    bad = shared_daemon.cli("run", "--rm", "--security-opt", f"seccomp={tmp_path}/bad.json", "busybox", "true")
    assert bad.code == 125 and "'ALLOW' is not a seccomp action" in bad.err
    missing = shared_daemon.cli("run", "--rm", "--security-opt", f"seccomp={tmp_path}/none.json", "busybox", "true")
    assert missing.code == 2 and "opening seccomp profile" in missing.err
    unknown = shared_daemon.cli("run", "--rm", "--security-opt", "apparmor=docker-default", "busybox", "true")
    assert unknown.code == 125 and "logship does not use AppArmor" in unknown.err


def test_no_new_privileges_is_on_unless_turned_off(shared_daemon: Daemon) -> None:
    assert status_field(shared_daemon, "NoNewPrivs") == "1"
    assert status_field(shared_daemon, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"
    assert status_field(shared_daemon, "NoNewPrivs", "--security-opt", "no-new-privileges=false") == "0"
    assert status_field(shared_daemon, "Seccomp", "--security-opt", "no-new-privileges=false") == "2"


def test_a_user_from_the_image_cannot_read_roots_files_and_id_prints_what_docker_prints(
    shared_daemon: Daemon, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "key").write_text("root-only\n")
    (secrets_dir / "key").chmod(0o600)
    bind = ("-v", f"{secrets_dir}:/secrets")
    denied = shared_daemon.cli("run", "--rm", *bind, "-u", "1000", "busybox", "cat", "/secrets/key")
    assert denied.code == 1 and "Permission denied" in denied.err
    assert shared_daemon.ok("run", "--rm", *bind, "busybox", "cat", "/secrets/key") == "root-only\n"
    assert shared_daemon.ok("run", "--rm", "-u", "1000", "busybox", "id") == "uid=1000 gid=0(root) groups=0(root)\n"
    assert shared_daemon.ok("run", "--rm", "-u", "1000:1000", "busybox", "id") == "uid=1000 gid=1000 groups=1000\n"
    nobody = shared_daemon.ok(
        "run", "--rm", "-u", "nobody", "--group-add", "tty", "busybox", "sh", "-c", "id; echo $HOME"
    )
    assert nobody == "uid=65534(nobody) gid=65534(nogroup) groups=5(tty),65534(nogroup)\n/\n"  # the kernel sorts them
    root = shared_daemon.ok("run", "--rm", "busybox", "sh", "-c", "id; echo $HOME")
    assert root == "uid=0(root) gid=0(root) groups=0(root)\n/root\n"
    caps = shared_daemon.ok("run", "--rm", "-u", "1000", "busybox", "grep", "^CapEff", "/proc/self/status")
    assert caps.split()[1] == "0000000000000000"  # a non-root user's effective set is empty after exec, as in Docker
    unknown = shared_daemon.cli("run", "--rm", "-u", "app", "busybox", "true")
    assert unknown.code == 125 and "unable to find user app: no matching entries in passwd file" in unknown.err
    group = shared_daemon.cli("run", "--rm", "-u", "1000:staff", "busybox", "true")
    assert group.code == 125 and "unable to find group staff: no matching entries in group file" in group.err
    assert (
        shared_daemon.inspect(shared_daemon.ok("create", "-u", "nobody", "busybox", "true").strip())["Config"]["User"]
        == "nobody"
    )


def test_ulimits_shm_size_and_init(shared_daemon: Daemon) -> None:
    limits = shared_daemon.ok(
        "run", "--rm", "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"
    )
    assert limits.split() == ["1024", "2048"]
    shm = shared_daemon.ok("run", "--rm", "--shm-size", "128m", "busybox", "sh", "-c", "grep ' /dev/shm ' /proc/mounts")
    assert "size=131072k" in shm
    container = shared_daemon.ok(
        "create", "--ulimit", "nofile=1024:2048", "--shm-size", "128m", "--init", "busybox", "true"
    )
    host_config = shared_daemon.inspect(container.strip())["HostConfig"]
    assert host_config["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}]
    assert (host_config["ShmSize"], host_config["Init"]) == (128 << 20, True)
    assert (
        shared_daemon.inspect(shared_daemon.ok("create", "busybox", "true").strip())["HostConfig"]["ShmSize"]
        == 64 << 20
    )
    # --init: tini is pid 1 and reaps the orphan a `sh -c '... &'` leaves; the command's status comes through.
    script = "cat /proc/1/cmdline | tr '\\0' ' '; (sleep 0.1 &); sleep 0.3; ps -o stat | grep -c Z; exit 3"
    out = shared_daemon.cli("run", "--rm", "--init", "busybox", "sh", "-c", script)
    assert out.code == 3 and out.out.startswith("/sbin/docker-init -- sh -c") and out.out.split()[-1] == "0"


def test_privileged_gets_every_capability_no_seccomp_and_the_hosts_devices(shared_daemon: Daemon) -> None:
    script = "grep -E '^(CapEff|Seccomp):' /proc/self/status; ls /dev | wc -l; grep ' /sys ' /proc/mounts"
    out = shared_daemon.ok("run", "--rm", "--privileged", "busybox", "sh", "-c", script).splitlines()
    assert int(out[0].split()[1], 16) == host_bounding_set() and out[1].split()[1] == "0"
    plain = shared_daemon.ok("run", "--rm", "busybox", "sh", "-c", "ls /dev | wc -l")
    assert int(out[2]) > int(plain)  # the host's devices besides Docker's six
    assert " rw," in out[3]
    assert shared_daemon.inspect(shared_daemon.ok("create", "--privileged", "busybox", "true").strip())["HostConfig"][
        "Privileged"
    ]


# Open the node made for each device: "opened" (a read error past the open counts as opened: /dev/fuse
# answers EIO when nothing is mounted), or the open's error.
OPEN_MADE_NODES = (
    "for dev in 'c 1 3' 'c 136 0' 'c 10 229' 'c 1 11' 'b 7 0'; do rm -f /tmp/node; mknod /tmp/node $dev || exit 9;"
    " if head -c 1 /tmp/node >/dev/null 2>/tmp/err || ! grep -q 'Operation not permitted' /tmp/err;"
    ' then echo "$dev opened"; else echo "$dev refused"; fi; done'
)


@pytest.mark.skipif(
    not Path("/sys/fs/cgroup/devices").is_dir(), reason="needs the cgroup v1 devices controller (cgroup v2: none)"
)
def test_a_node_made_with_mknod_opens_only_for_dockers_default_devices(shared_daemon: Daemon) -> None:
    """CAP_MKNOD stays (Docker's default set), so root in a container can make a node for any device: the
    device cgroup lets it open only Docker's default list (null, zero, full, random, urandom, tty, console,
    ptmx, pty slaves, tun), as runc's. --privileged keeps every device, as with Docker; exec is inside."""
    plain = shared_daemon.ok("run", "--rm", "busybox", "sh", "-c", OPEN_MADE_NODES).splitlines()
    assert plain == ["c 1 3 opened", "c 136 0 opened", "c 10 229 refused", "c 1 11 refused", "b 7 0 refused"]
    privileged = shared_daemon.ok("run", "--rm", "--privileged", "busybox", "sh", "-c", OPEN_MADE_NODES)
    assert "c 10 229 opened" in privileged.splitlines()  # fuse: no device policy for --privileged
    container = shared_daemon.ok("run", "-d", "busybox", "sleep", "60").strip()
    try:
        in_exec = shared_daemon.ok("exec", container, "sh", "-c", OPEN_MADE_NODES).splitlines()
        assert "c 10 229 refused" in in_exec and "c 1 3 opened" in in_exec
    finally:
        shared_daemon.ok("rm", "-f", container)


@needs_docker
def test_the_docker_cli_and_docker_py_get_the_same_confinement(shared_daemon: Daemon) -> None:
    import docker as docker_py

    flags = ["-u", "nobody", "--ulimit", "nofile=512:1024", "--security-opt", "no-new-privileges", "--cap-drop", "ALL"]
    script = "id -u; ulimit -n; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"
    out = docker(shared_daemon, "run", "--rm", *flags, "busybox", "sh", "-c", script)
    assert out.code == 0, out.err
    assert out.out.split() == ["65534", "512", "NoNewPrivs:", "1", "Seccomp:", "2"]
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        output = client.containers.run(
            "busybox",
            ["sh", "-c", script],
            user="nobody",
            ulimits=[docker_py.types.Ulimit(name="nofile", soft=512, hard=1024)],
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            remove=True,
        )
        assert output.decode().split() == out.out.split()
        unconfined = client.containers.run(
            "busybox", ["grep", "^Seccomp:", "/proc/self/status"], security_opt=["seccomp=unconfined"], remove=True
        )
        assert unconfined.split() == [b"Seccomp:", b"0"]
    finally:
        client.close()


def test_exec_runs_inside_the_containers_confinement(shared_daemon: Daemon) -> None:
    """As runc's exec: the container's user (unless -u), ulimits, seccomp filter and no_new_privs."""
    flags = ("-u", "nobody", "--ulimit", "nofile=512:1024")
    container = shared_daemon.ok("run", "-d", *flags, "busybox", "sleep", "60").strip()
    try:
        script = "id -u; ulimit -n; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"
        out = shared_daemon.ok("exec", container, "sh", "-c", script)
        assert out.split() == ["65534", "512", "NoNewPrivs:", "1", "Seccomp:", "2"]
        assert shared_daemon.ok("exec", "-u", "0", container, "id", "-u") == "0\n"
    finally:
        shared_daemon.ok("rm", "-f", container)
