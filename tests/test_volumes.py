"""Binds, named and anonymous volumes, tmpfs and a read-only root in real containers (real mount
namespaces, real files), with `logship volume`, the docker CLI and docker-py giving the same results."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from tests.harness import Daemon
from tests.rootfs import build_busybox_rootfs
from tests.test_docker_clients import docker, needs_docker

pytestmark = pytest.mark.integration


def test_a_ro_bind_refuses_writes_and_a_rw_bind_writes_to_the_host(shared_daemon: Daemon, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "app.conf").write_text("level=debug\n")
    out = shared_daemon.cli(
        "run", "--rm", "-v", f"{conf}:/conf:ro", "busybox", "sh", "-c", "cat /conf/app.conf; echo x > /conf/new"
    )
    assert out.out.startswith("level=debug\n") and "Read-only file system" in out.err and out.code == 1
    assert not (conf / "new").exists()
    shared_daemon.ok("run", "--rm", "-v", f"{conf}:/conf", "busybox", "sh", "-c", "echo written > /conf/new")
    assert (conf / "new").read_text() == "written\n"


def test_a_missing_v_source_is_created_but_a_missing_mount_source_is_refused(
    shared_daemon: Daemon, tmp_path: Path
) -> None:
    created = tmp_path / "made" / "by-v"
    shared_daemon.ok("run", "--rm", "-v", f"{created}:/data", "busybox", "touch", "/data/here")
    assert (created / "here").exists()
    missing = tmp_path / "absent"
    refused = shared_daemon.cli("run", "--rm", "--mount", f"type=bind,src={missing},dst=/data", "busybox", "true")
    assert refused.code == 125
    assert f'invalid mount config for type "bind": bind source path does not exist: {missing}' in refused.err
    assert not missing.exists()


def test_a_named_volume_outlives_its_container_and_is_managed_like_dockers(shared_daemon: Daemon) -> None:
    name = "vol" + secrets.token_hex(4)
    shared_daemon.ok("run", "--name", name, "-v", f"{name}:/data", "busybox", "sh", "-c", "echo kept > /data/file")
    volume = json.loads(shared_daemon.ok("volume", "inspect", name))[0]
    assert volume["Driver"] == "local" and volume["Scope"] == "local" and volume["Name"] == name
    assert Path(volume["Mountpoint"]) == shared_daemon.data_root / "volumes" / name / "_data"
    (mount,) = shared_daemon.inspect(name)["Mounts"]
    assert mount == {
        "Type": "volume",
        "Name": name,
        "Source": volume["Mountpoint"],
        "Destination": "/data",
        "Driver": "local",
        "Mode": "z",
        "RW": True,
        "Propagation": "",
    }
    in_use = shared_daemon.cli("volume", "rm", name)
    assert in_use.code == 1 and f"remove {name}: volume is in use" in in_use.err
    (row,) = [
        line.split() for line in shared_daemon.ok("system", "df").splitlines() if line.startswith("Local Volumes")
    ]
    assert int(row[2]) >= 1 and int(row[3]) >= 1  # TOTAL, ACTIVE: this one is used by a (stopped) container
    shared_daemon.ok("rm", name)
    assert shared_daemon.ok("run", "--rm", "-v", f"{name}:/again", "busybox", "cat", "/again/file") == "kept\n"
    assert name in shared_daemon.ok("volume", "ls", "-q").split()
    shared_daemon.ok("volume", "rm", name)
    assert not Path(volume["Mountpoint"]).exists()
    missing = shared_daemon.cli("volume", "inspect", name)
    assert missing.code == 1 and f"get {name}: no such volume" in missing.err
    bad = shared_daemon.cli("volume", "create", "../escape")
    assert bad.code == 1 and "includes invalid characters for a local volume name" in bad.err
    assert not (shared_daemon.data_root / "escape").exists()


def test_a_new_volume_is_filled_from_the_image_and_anonymous_volumes_go_with_the_container(
    shared_daemon: Daemon,
) -> None:
    name = "etc" + secrets.token_hex(4)
    shadowed = shared_daemon.ok("run", "--rm", "-v", f"{name}:/etc", "busybox", "cat", "/etc/passwd")
    assert shadowed.startswith("root:x:0:0:")  # Docker's copy-up: the image's /etc went into the empty volume
    empty = shared_daemon.ok(
        "run", "--rm", "--mount", f"type=volume,src={name}2,dst=/etc,volume-nocopy", "busybox", "ls", "/etc"
    )
    assert empty == ""
    shared_daemon.ok("volume", "rm", name, f"{name}2")
    before = set(shared_daemon.ok("volume", "ls", "-q").split())
    container = shared_daemon.ok("create", "-v", "/scratch", "busybox", "true").strip()
    (anonymous,) = set(shared_daemon.ok("volume", "ls", "-q").split()) - before
    assert len(anonymous) == 64
    assert shared_daemon.inspect(container)["Config"]["Volumes"] == {"/scratch": {}}
    shared_daemon.ok("rm", "-v", container)
    assert anonymous not in shared_daemon.ok("volume", "ls", "-q").split()
    shared_daemon.ok("run", "--rm", "-v", "/scratch", "busybox", "true")
    assert set(shared_daemon.ok("volume", "ls", "-q").split()) == before
    kept = shared_daemon.ok("run", "-d", "-v", "/scratch", "busybox", "true").strip()
    shared_daemon.ok("wait", kept)
    shared_daemon.ok("rm", kept)  # without -v: the anonymous volume stays, unused; prune takes it
    pruned = shared_daemon.ok("volume", "prune", "-f")
    assert "Deleted Volumes:" in pruned and set(shared_daemon.ok("volume", "ls", "-q").split()) == before


def test_tmpfs_size_is_enforced_and_the_root_can_be_read_only(shared_daemon: Daemon) -> None:
    script = "dd if=/dev/zero of=/t/fill bs=1024 count=2048 2>&1; du -k /t/fill"
    out = shared_daemon.cli("run", "--rm", "--tmpfs", "/t:size=1m", "busybox", "sh", "-c", script)
    assert "No space left on device" in out.out and out.out.split()[-2] == "1024"
    mounted = shared_daemon.ok(
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/m,tmpfs-size=2m,tmpfs-mode=1770",
        "busybox",
        "sh",
        "-c",
        "grep ' /m ' /proc/mounts; stat -c %a /m",
    )
    assert "size=2048k" in mounted and "nosuid,nodev,noexec" in mounted and mounted.split()[-1] == "1770"
    script = "touch /rootfile || echo refused; touch /tmp/tmpfile && echo tmp-ok; echo ok > /dev/shm/x && echo shm-ok"
    out = shared_daemon.cli("run", "--rm", "--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c", script)
    assert "Read-only file system" in out.err and out.out.split() == ["refused", "tmp-ok", "shm-ok"]
    host_config = shared_daemon.inspect(
        shared_daemon.ok("create", "--read-only", "--tmpfs", "/run:size=64m", "busybox", "true").strip()
    )["HostConfig"]
    assert host_config["ReadonlyRootfs"] is True and host_config["Tmpfs"] == {"/run": "size=64m"}


def test_a_symlink_in_the_image_cannot_take_a_mount_target_outside_the_container(
    shared_daemon: Daemon, tmp_path: Path
) -> None:
    """An image whose /data, /logs and /deep/x point at host paths: every mount lands inside the
    container's root, and nothing is created or mounted on the host."""
    escape = Path("/tmp") / f"logship-escape-{secrets.token_hex(6)}"
    rootfs = build_busybox_rootfs(tmp_path / "evil")
    os.symlink(f"/../../../../..{escape}", rootfs / "data")
    os.symlink(str(escape) + "-logs", rootfs / "logs")
    (rootfs / "deep").mkdir()
    os.symlink("../../../../../../../../" + str(escape) + "-deep", rootfs / "deep" / "x")
    os.symlink("/proc/self/root" + str(escape) + "-magic", rootfs / "magic")
    os.symlink("/proc/sys/kernel", rootfs / "kernel")
    image = "evil" + secrets.token_hex(3)
    shared_daemon.ok("import", str(rootfs), image)
    source = tmp_path / "src"
    source.mkdir()
    script = f"echo in > /data/file; echo in > /logs/file; echo in > /deep/x/file; ls {escape}"
    out = shared_daemon.cli(
        "run", "--rm", "-v", f"{source}:/data", "--tmpfs", "/logs", "-v", "vol-evil:/deep/x", image, "sh", "-c", script
    )
    assert out.code == 0, out.err
    assert out.out.split() == ["file"]  # the bind landed at the link's target, resolved inside the container
    assert (source / "file").read_text() == "in\n"
    for suffix in ("", "-logs", "-deep", "-magic"):
        assert not Path(f"{escape}{suffix}").exists()
    for link in ("/magic", "/kernel"):  # through /proc (a magic link, or the kernel's files): refused, as runc
        into_proc = shared_daemon.cli("run", "--rm", "--tmpfs", link, image, "true")
        assert into_proc.code == 125 and f'"{link}" cannot be mounted because it is inside /proc' in into_proc.err
    assert not Path(f"{escape}-magic").exists()
    shared_daemon.ok("volume", "rm", "vol-evil")


@needs_docker
def test_the_docker_cli_and_docker_py_get_the_same_mounts(shared_daemon: Daemon, tmp_path: Path) -> None:
    import docker as docker_py

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "x").write_text("from-host\n")
    name = "dk" + secrets.token_hex(4)
    args = [
        "-v",
        f"{conf}:/conf:ro",
        "-v",
        f"{name}:/data",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m",
        "--read-only",
    ]
    out = docker(shared_daemon, "run", "--name", name, *args, "busybox", "sh", "-c", "cat /conf/x; echo y > /data/y")
    assert out.code == 0 and out.out == "from-host\n", out.err
    by_cli = docker(shared_daemon, "inspect", name)
    cli_view = json.loads(by_cli.out)[0]
    assert {m["Destination"]: (m["Type"], m["RW"]) for m in cli_view["Mounts"]} == {
        "/conf": ("bind", False),
        "/data": ("volume", True),
        "/t": ("tmpfs", True),
    }
    # The docker CLI sends Binds in its map's (random) order: the set is what it asked for.
    assert sorted(cli_view["HostConfig"]["Binds"]) == sorted([f"{conf}:/conf:ro", f"{name}:/data"])
    assert json.loads(docker(shared_daemon, "volume", "inspect", name).out)[0]["Name"] == name
    assert docker(shared_daemon, "volume", "rm", name).code == 1  # in use
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        output = client.containers.run(
            "busybox",
            ["cat", "/data/y", "/conf/x"],
            volumes={str(conf): {"bind": "/conf", "mode": "ro"}, name: {"bind": "/data", "mode": "rw"}},
            tmpfs={"/t": "size=1m"},
            read_only=True,
            remove=True,
        )
        assert output == b"y\nfrom-host\n"
        assert name in [volume.name for volume in client.volumes.list()]
        created = client.volumes.create("py" + name, labels={"team": "logs"})
        assert client.volumes.get(created.name).attrs["Labels"] == {"team": "logs"}
        created.remove()
    finally:
        client.close()
    docker(shared_daemon, "rm", name)
    assert docker(shared_daemon, "volume", "rm", name).code == 0
    assert shutil.which("docker")
