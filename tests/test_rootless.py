"""Rootless: an ordinary user's daemon, its containers in a user namespace.

Each test user is real (`useradd`, with or without a subordinate range) and runs the daemon and the CLI
itself (tests/rootless.py); the checks are what the user sees, and what the host sees of its processes
and files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logship.runtime import cgroups, netavark
from tests.harness import DOCKER, Daemon, kill_processes_under, needs_docker, network_servers
from tests.hostnet import fetch, free_port
from tests.rootfs import build_busybox_rootfs
from tests.rootless import RootlessDaemon, TestUser, rootless_problem, user_python

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(rootless_problem()), reason=f"rootless tests {rootless_problem()}"),
]


@pytest.fixture(scope="module")
def daemon(rootless_user: TestUser) -> Iterator[RootlessDaemon]:
    with RootlessDaemon(rootless_user).started() as started:
        yield started


def host_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def subordinate_start(user: TestUser, path: str = "/etc/subuid") -> int:
    for line in Path(path).read_text().splitlines():
        name, start, _ = line.split(":")
        if name == user.name:
            return int(start)
    raise AssertionError(f"{user.name} has no range in {path}")


# --- the daemon and its namespace ---------------------------------------------------------------------


def test_the_daemon_runs_as_the_user_and_info_says_rootless(daemon: RootlessDaemon, rootless_user: TestUser) -> None:
    assert daemon.process is not None
    status = host_status(daemon.process.pid)
    assert status["Uid"].split() == [str(rootless_user.uid)] * 4  # an ordinary process to the host
    # Its capabilities are in a user namespace of its own, none in the host's.
    assert os.stat(f"/proc/{daemon.process.pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino
    assert Path(f"/proc/{daemon.process.pid}/uid_map").read_text().split() == [
        "0",
        str(rootless_user.uid),
        "1",
        "1",
        str(subordinate_start(rootless_user)),
        "65536",
    ]
    body = json.loads(daemon.api("GET", "/info")[2])
    assert "name=rootless" in body["SecurityOptions"]
    assert body["Rootless"]["SubordinateRange"] is True
    assert body["Rootless"]["User"] == rootless_user.name
    assert body["DockerRootDir"] == str(daemon.data_root)
    shown = daemon.cli("info")
    assert shown.code == 0
    assert "  rootless" in shown.out and "Subordinate Range: yes" in shown.out
    assert "ids 0-65536 mapped" in shown.out
    assert oct(os.stat(daemon.socket).st_mode & 0o777) == "0o600"  # the user's alone
    assert os.stat(daemon.socket).st_uid == rootless_user.uid


@needs_docker
def test_the_docker_cli_shows_it_as_a_rootless_dockerd(daemon: RootlessDaemon, rootless_user: TestUser) -> None:
    """The real docker CLI, run by the user: Security Options `rootless`, and dockerd's warnings."""
    config = str(daemon.root / "docker-config")
    shown = rootless_user.run([DOCKER, "info"], rootless_user.env(DOCKER_HOST=daemon.host, DOCKER_CONFIG=config))
    assert shown.returncode == 0, shown.stderr
    assert b" Security Options:\n" in shown.stdout and b"\n  rootless\n" in shown.stdout
    if not json.loads(daemon.api("GET", "/info")[2])["Rootless"]["Cgroup"]["Path"]:  # no delegated subtree here
        assert b"WARNING: Running in rootless-mode without cgroups: " in shown.stderr


def test_run_logs_and_follow_as_the_user(daemon: RootlessDaemon) -> None:
    out = daemon.ok("run", "--name", "hello", "busybox", "sh", "-c", "id -u; echo to-stderr >&2; echo done")
    assert out.splitlines() == ["0", "done"]
    logs = daemon.cli("logs", "hello")
    assert logs.out.splitlines() == ["0", "done"] and logs.err.strip() == "to-stderr"
    log_path = daemon.inspect("hello")["LogPath"]
    assert os.stat(log_path).st_uid == daemon.user.uid  # the json-file log is the user's file on the host
    assert next(json.loads(line)["log"] for line in Path(log_path).read_text().splitlines()) == "0\n"

    daemon.ok(
        "run", "-d", "--name", "ticker", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done"
    )
    follow = daemon.cli("logs", "-f", "ticker", timeout=30)
    assert follow.code == 0
    assert follow.out.splitlines() == [f"tick {i}" for i in range(1, 6)]


def test_a_kill_9_and_a_restart_find_the_containers_and_lose_no_line(rootless_user: TestUser) -> None:
    daemon = RootlessDaemon(rootless_user, "restart")
    daemon.config = {"live-restore": True}
    with daemon.started():
        daemon.ok(
            "run", "-d", "--name", "counter", "-u", "1000", "busybox",
            "sh", "-c", "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line $i; sleep 0.01; done; sleep 600",
        )  # fmt: skip
        pid = daemon.inspect("counter")["State"]["Pid"]
        assert host_status(pid)["Uid"].split()[0] == str(subordinate_start(rootless_user) + 999)  # uid 1000 inside
        time.sleep(1)
        daemon.kill9()
        time.sleep(1)  # the container writes on meanwhile
        daemon.start()
        assert daemon.inspect("counter")["State"]["Running"] is True
        assert "in the user namespace of running containers (joined)" in daemon.daemon_log()
        deadline = time.monotonic() + 20
        while "line 400" not in daemon.ok("logs", "--tail", "1", "counter") and time.monotonic() < deadline:
            time.sleep(0.2)
        # The restarted daemon controls the container although it runs as a user other than the daemon's.
        daemon.ok("stop", "-t", "1", "counter")
        state = daemon.inspect("counter")["State"]
        assert state["Running"] is False and state["ExitCode"] == 137
        assert daemon.ok("logs", "counter").splitlines() == [f"line {i}" for i in range(1, 401)]


def test_root_in_a_container_is_the_user_on_the_host(
    daemon: RootlessDaemon, rootless_user: TestUser, lone_user: TestUser
) -> None:
    guarded = rootless_user.home / "guarded"
    guarded.mkdir(mode=0o755, exist_ok=True)
    root_file = guarded / "root-owned.conf"
    root_file.write_text("host configuration\n")
    root_file.chmod(0o644)
    secret = guarded / "secret"
    secret.write_text("another user's secret\n")
    secret.chmod(0o600)
    os.chown(secret, lone_user.uid, lone_user.gid)
    script = (
        "cat /etc/host.conf; echo appended >> /etc/host.conf; echo write=$?; chown 0:0 /etc/host.conf; "
        "echo chown=$?; chmod 666 /etc/host.conf; echo chmod=$?; cat /secret; echo read=$?; id -u"
    )
    for extra in ([], ["--privileged"], ["--cap-add", "ALL"]):
        mounts = ["-v", f"{root_file}:/etc/host.conf", "-v", f"{secret}:/secret"]
        result = daemon.cli("run", "--rm", *extra, *mounts, "busybox", "sh", "-c", script)
        assert result.code == 0, result.err
        assert result.out.splitlines()[0] == "host configuration"
        for step in ("write", "chown", "chmod", "read"):
            assert f"{step}=0" not in result.out, (extra, result.out)
        assert "another user's secret" not in result.out
        assert result.out.splitlines()[-1] == "0"  # root in the container, all the same
    assert root_file.read_text() == "host configuration\n"
    assert (os.stat(root_file).st_uid, oct(os.stat(root_file).st_mode & 0o777)) == (0, "0o644")

    daemon.ok("run", "-d", "--name", "sleeper", "busybox", "sleep", "60")
    pid = daemon.inspect("sleeper")["State"]["Pid"]
    assert host_status(pid)["Uid"].split() == [str(rootless_user.uid)] * 4
    daemon.ok("rm", "-f", "sleeper")


def owned_image(daemon: Daemon, name: str, uid: int) -> None:
    """Import busybox with one more file, /srv/data, owned by `uid` in the archive."""
    rootfs = daemon.root / "rootfs-busybox"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(rootfs, arcname=".", filter=lambda member: _as_root(member))
        member = tarfile.TarInfo("srv/data")
        member.uid = member.gid = uid
        member.size = 5
        tar.addfile(member, io.BytesIO(b"data\n"))
    result = daemon.cli("import", "-", name, input=archive.getvalue())
    assert result.code == 0, result.err


def _as_root(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    return member


def test_a_user_without_a_range_has_its_own_id_only(lone_user: TestUser) -> None:
    daemon = RootlessDaemon(lone_user)
    with daemon.started():
        assert daemon.process is not None
        assert Path(f"/proc/{daemon.process.pid}/uid_map").read_text().split() == ["0", str(lone_user.uid), "1"]
        shown = daemon.cli("info")
        assert "Subordinate Range: no" in shown.out and "  rootless" in shown.out
        assert f"no subordinate range for {lone_user.name}" in shown.err  # the warning, as docker info prints it
        body = json.loads(daemon.api("GET", "/info")[2])
        assert body["Rootless"]["SubordinateRange"] is False and body["Rootless"]["UIDMap"] == [f"0 {lone_user.uid} 1"]

        assert daemon.ok("run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map").split() == [
            "0", "0", str(lone_user.uid), "1"
        ]  # fmt: skip
        refused = daemon.cli("run", "--rm", "-u", "1000", "busybox", "true")
        assert refused.code == 125
        assert (
            "needs uid 1000, which this rootless daemon's user namespace does not map (it maps uids 0)" in refused.err
        )
        assert "no subordinate range" in refused.err and "-u 0" in refused.err
        # An image's files of other owners belong to the one id there is.
        owned_image(daemon, "owned", 1000)
        assert daemon.ok("run", "--rm", "owned", "stat", "-c", "%u:%g", "/srv/data").strip() == "0:0"
        # Its terminals: a devpts of its own, without Docker's gid=5 (tty), which is not mapped.
        shown = daemon.ok("run", "--rm", "-t", "busybox", "sh", "-c", "tty; grep ' /dev/pts ' /proc/mounts")
        assert shown.splitlines()[0].strip() == "/dev/console" and "devpts" in shown and ",gid=" not in shown


def test_image_owners_inside_the_range_are_kept_and_others_refused(
    daemon: RootlessDaemon, rootless_user: TestUser
) -> None:
    owned_image(daemon, "owned", 1000)
    assert daemon.ok("run", "--rm", "owned", "stat", "-c", "%u:%g", "/srv/data").strip() == "1000:1000"
    stored = next((daemon.data_root / "images").rglob("srv/data"))
    assert os.stat(stored).st_uid == subordinate_start(rootless_user) + 999  # on the host: the range's 1000th id
    rootfs = daemon.root / "rootfs-busybox"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(rootfs / "bin", arcname="bin", filter=_as_root)
        member = tarfile.TarInfo("srv/far")
        member.uid = 70000
        tar.addfile(member, io.BytesIO(b""))
    refused = daemon.cli("import", "-", "far", input=archive.getvalue())
    assert refused.code != 0
    assert "'srv/far': it belongs to uid 70000" in refused.err and "ids 0-65536" in refused.err


def test_what_rootless_cannot_do_here_is_refused_with_the_reason(daemon: RootlessDaemon) -> None:
    before = daemon.ok("ps", "-aq")
    for flag in (["--memory", "64m"], ["--pids-limit", "10"], ["--cpus", "1"]):
        refused = daemon.cli("run", "--rm", *flag, "busybox", "true")
        assert refused.code == 125
        assert f"cannot apply {flag[0]}:" in refused.err and f"run without {flag[0]}" in refused.err
        assert "cgroup" in refused.err and "Traceback" not in refused.err
    hard = int(subprocess.run(["sh", "-c", "ulimit -H -n"], capture_output=True, text=True).stdout)
    refused = daemon.cli("run", "--rm", "--ulimit", f"nofile={hard + 1}:{hard + 1}", "busybox", "true")
    assert refused.code == 125 and "a rootless daemon cannot raise a hard limit" in refused.err
    refused = daemon.cli("run", "--rm", "-u", "70000", "busybox", "true")
    assert refused.code == 125 and "needs uid 70000" in refused.err and "it maps uids 0-65536" in refused.err
    assert daemon.ok("ps", "-aq") == before  # --rm: nothing refused was left behind


def test_host_and_none_networks_exec_cp_and_a_terminal(daemon: RootlessDaemon) -> None:
    host = daemon.ok(
        "run", "--rm", "--network", "host", "busybox", "sh", "-c", "ls /sys/class/net; touch /sys/x; echo $?"
    )
    assert "lo" in host.split() and host.split()[-1] == "1"  # the host's interfaces, /sys read-only
    none = daemon.ok("run", "--rm", "busybox", "ls", "/sys/class/net")
    assert none.split() == ["lo"]
    for network in ("none", "host"):
        daemon.ok("run", "-d", "--name", f"exec-{network}", "--network", network, "busybox", "sleep", "60")
        assert daemon.ok("exec", "-u", "1000", f"exec-{network}", "id", "-u").strip() == "1000"
        daemon.ok("rm", "-f", f"exec-{network}")
    # cp both ways, through a volume filled from the image (copy-up keeps the image's owners)
    daemon.ok("run", "-d", "--name", "copied", "-v", "etc-copy:/etc", "busybox", "sleep", "60")
    outside = daemon.root / "passwd.copy"
    daemon.ok("cp", "copied:/etc/passwd", str(outside))
    assert outside.read_text().startswith("root:x:0:0:") and outside.stat().st_uid == daemon.user.uid
    daemon.ok("cp", str(outside), "copied:/tmp/back")
    assert daemon.ok("exec", "copied", "stat", "-c", "%u %s", "/tmp/back").split() == ["0", str(outside.stat().st_size)]
    daemon.ok("rm", "-f", "-v", "copied")
    shown = daemon.ok("run", "--rm", "-t", "busybox", "sh", "-c", "tty; grep ' /dev/pts ' /proc/mounts")
    assert shown.splitlines()[0].strip() == "/dev/console" and ",gid=" in shown  # tty (5), as the host names it


@pytest.mark.skipif(
    bool(netavark.missing_tools()) or shutil.which("pasta") is None,
    reason="needs netavark, aardvark-dns and passt (.ci/setup installs them)",
)
def test_bridge_networks_names_and_published_ports_as_the_user(rootless_user: TestUser) -> None:
    """The networks of issue 23 from a rootless daemon: its namespaces are kept by holder processes (it may
    not mount), netavark and aardvark-dns run as root of the user's namespace, pasta forwards -p."""
    daemon = RootlessDaemon(rootless_user, "networks")
    daemon.bridge = True
    with daemon.started():
        assert daemon.ok("run", "--rm", "busybox", "ls", "/sys/class/net").split() == ["eth0", "lo"]  # default bridge
        daemon.ok("network", "create", "talk")
        port = free_port()
        httpd = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]
        web = ["run", "-d", "--name", "web", "--network", "talk", "-p", f"127.0.0.1:{port}:80", *httpd]
        tun = Path("/dev/net/tun")
        mode = stat.S_IMODE(tun.stat().st_mode)
        if not mode & 0o006:  # as on this machine: pasta cannot run as the user, and the daemon says what to do
            refused = daemon.cli(*web)
            assert refused.code == 125 and "chmod 0666 /dev/net/tun" in refused.err, refused.err
            daemon.ok("rm", "-f", "web")
        tun.chmod(0o666)  # Debian's default, for this test only
        try:
            daemon.ok(*web)
            short_id = daemon.inspect("web")["Id"][:12]
            script = "for i in $(seq 20); do nc -w 1 web 80 </dev/null && break; sleep 0.1; done; wget -q -O- http://web/hostname"
            assert daemon.ok("run", "--rm", "--network", "talk", "busybox", "sh", "-c", script).strip() == short_id
            assert fetch(port).endswith(short_id + "\n")  # from the host's loopback, through pasta
            owners = {pid: Path(f"/proc/{pid}").stat().st_uid for pid in network_servers(daemon.data_root)}
            assert owners and set(owners.values()) == {rootless_user.uid}, owners  # pasta, aardvark-dns: not root's
            daemon.ok("rm", "-f", "web")
            daemon.ok("network", "rm", "talk")
        finally:
            tun.chmod(mode)


class DelegatedDaemon(RootlessDaemon):
    """A rootless daemon started inside `subtree`, a cgroup v2 directory made the user's (as systemd's
    Delegate=yes makes a service's): root moves the starting shell there, then becomes the user."""

    def __init__(self, user: TestUser, subtree: Path) -> None:
        super().__init__(user, "delegated")
        self.subtree = subtree

    @property
    def daemon_command(self) -> list[str]:
        move = f'echo $$ > {self.subtree}/cgroup.procs && exec "$@"'
        return ["sh", "-c", move, "sh", *self.logship]


@pytest.fixture
def subtree(rootless_user: TestUser) -> Iterator[Path]:
    root = cgroups.v2_mount_point()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy is mounted here")
    directory = root / f"logship-test-{rootless_user.name}"
    directory.mkdir()
    for path in (
        directory,
        directory / "cgroup.procs",
        directory / "cgroup.subtree_control",
        directory / "cgroup.threads",
    ):
        os.chown(path, rootless_user.uid, rootless_user.gid)
    try:
        yield directory
    finally:
        for child in sorted(directory.rglob("*"), key=lambda path: len(path.parts), reverse=True):
            if child.is_dir():
                child.rmdir()
        directory.rmdir()


def test_a_delegated_cgroup_v2_subtree_holds_the_containers_and_offers_its_controllers(
    rootless_user: TestUser, subtree: Path
) -> None:
    daemon = DelegatedDaemon(rootless_user, subtree)
    with daemon.started():
        assert daemon.process is not None
        relative = "/" + str(subtree.relative_to(cgroups.v2_mount_point() or Path("/")))
        assert f"0::{relative}/logshipd" in Path(f"/proc/{daemon.process.pid}/cgroup").read_text().splitlines()
        rootless = json.loads(daemon.api("GET", "/info")[2])["Rootless"]
        assert rootless["Cgroup"]["Path"] == str(subtree)
        daemon.ok("run", "-d", "--name", "placed", "busybox", "sleep", "60")
        container = daemon.inspect("placed")
        placed = Path(f"/proc/{container['State']['Pid']}/cgroup").read_text().splitlines()
        assert f"0::{relative}/logship/{container['Id']}" in placed
        offered = set((subtree / "cgroup.controllers").read_text().split())
        limits = {  # controller: the flag, the file it sets, what it holds
            "memory": (["--memory", "64m"], "memory.max", str(64 << 20)),
            "pids": (["--pids-limit", "10"], "pids.max", "10"),
            "cpu": (["--cpus", "0.5"], "cpu.max", "50000 100000"),
        }
        usable = [name for name in limits if name in offered]
        if usable:  # a machine whose cgroup v2 has these controllers: the limits are applied
            flags = [flag for name in usable for flag in limits[name][0]]
            daemon.ok("run", "-d", "--name", "limited", *flags, "busybox", "sleep", "60")
            limited = subtree / "logship" / daemon.inspect("limited")["Id"]
            for name in usable:
                assert (limited / limits[name][1]).read_text().strip() == limits[name][2]
            daemon.ok("rm", "-f", "limited")
        missing = [name for name in limits if name not in offered]
        if missing:  # a hybrid machine (this project's): refused, naming what the subtree offers
            refused = daemon.cli("run", "--rm", *limits[missing[0]][0], "busybox", "true")
            assert refused.code == 125
            assert f"the delegated cgroup {subtree} is not offered the {', '.join(missing)} controller" in refused.err
            assert f"(its cgroup.controllers: {' '.join(sorted(offered)) or 'none'})" in refused.err
        daemon.ok("rm", "-f", "placed")


def test_the_first_command_starts_a_rootless_daemon_on_the_users_own_paths(rootless_user: TestUser) -> None:
    runtime = rootless_user.home / "runtime"
    runtime.mkdir(mode=0o700)
    rootless_user.give(runtime)
    env = rootless_user.env(XDG_RUNTIME_DIR=str(runtime))  # no -H, no LOGSHIP_HOST: the defaults
    rootfs = rootless_user.give(build_busybox_rootfs(rootless_user.home / "autostart-rootfs"))
    logship = [user_python(rootless_user.uid)[0], "-m", "logship"]
    data_root = rootless_user.home / ".local/share/logship"
    try:
        imported = rootless_user.run([*logship, "import", str(rootfs), "busybox"], env)
        assert imported.returncode == 0, imported.stderr
        assert b"no daemon answered on unix://" + str(runtime / "logship.sock").encode() in imported.stderr
        assert (runtime / "logship.sock").is_socket() and (data_root / "logship.pid").exists()
        ran = rootless_user.run([*logship, "run", "--rm", "busybox", "sh", "-c", "echo hello from $(id -u)"], env)
        assert ran.stdout == b"hello from 0\n", ran.stderr
    finally:
        pid_file = data_root / "logship.pid"
        if pid_file.exists() and pid_file.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
        kill_processes_under(data_root)
