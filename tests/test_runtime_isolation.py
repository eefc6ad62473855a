"""What a container sees: its own pids, hostname, network, filesystem, devices and capabilities.

Real namespaces, real busybox: these tests need root and /bin/busybox from busybox-static.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from logship.runtime import capabilities, netns, spawn
from tests.rootfs import build_busybox_rootfs, container_problem, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(container_problem()), reason=container_problem() or "ok"),
]

DOCKER_DEFAULT_CAPS = 0x00000000A80425FB  # what `docker run` shows in CapBnd/CapEff


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("image") / "rootfs")


def _status_fields(output: bytes) -> dict[str, str]:
    fields = {}
    for line in output.decode().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _capability_sets(rootfs: Path, tmp_path: Path, **options: object) -> dict[str, int]:
    result = run(["grep", "-E", "^Cap|^NoNewPrivs", "/proc/self/status"], rootfs, tmp_path, **options)
    return {key: int(value, 16) for key, value in _status_fields(result.stdout).items()}


def test_the_command_is_pid_1_and_proc_shows_only_the_containers_processes(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "sleep 1000 & echo $$ $!; ls -d /proc/[0-9]*; exit 0"], rootfs, tmp_path)
    shell, child, *listing = result.stdout.decode().split()
    assert (shell, child) == ("1", "2")
    # The shell, its sleep and perhaps the `ls` itself (busybox may run it in-process): nothing of the host.
    assert listing[:2] == ["/proc/1", "/proc/2"] and listing[2:] in ([], ["/proc/3"])


def test_the_hostname_is_the_short_id_unless_given(rootfs: Path, tmp_path: Path) -> None:
    container_id = "0123456789abcdef" * 4
    default = run(["sh", "-c", "hostname; cat /etc/hostname"], rootfs, tmp_path, container_id=container_id)
    assert default.stdout == b"0123456789ab\n0123456789ab\n"
    given = run(["hostname"], rootfs, tmp_path, hostname="web-1")
    assert given.stdout == b"web-1\n"


def test_etc_hosts_is_dockers_for_network_none_and_the_hosts_for_network_host(rootfs: Path, tmp_path: Path) -> None:
    none = run(["cat", "/etc/hosts"], rootfs, tmp_path)
    assert none.stdout.decode().splitlines()[:2] == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    host = run(["cat", "/etc/hosts"], rootfs, tmp_path, network="host")
    assert host.stdout == Path("/etc/hosts").read_bytes()


def test_network_none_has_only_loopback_and_it_is_up(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"], rootfs, tmp_path)
    interfaces, flags = result.stdout.decode().split()
    assert interfaces == "lo"
    assert int(flags, 16) & 0x1  # IFF_UP


def test_network_host_sees_the_hosts_interfaces(rootfs: Path, tmp_path: Path) -> None:
    result = run(["ls", "/sys/class/net"], rootfs, tmp_path, network="host")
    assert sorted(result.stdout.decode().split()) == sorted(os.listdir("/sys/class/net"))


@pytest.mark.parametrize("kept_by", ["a mount", "a holder process"])
def test_a_prepared_network_namespace_is_joined_with_the_etc_files_given(
    rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept_by: str
) -> None:
    """Bridge networks: the daemon prepares the namespace (a mounted file, or as a rootless daemon must, a
    holder process) and the files; init joins it."""
    if kept_by == "a holder process":
        monkeypatch.setenv(netns.HOLDER_ENV, "1")
    path = tmp_path / "netns"
    netns.create(path)
    try:
        assert netns.exists(path)
        hosts, resolv = "127.0.0.1\tlocalhost\n10.1.2.3\tweb\n", "nameserver 10.1.2.1\noptions ndots:0\n"
        result = run(
            ["sh", "-c", "readlink /proc/self/ns/net; cat /etc/hosts /etc/resolv.conf"],
            rootfs,
            tmp_path,
            netns=str(netns.path(path)),
            hosts=hosts,
            resolv_conf=resolv,
        )
        inode = os.stat(netns.path(path)).st_ino
        assert result.stdout.decode() == f"net:[{inode}]\n" + hosts + resolv
    finally:
        netns.remove(path)
    assert not path.exists() and not netns.exists(path)


def test_default_capabilities_are_dockers_in_every_set_and_no_new_privs_is_on(rootfs: Path, tmp_path: Path) -> None:
    sets = _capability_sets(rootfs, tmp_path)
    for name in ("CapBnd", "CapPrm", "CapEff", "CapInh"):
        assert sets[name] == DOCKER_DEFAULT_CAPS, name
    assert sets["CapAmb"] == 0
    assert sets["NoNewPrivs"] == 1


def test_cap_add_and_cap_drop_change_every_set(rootfs: Path, tmp_path: Path) -> None:
    sets = _capability_sets(rootfs, tmp_path, cap_add=["net_admin"], cap_drop=["CAP_CHOWN", "Kill"])
    expected = DOCKER_DEFAULT_CAPS | 1 << 12  # + NET_ADMIN
    expected &= ~(1 << 0 | 1 << 5)  # - CHOWN, KILL
    for name in ("CapBnd", "CapPrm", "CapEff", "CapInh"):
        assert sets[name] == expected, name


def test_cap_drop_all_leaves_no_capability(rootfs: Path, tmp_path: Path) -> None:
    sets = _capability_sets(rootfs, tmp_path, cap_drop=["ALL"])
    assert (sets["CapBnd"], sets["CapEff"], sets["CapPrm"]) == (0, 0, 0)


def test_cap_add_all_gives_every_capability_the_daemon_holds(rootfs: Path, tmp_path: Path) -> None:
    sets = _capability_sets(rootfs, tmp_path, cap_add=["ALL"])
    assert sets["CapBnd"] == capabilities.mask_of(sorted(capabilities.bounding_set_of_this_process()))
    assert sets["CapEff"] == sets["CapBnd"]


def test_the_container_cannot_change_the_hosts_hostname_or_mount(rootfs: Path, tmp_path: Path) -> None:
    before = socket.gethostname()
    result = run(
        ["sh", "-c", "hostname changed; echo hostname=$?; mount -t tmpfs none /mnt; echo mount=$?"],
        rootfs,
        tmp_path,
    )
    assert b"hostname=1" in result.stdout and b"mount=" in result.stdout
    assert b"mount=0" not in result.stdout
    assert socket.gethostname() == before


def test_masked_paths_read_empty_and_readonly_paths_refuse_writes(rootfs: Path, tmp_path: Path) -> None:
    script = (
        "wc -c < /proc/keys; ls /proc/acpi | wc -l; ls /sys/firmware | wc -l; "
        "echo 1 > /proc/sys/kernel/panic && echo wrote-proc-sys; "
        "touch /sys/kernel/x && echo wrote-sys; "
        "cat /proc/self/mountinfo"
    )
    result = run(["sh", "-c", script], rootfs, tmp_path, cap_add=["SYS_ADMIN"])  # even with SYS_ADMIN
    lines = result.stdout.decode().splitlines()
    assert lines[:3] == ["0", "0", "0"]
    assert "wrote-proc-sys" not in lines and "wrote-sys" not in lines
    assert b"Read-only file system" in result.stderr
    mounts = {line.split()[4]: line.split()[5] for line in lines[3:]}
    for path in ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/sys"):
        assert mounts[path].startswith("ro"), path


def test_dev_is_a_fresh_tmpfs_with_dockers_devices_and_links(rootfs: Path, tmp_path: Path) -> None:
    listing = run(["ls", "/dev"], rootfs, tmp_path).stdout.decode().split()
    expected = "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"
    assert listing == expected.split()  # no /dev/console without a tty, nothing else of the host's /dev
    links = run(["sh", "-c", "for l in ptmx fd stdin stdout stderr core; do readlink /dev/$l; done"], rootfs, tmp_path)
    assert links.stdout.decode().split() == [
        "pts/ptmx",
        "/proc/self/fd",
        "/proc/self/fd/0",
        "/proc/self/fd/1",
        "/proc/self/fd/2",
        "/proc/kcore",
    ]
    devices = run(["sh", "-c", "head -c 4 /dev/zero | wc -c; echo x > /dev/full || echo full"], rootfs, tmp_path)
    assert devices.stdout.split() == [b"4", b"full"]
    mounts = {}
    for line in run(["cat", "/proc/self/mounts"], rootfs, tmp_path).stdout.decode().splitlines():
        _, target, fstype, options, *_ = line.split()
        mounts[target] = (fstype, options.split(","))
    assert mounts["/dev"][0] == "tmpfs" and "nosuid" in mounts["/dev"][1]
    assert mounts["/dev/pts"][0] == "devpts" and "ptmxmode=666" in mounts["/dev/pts"][1]
    assert mounts["/dev/shm"][0] == "tmpfs" and "noexec" in mounts["/dev/shm"][1]
    assert mounts["/dev/mqueue"][0] == "mqueue"
    assert mounts["/proc"][0] == "proc" and {"nosuid", "nodev", "noexec"} <= set(mounts["/proc"][1])


def test_with_a_tty_the_terminal_is_also_dev_console(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "echo hi > /dev/console"], rootfs, tmp_path, tty=True)
    assert result.stdout == b"hi\r\n"


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)} {info.st_mode} {info.st_size}".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_writes_in_the_container_do_not_modify_the_image(rootfs: Path, tmp_path: Path) -> None:
    before = _tree_digest(rootfs)
    state_dir = tmp_path / "writer"
    result = run(
        ["sh", "-c", "echo new > /etc/new-file; rm /bin/ls; echo changed >> /etc/passwd; mkdir /made; echo ok"],
        rootfs,
        tmp_path,
        state_dir=state_dir,
    )
    assert result.stdout == b"ok\n"
    assert _tree_digest(rootfs) == before
    assert (state_dir / "diff" / "etc" / "new-file").read_text() == "new\n"  # the container's own layer


def test_state_dir_and_rootfs_paths_overlay_cannot_take_are_refused(rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises(spawn.StartError, match="overlay mounts cannot take"):
        run(["true"], rootfs, tmp_path, state_dir=tmp_path / "a,b")
