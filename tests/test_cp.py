"""`cp` (the archive API): both ways, running and stopped containers, links that try to climb out of the
container resolved inside it, hostile archives refused, and a large file streamed without the daemon
holding it in memory."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import socket
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, docker, docker_ok, needs_docker

pytestmark = pytest.mark.integration

BIG = 150 * 1024 * 1024  # over 100 MiB, as the issue asks


@pytest.fixture(scope="module")
def box(shared_daemon: Daemon) -> Iterator[str]:
    """A running container with a tree, and links aiming out of it: relative and absolute."""
    script = (
        "mkdir -p /data/sub /tmp/inside && echo one > /data/a && echo two > /data/sub/b && ln -s a /data/link"
        " && ln -s ../../../../../../../tmp /climb && ln -s /tmp /absolute && sleep 300"
    )
    container = shared_daemon.ok("run", "-d", "--name", "cp_box", "busybox", "sh", "-c", script).strip()
    shared_daemon.ok("exec", "cp_box", "sh", "-c", "while [ ! -e /absolute ]; do sleep 0.05; done")
    yield container
    shared_daemon.ok("rm", "-f", "cp_box")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=120)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self._path))


def put_archive(daemon: Daemon, container: str, path: str, body: bytes) -> tuple[int, str]:
    connection = UnixHTTP(daemon.socket)
    connection.request("PUT", f"/containers/{container}/archive?path={path}", body=body)
    response = connection.getresponse()
    return response.status, response.read().decode()


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@needs_docker
def test_a_directory_tree_copies_out_and_back_in(shared_daemon: Daemon, box: str, tmp_path: Path) -> None:
    docker_ok(shared_daemon, "cp", "cp_box:/data", str(tmp_path / "out"))
    assert (tmp_path / "out/a").read_text() == "one\n" and (tmp_path / "out/sub/b").read_text() == "two\n"
    assert os.readlink(tmp_path / "out/link") == "a"  # a link is copied as a link
    (tmp_path / "out/new").write_text("three\n")
    docker_ok(shared_daemon, "cp", str(tmp_path / "out"), "cp_box:/copied")  # a new name: the tree becomes it
    docker_ok(shared_daemon, "cp", str(tmp_path / "out"), "cp_box:/data")  # an existing dir: lands inside
    listing = docker_ok(shared_daemon, "exec", "cp_box", "sh", "-c", "cat /copied/new /data/out/sub/b; ls /copied")
    assert listing.split() == ["three", "two", "a", "link", "new", "sub"]
    owners = docker_ok(shared_daemon, "exec", "cp_box", "stat", "-c", "%u:%g", "/copied/new")
    assert owners == "0:0\n"  # owned by the container's root unless -a
    docker_ok(shared_daemon, "cp", "cp_box:/data/sub/b", str(tmp_path / "single"))
    assert (tmp_path / "single").read_text() == "two\n"


@needs_docker
def test_links_that_climb_out_resolve_inside_the_container(shared_daemon: Daemon, box: str, tmp_path: Path) -> None:
    probe = f"cp-escape-{uuid.uuid4().hex[:8]}"
    (tmp_path / probe).write_text("stays inside\n")
    # Through a relative link up many levels and through an absolute one: both mean the container's /tmp.
    docker_ok(shared_daemon, "cp", str(tmp_path / probe), f"cp_box:/climb/{probe}")
    docker_ok(shared_daemon, "cp", str(tmp_path / probe), f"cp_box:/absolute/inside/{probe}")
    assert not Path("/tmp", probe).exists() and not Path("/tmp/inside", probe).exists()
    found = docker_ok(shared_daemon, "exec", "cp_box", "cat", f"/tmp/{probe}", f"/tmp/inside/{probe}")
    assert found == "stays inside\n" * 2
    docker_ok(shared_daemon, "cp", "cp_box:/climb/../../etc/hostname", str(tmp_path / "hostname"))
    assert (tmp_path / "hostname").read_text().strip() == box[:12]  # the container's, not this machine's
    head = docker(shared_daemon, "cp", "cp_box:/absolute/../../nonexistent", str(tmp_path / "x"))
    assert head.code == 1 and "Could not find the file" in head.err


@needs_docker
@pytest.mark.parametrize(
    ("member", "message"),
    [
        (tarfile.TarInfo("../../escaped"), "contains '..'"),
        (tarfile.TarInfo("/etc/escaped"), "is an absolute path"),
    ],
)
def test_a_hostile_archive_is_refused_and_nothing_is_written(
    shared_daemon: Daemon, box: str, member: tarfile.TarInfo, message: str
) -> None:
    status, body = put_archive(shared_daemon, "cp_box", "/tmp", tar_of((member, b"x")))
    assert status == 400 and message in json.loads(body)["message"]
    assert "escaped" not in docker_ok(shared_daemon, "exec", "cp_box", "find", "/", "-xdev", "-name", "escaped")


def test_an_archive_written_through_a_link_it_planted_is_refused(shared_daemon: Daemon, box: str) -> None:
    link = tarfile.TarInfo("planted")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    status, body = put_archive(
        shared_daemon, "cp_box", "/tmp", tar_of((link, b""), (tarfile.TarInfo("planted/x"), b"x"))
    )
    assert status == 400 and "goes through the symbolic link" in json.loads(body)["message"]


@needs_docker
def test_errors_name_the_path(shared_daemon: Daemon, box: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("f")
    missing = docker(shared_daemon, "cp", str(tmp_path / "f"), "cp_box:/no/such/dir/f")
    assert missing.code == 1 and "Could not find the file /no/such/dir" in missing.err
    status, body = put_archive(shared_daemon, "cp_box", "/data/a", tar_of((tarfile.TarInfo("x"), b"x")))
    assert status == 400 and "extraction point is not a directory" in body


@needs_docker
def test_a_stopped_container_is_copied_from_and_to(shared_daemon: Daemon, tmp_path: Path) -> None:
    shared_daemon.ok("run", "--name", "cp_stopped", "busybox", "sh", "-c", "echo written > /result")
    docker_ok(shared_daemon, "cp", "cp_stopped:/result", str(tmp_path / "result"))
    assert (tmp_path / "result").read_text() == "written\n"
    (tmp_path / "config").write_text("given\n")
    docker_ok(shared_daemon, "cp", str(tmp_path / "config"), "cp_stopped:/etc/app.conf")
    shared_daemon.ok("start", "-a", "cp_stopped")  # runs its command again; the file is still there
    docker_ok(shared_daemon, "cp", "cp_stopped:/etc/app.conf", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "given\n"
    shared_daemon.ok("rm", "cp_stopped")


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@needs_docker
def test_a_file_over_100_mib_streams_both_ways_without_the_daemon_holding_it(
    shared_daemon: Daemon, box: str, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:  # not sparse, not all zeros: every byte goes through the pipes
        block = os.urandom(1 << 20)
        for index in range(BIG >> 20):
            out.write(block[index:] + block[:index])
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert shared_daemon.process is not None
    before = peak_rss_kib(shared_daemon.process.pid)
    docker_ok(shared_daemon, "cp", str(big), "cp_box:/tmp/big.bin", timeout=300)
    docker_ok(shared_daemon, "cp", "cp_box:/tmp/big.bin", str(tmp_path / "back.bin"), timeout=300)
    grown_mib = (peak_rss_kib(shared_daemon.process.pid) - before) / 1024
    assert (tmp_path / "back.bin").stat().st_size == BIG
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == digest
    assert grown_mib < 48, f"the daemon's peak memory grew by {grown_mib:.0f} MiB copying {BIG >> 20} MiB"
    docker_ok(shared_daemon, "exec", "cp_box", "rm", "/tmp/big.bin")


def test_logship_cp_and_the_stat_header(shared_daemon: Daemon, box: str, tmp_path: Path) -> None:
    shared_daemon.ok("cp", "cp_box:/data/sub/.", str(tmp_path / "contents"))  # "/." copies what is inside
    assert os.listdir(tmp_path / "contents") == ["b"]
    archive = shared_daemon.cli("cp", "cp_box:/data/a", "-")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        assert tar.getnames() == ["a"] and tar.extractfile("a").read() == b"one\n"  # type: ignore[union-attr]
    (tmp_path / "in").write_text("in\n")
    shared_daemon.ok("cp", str(tmp_path / "in"), "cp_box:/tmp/renamed")
    assert shared_daemon.ok("exec", "cp_box", "cat", "/tmp/renamed") == "in\n"
    connection = UnixHTTP(shared_daemon.socket)
    connection.request("HEAD", "/containers/cp_box/archive?path=/data/link")
    response = connection.getresponse()
    response.read()
    stat = json.loads(base64.b64decode(response.getheader("X-Docker-Container-Path-Stat") or ""))
    assert stat["name"] == "link" and stat["linkTarget"] == "/data/a" and stat["mode"] & (1 << 27)


def test_docker_py_get_and_put_archive(shared_daemon: Daemon, box: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        container = client.containers.get("cp_box")
        assert container.put_archive("/tmp", tar_of((tarfile.TarInfo("from-py"), b"py\n")))
        chunks, stat = container.get_archive("/tmp/from-py")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            assert tar.extractfile("from-py").read() == b"py\n"  # type: ignore[union-attr]
        assert stat["name"] == "from-py" and stat["size"] == 3
    finally:
        client.close()
