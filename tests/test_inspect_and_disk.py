"""Every key dockerd sends (the list captured from dockerd is the fixture), and `system df`, `container
prune`, `image prune` with Docker's filters."""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Daemon, docker, docker_ok, needs_docker

pytestmark = pytest.mark.integration

KEYS: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures/docker-api/dockerd-keys.json").read_text())


def missing(data: dict[str, Any], wanted: dict[str, list[str]]) -> dict[str, list[str]]:
    """For each section of the fixture ("" the top, "A.B" nested, "A.*" every entry of a map or list), the
    keys dockerd sends that `data` lacks."""
    gaps: dict[str, list[str]] = {}
    for section, keys in wanted.items():
        targets: list[Any] = [data]
        for part in [p for p in section.split(".") if p]:
            if part == "*":
                targets = [v for t in targets for v in (t.values() if isinstance(t, dict) else t)]
            else:
                targets = [t[part] for t in targets]
        assert targets, f"nothing to compare in {section!r}"
        for target in targets:
            lacking = sorted(set(keys) - set(target))
            if lacking:
                gaps[section or "(top)"] = lacking
    return gaps


@pytest.fixture(scope="module")
def running(shared_daemon: Daemon) -> Iterator[str]:
    container = shared_daemon.ok("run", "-d", "--name", "ik_run", "-l", "a=b", "busybox", "sleep", "300").strip()
    yield container
    shared_daemon.ok("rm", "-f", "ik_run")


def test_container_inspect_has_every_key_dockerd_sends(shared_daemon: Daemon, running: str) -> None:
    data = shared_daemon.inspect("ik_run")
    container_keys = {**KEYS["container"]}
    container_keys["NetworkSettings.Networks.*"] = [
        *container_keys["NetworkSettings.Networks.*"],
        *KEYS["api_1_44"]["NetworkSettings.Networks.*"],
    ]
    assert missing(data, container_keys) == {}
    host_config = data["HostConfig"]
    assert host_config["ShmSize"] == 64 << 20 and host_config["PortBindings"] == {} and host_config["Dns"] == []
    assert host_config["MaskedPaths"][0] == "/proc/asound" and host_config["LogConfig"]["Type"] == "json-file"
    assert data["NetworkSettings"]["SandboxKey"] == f"/proc/{data['State']['Pid']}/ns/net"
    assert Path(data["HostsPath"]).exists() and Path(data["GraphDriver"]["Data"]["UpperDir"]).is_dir()


def test_image_exec_stats_event_and_df_answers_have_every_key(shared_daemon: Daemon, running: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        assert missing(client.api.inspect_image("busybox"), KEYS["image"]) == {}
        created = client.api.exec_create("ik_run", "true")
        client.api.exec_start(created["Id"])
        assert missing(client.api.exec_inspect(created["Id"]), KEYS["exec"]) == {}
        stats = client.api.stats("ik_run", stream=False)
        stats_keys = {k: v for k, v in KEYS["stats"].items() if k != "memory_stats"}  # v2 hosts send other keys
        assert missing(stats, stats_keys) == {}
        since = int(time.time()) - 60
        events = list(client.events(since=since, until=int(time.time()) + 1, decode=True))
        container_event = next(e for e in events if e["Type"] == "container")
        image_event = next(e for e in events if e["Type"] == "image")
        assert list(container_event) == KEYS["event"]["container"] and list(image_event) == KEYS["event"]["image"]
        assert missing(client.api.df(), KEYS["system_df"]) == {}
    finally:
        client.close()


@needs_docker
def test_system_df_and_container_prune_with_filters(shared_daemon: Daemon, running: str) -> None:
    shared_daemon.ok("run", "--name", "ik_keep", "-l", "keep=yes", "busybox", "sh", "-c", "echo x > /file")
    shared_daemon.ok("run", "--name", "ik_gone", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /file")
    size = docker_ok(shared_daemon, "ps", "-a", "-s", "--filter", "name=ik_gone", "--format", "{{.Size}}")
    assert size.startswith("5kB (virtual 1.9")  # `docker ps -s`: what it wrote, and with its image
    lines = {line.split()[0]: line.split() for line in docker_ok(shared_daemon, "system", "df").splitlines()[1:]}
    assert lines["Images"][1:3] == ["1", "1"] and lines["Containers"][1:3] == ["3", "1"]
    refused = docker(shared_daemon, "container", "prune", "-f", "--filter", "colour=red")
    assert refused.code != 0 and "Invalid filter 'colour'" in refused.err
    pruned = docker_ok(shared_daemon, "container", "prune", "-f", "--filter", "label!=keep=yes")
    gone_id = shared_daemon.ok("ps", "-a", "-q", "--no-trunc", "--filter", "name=ik_keep").strip()
    assert "Total reclaimed space: 5kB" in pruned and gone_id not in pruned
    names = shared_daemon.ok("ps", "-a", "--filter", "name=ik_").split()
    assert "ik_keep" in names and "ik_gone" not in names and "ik_run" in names  # a running one is never pruned
    until = docker_ok(shared_daemon, "container", "prune", "-f", "--filter", "until=1h")
    assert "Total reclaimed space: 0B" in until  # ik_keep is younger than an hour
    docker_ok(shared_daemon, "container", "prune", "-f")
    assert "ik_keep" not in shared_daemon.ok("ps", "-a")


@needs_docker
def test_image_prune_removes_dangling_or_unused_images(shared_daemon: Daemon, running: str, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(shared_daemon.root / "rootfs-busybox", arcname=".")
    # A label makes it another image than busybox (which ik_run uses).
    other = docker_ok(shared_daemon, "import", "-c", "LABEL prune=me", str(tarball), "ik_other:1").strip()
    docker_ok(shared_daemon, "tag", "ik_other:1", "ik_other:2")
    assert "Total reclaimed space: 0B" in docker_ok(shared_daemon, "image", "prune", "-f")  # none is dangling
    pruned = docker_ok(shared_daemon, "image", "prune", "-f", "-a", "--filter", "label=nope")
    assert "Total reclaimed space: 0B" in pruned  # the filter spares them all
    pruned = docker_ok(shared_daemon, "image", "prune", "-f", "-a")
    assert "untagged: ik_other:1" in pruned and f"deleted: {other}" in pruned
    assert "busybox" in docker_ok(shared_daemon, "images")  # ik_run uses it
