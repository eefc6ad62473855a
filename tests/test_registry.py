"""Pull, push, login against a real registry: Debian's docker-registry (distribution 2.8) on 127.0.0.1
(tests/registry.py), plain HTTP as an insecure registry, HTTPS with a test CA in certs.d, htpasswd basic
auth, and token auth behind a small token issuer. Images go up from one logship daemon (made with
`load`) and come down into another with a fresh data root, where they run.

The hostile cases a real registry cannot be made to produce (endless redirects, a huge manifest, a blob
longer than its manifest says) come from `HostileRegistry`, a few routes written from the distribution
spec; everything else is the real registry.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from logship.runtime.platforms import go_architecture
from tests.harness import LOGSHIP, Daemon
from tests.registry import PASSWORD, USER, Registry, available, free_port
from tests.rootfs import HOST_BUSYBOX, build_busybox_rootfs
from tests.tarballs import digest, file, tar_of
from tests.test_image_load import DOCKER, SavedImage, docker_save, image_config, run_with_terminal
from tests.tls import make_ca

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="needs Debian's docker-registry and htpasswd (sh .ci/setup)"),
    pytest.mark.skipif(not HOST_BUSYBOX.exists(), reason="needs /bin/busybox: apt-get install -y busybox-static"),
]

TOP = tar_of(file("etc/motd", b"pushed by logship\n"))


def busybox_layer(root: Path) -> bytes:
    rootfs = build_busybox_rootfs(root / "rootfs")
    return subprocess.run(["tar", "-C", str(rootfs), "-cf", "-", "."], check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return busybox_layer(tmp_path_factory.mktemp("base"))


def load_image(daemon: Daemon, name: str, layers: list[bytes], **config: Any) -> str:
    image = SavedImage(image_config(layers, **config), layers, [name])
    archive = daemon.root / f"{name.replace('/', '_').replace(':', '_')}.tar"
    archive.write_bytes(docker_save(image))
    daemon.ok("load", "-i", str(archive))
    return image.id


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_TAR_LAYER = "application/vnd.docker.image.rootfs.diff.tar"


def manifest_of(config: bytes, layers: list[tuple[bytes, int]], media_type: str, layer_type: str) -> bytes:
    """A manifest naming `config` and each (stored layer, size it claims)."""
    config_type = "application/vnd.oci.image.config.v1+json" if "oci" in media_type else DOCKER_CONFIG
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": digest(layer), "size": size} for layer, size in layers],
        }
    ).encode()


DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry"), "plain") as registry:
        yield registry


@pytest.fixture(scope="module")
def pusher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("pusher"))
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture
def puller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """A daemon with a fresh data root, and a CLI with its own credentials file."""
    monkeypatch.setenv("LOGSHIP_CONFIG", str(tmp_path / "cli-config"))
    daemon = Daemon(tmp_path / "puller")
    daemon.start()
    yield daemon
    daemon.stop()


# -- plain HTTP: push, pull into a fresh data root, run ----------------------------------------------------


def test_an_image_made_with_load_is_pushed_pulled_into_a_fresh_data_root_and_run(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    name = f"{plain.host}/app:1"
    image_id = load_image(pusher, name, [base, TOP], Cmd=["cat", "/etc/motd"])

    pushed = pusher.ok("push", name)
    assert f"The push refers to repository [{plain.host}/app]" in pushed
    assert "Pushed" in pushed and "1: digest: sha256:" in pushed

    pulled = puller.ok("pull", name)
    assert "1: Pulling from app" in pulled and "Pull complete" in pulled
    assert f"Status: Downloaded newer image for {name}" in pulled
    inspected = puller.inspect(name)
    assert inspected["Id"] == image_id  # the config went up and came down byte for byte
    manifest_digest = pulled.split("Digest: ")[1].split()[0]
    assert inspected["RepoDigests"] == [f"{plain.host}/app@{manifest_digest}"]
    assert puller.ok("run", "--rm", name) == "pushed by logship\n"

    again = puller.ok("pull", name)
    assert f"Status: Image is up to date for {name}" in again


def test_a_pulled_image_pushed_elsewhere_keeps_its_id_and_a_second_push_sends_nothing(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    name, again = f"{plain.host}/roundtrip:1", f"{plain.host}/roundtrip-copy:1"
    image_id = load_image(pusher, name, [base, tar_of(file("round", b"trip"))])
    pusher.ok("push", name)
    puller.ok("pull", name)
    puller.ok("tag", name, again)

    # Another repository: the registry does not lend it the blobs, so each layer's tar is rebuilt from the
    # layer store (tar-split) and sent; a second push finds them there.
    assert puller.ok("push", again).count("Pushed") == 2
    assert puller.ok("push", again).count("Layer already exists") == 2
    pusher.ok("pull", again)
    assert pusher.inspect(again)["Id"] == image_id


def test_pull_on_a_terminal_draws_a_bar_per_layer_in_place(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    name = f"{plain.host}/bars:1"
    load_image(pusher, name, [base, tar_of(file("bars", b"x"))])
    pusher.ok("push", name)

    code, screen = run_with_terminal([*LOGSHIP, "pull", name], puller.env(), terminal_on="stdout")

    assert code == 0
    assert "Downloading [" in screen or "Extracting [" in screen  # a bar: "[=====>    ]  1.2MB/2MB"
    assert "\x1b[2A" in screen or "\x1b[1A" in screen  # a layer's line rewritten in place, not appended
    assert screen.count("Pull complete") == 2


def test_pull_by_digest_stores_the_digest_reference_only(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    name = f"{plain.host}/bydigest:1"
    load_image(pusher, name, [base, tar_of(file("by-digest", b"x"))])
    pushed_digest = pusher.ok("push", name).split("digest: ")[1].split()[0]

    puller.ok("pull", f"{plain.host}/bydigest@{pushed_digest}")

    inspected = puller.inspect(f"{plain.host}/bydigest@{pushed_digest}")
    assert inspected["RepoTags"] == []
    assert inspected["RepoDigests"] == [f"{plain.host}/bydigest@{pushed_digest}"]


def test_a_second_image_on_the_same_base_downloads_only_its_own_layer(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    for number in (1, 2):
        load_image(pusher, f"{plain.host}/shared{number}:1", [base, tar_of(file(f"own{number}", b"x"))])
        pusher.ok("push", f"{plain.host}/shared{number}:1")

    puller.ok("pull", f"{plain.host}/shared1:1")
    second = puller.ok("pull", f"{plain.host}/shared2:1")

    assert second.count("Already exists") == 1 and second.count("Pull complete") == 1
    one, two = (puller.inspect(f"{plain.host}/shared{n}:1") for n in (1, 2))
    assert one["RootFS"]["Layers"][0] == two["RootFS"]["Layers"][0] if "Layers" in one["RootFS"] else True
    layers_dir = puller.data_root / "images" / "layers"
    assert len(os.listdir(layers_dir)) == 3  # base once, each image's own layer on it
    assert puller.ok("rmi", f"{plain.host}/shared1:1").count("Deleted:") == 2  # the image and its own layer
    assert puller.ok("run", "--rm", f"{plain.host}/shared2:1", "ls", "/own2") == "/own2\n"


def test_a_deleted_tag_and_an_unknown_repository_fail_with_dockers_message(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    name = f"{plain.host}/deleted:1"
    load_image(pusher, name, [base])
    pusher.ok("push", name)
    plain.delete_tag("deleted", "1")

    gone = puller.cli("pull", name)

    assert gone.code == 1
    assert (
        gone.err == f"Error response from daemon: manifest for {name} not found: manifest unknown: manifest unknown\n"
    )
    assert "No such object" in puller.cli("inspect", name).err
    unknown = puller.cli("pull", f"{plain.host}/never-pushed:1")
    assert unknown.err == (
        f"Error response from daemon: manifest for {plain.host}/never-pushed:1 not found: manifest unknown: "
        "manifest unknown\n"
    )


def test_run_pulls_a_missing_image_unless_told_never(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    name = f"{plain.host}/runme:1"
    load_image(pusher, name, [base], Cmd=["echo", "pulled and ran"])
    pusher.ok("push", name)

    never = puller.cli("run", "--rm", "--pull", "never", name)
    assert never.code == 125 and f"Unable to find image '{name}' locally" in never.err

    ran = puller.cli("run", "--rm", name)
    assert (ran.code, ran.out) == (0, "pulled and ran\n")
    assert f"Unable to find image '{name}' locally" in ran.err and "Pull complete" in ran.err

    always = puller.cli("run", "--rm", "--pull", "always", name)
    assert always.code == 0 and f"Image is up to date for {name}" in always.err


def test_a_manifest_list_gives_this_platform_unless_another_is_asked_for(
    plain: Registry, puller: Daemon, base: bytes
) -> None:
    other = "arm64" if go_architecture() != "arm64" else "amd64"
    manifests = []
    for architecture, layer in ((go_architecture(), base), (other, tar_of(file("other-arch", b"x")))):
        config = image_config([layer], architecture=architecture, Cmd=["echo", f"on {architecture}"])
        stored = gzip.compress(layer, mtime=0)
        plain.put("multi", f"blobs/{digest(stored)}", stored, "")
        plain.put("multi", f"blobs/{digest(config)}", config, "")
        manifest = manifest_of(
            config, [(stored, len(stored))], OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+gzip"
        )
        plain.put("multi", f"manifests/{digest(manifest)}", manifest, "application/vnd.oci.image.manifest.v1+json")
        platform = {"os": "linux", "architecture": architecture}
        manifests.append(
            {"mediaType": OCI_MANIFEST, "digest": digest(manifest), "size": len(manifest), "platform": platform}
        )
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    ).encode()
    plain.put("multi", "manifests/1", index, "application/vnd.oci.image.index.v1+json")

    puller.ok("pull", f"{plain.host}/multi:1")
    assert puller.ok("run", "--rm", f"{plain.host}/multi:1") == f"on {go_architecture()}\n"
    assert puller.inspect(f"{plain.host}/multi:1")["RepoDigests"] == [f"{plain.host}/multi@{digest(index)}"]

    puller.ok("pull", "--platform", f"linux/{other}", f"{plain.host}/multi:1")
    assert puller.inspect(f"{plain.host}/multi:1")["Architecture"] == other

    missing = puller.cli("pull", "--platform", "linux/s390x", f"{plain.host}/multi:1")
    assert missing.code == 1 and "no matching manifest for linux/s390x" in missing.err


def test_an_interrupted_download_is_resumed_from_its_partial_file(
    plain: Registry, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    name = f"{plain.host}/resume:1"
    load_image(pusher, name, [base])
    pusher.ok("push", name)
    layer_digest = _manifest_layers(plain, "resume", "1")[0]
    downloads = puller.data_root / "images" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    # What an interrupted pull left: the first 100 kB of the blob; here altered, so that a pull which really
    # resumes (Range from 100 kB on) ends with a blob that does not match its digest.
    (downloads / f"{layer_digest.partition(':')[2]}.partial").write_bytes(b"\0" * 100_000)

    resumed = puller.cli("pull", name)
    assert resumed.code == 1 and f"the layer {layer_digest} the registry sent has the digest" in resumed.err

    assert "Pull complete" in puller.ok("pull", name)  # the bad partial file was dropped: a clean download
    assert os.listdir(downloads) == []


def _manifest_layers(registry: Registry, repository: str, tag: str) -> list[str]:
    import urllib.request

    accept = "application/vnd.docker.distribution.manifest.v2+json"
    request = urllib.request.Request(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
    with urllib.request.urlopen(request) as answer:
        return [layer["digest"] for layer in json.load(answer)["layers"]]


def test_a_layer_with_path_traversal_is_refused_and_nothing_is_written_outside_the_store(
    plain: Registry, puller: Daemon, tmp_path: Path
) -> None:
    hostile = tar_of(file("ok.txt", b"fine"), file("../../../../escaped-by-layer", b"bad"))
    config = image_config([hostile])
    plain.put("hostile", f"blobs/{digest(hostile)}", hostile, "")
    plain.put("hostile", f"blobs/{digest(config)}", config, "")
    manifest = manifest_of(
        config, [(hostile, len(hostile))], DOCKER_MANIFEST, "application/vnd.docker.image.rootfs.diff.tar"
    )
    plain.put("hostile", "manifests/1", manifest, "application/vnd.docker.distribution.manifest.v2+json")

    refused = puller.cli("pull", f"{plain.host}/hostile:1")

    assert refused.code == 1 and "'../../../../escaped-by-layer'" in refused.err and "'..'" in refused.err
    assert not list(Path("/").glob("escaped-by-layer")) and not list(tmp_path.rglob("escaped-by-layer"))
    assert os.listdir(puller.data_root / "images" / "layers") == []
    assert os.listdir(puller.data_root / "images" / "tmp") == []


# -- registries that lie: sizes, redirects, huge manifests ------------------------------------------------


class HostileRegistry:
    """A few registry routes written from the distribution spec, each lying in one way; served by aiohttp
    on 127.0.0.1 from a thread."""

    def __init__(self, layer: bytes) -> None:
        self.layer = layer
        self.config = image_config([layer])
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def manifest(self, size: int) -> bytes:
        return manifest_of(
            self.config, [(self.layer, size)], DOCKER_MANIFEST, "application/vnd.docker.image.rootfs.diff.tar"
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        kind = path.split("/")[2] if path.count("/") > 2 else ""
        if path == "/v2/":
            return web.json_response({})
        if path.endswith("/manifests/loop") or "/redirect/" in path:
            return web.Response(status=307, headers={"Location": f"/redirect/{len(path)}"})
        if path.endswith("/manifests/huge"):
            return web.Response(body=b'{"layers": [' + b" " * (5 << 20) + b"]}", content_type="application/json")
        if path.endswith("/manifests/short"):  # says the layer is smaller than it is
            body = self.manifest(len(self.layer) // 2)
            return web.Response(body=body, content_type="application/vnd.docker.distribution.manifest.v2+json")
        if f"/blobs/{digest(self.config)}" in path:
            return web.Response(body=self.config)
        if f"/blobs/{digest(self.layer)}" in path:
            return web.Response(body=self.layer)
        return web.json_response({"errors": [{"code": "NAME_UNKNOWN", "message": kind}]}, status=404)

    def __enter__(self) -> HostileRegistry:
        self._thread.start()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)

        async def start() -> None:
            assert self._runner is not None
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("loop", "stopped after 10 redirects"),
        ("huge", "more than the 4194304 a manifest may be"),
        ("short", "the registry sent more than the"),
    ],
)
def test_a_hostile_registry_is_refused_clearly_and_leaves_nothing(puller: Daemon, tag: str, message: str) -> None:
    with HostileRegistry(tar_of(file("x", b"x" * 4096))) as hostile:
        refused = puller.cli("pull", f"127.0.0.1:{hostile.port}/lies:{tag}")

    assert refused.code == 1 and message in refused.err
    images = puller.data_root / "images"
    assert os.listdir(images / "layers") == [] and os.listdir(images / "tmp") == []
    assert [name for name in os.listdir(images / "downloads") if not name.endswith(".partial")] == []


# -- TLS, basic auth, token auth --------------------------------------------------------------------------


def test_tls_checked_against_the_ca_in_certs_d(tmp_path: Path, pusher: Daemon, puller: Daemon, base: bytes) -> None:
    with Registry(tmp_path / "tls", "tls") as registry:
        name = f"{registry.host}/secure:1"
        load_image(pusher, name, [base])
        registry.certs_d(pusher.root)
        pusher.ok("push", name)
        # Another CA in the puller's certs.d: the registry's certificate is checked against it, and refused.
        other_ca, _ = make_ca(tmp_path / "other-ca", "another CA")
        (puller.root / "certs.d" / registry.host).mkdir(parents=True)
        shutil.copy(other_ca, puller.root / "certs.d" / registry.host / "ca.crt")
        refused = puller.cli("pull", name)
        assert refused.code == 1 and "failed to verify certificate" in refused.err
        assert f"certs.d/{registry.host}/ca.crt" in refused.err

        registry.certs_d(puller.root)
        assert "Pull complete" in puller.ok("pull", name)


def test_basic_auth_login_push_pull_logout_with_dockers_messages(
    tmp_path: Path, pusher: Daemon, puller: Daemon, base: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Registry(tmp_path / "basic", "basic") as registry:
        name = f"{registry.host}/private:1"
        load_image(pusher, name, [base])
        monkeypatch.setenv("LOGSHIP_CONFIG", str(tmp_path / "pusher-config"))

        anonymous = pusher.cli("push", name)
        assert anonymous.code == 1 and "no basic auth credentials" in anonymous.err
        wrong = pusher.cli("login", "-u", USER, "--password-stdin", registry.host, input=b"wrong\n")
        assert wrong.code == 1
        assert wrong.err.endswith(
            f"Error response from daemon: login attempt to https://{registry.host}/v2/ failed with status: "
            "401 Unauthorized\n"
        )
        assert not (tmp_path / "pusher-config" / "config.json").exists()

        assert pusher.ok("login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD.encode()).strip() == (
            "Login Succeeded"
        )
        stored = json.loads((tmp_path / "pusher-config" / "config.json").read_text())
        assert stored == {"auths": {registry.host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}
        assert oct((tmp_path / "pusher-config" / "config.json").stat().st_mode & 0o777) == "0o600"
        pusher.ok("push", name)
        pulled = pusher.ok("pull", name)
        assert "Image is up to date" in pulled
        assert pusher.ok("logout", registry.host) == f"Removing login credentials for {registry.host}\n"
        assert "no basic auth credentials" in pusher.cli("pull", name).err
        # Never in the daemon's log.
        assert (
            PASSWORD not in pusher.daemon_log()
            and base64.b64encode(PASSWORD.encode()).decode() not in pusher.daemon_log()
        )


def test_token_auth_through_the_token_issuer(
    tmp_path: Path, pusher: Daemon, base: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGSHIP_CONFIG", str(tmp_path / "token-config"))
    with Registry(tmp_path / "token", "token") as registry:
        name = f"{registry.host}/tokened:1"
        load_image(pusher, name, [base, tar_of(file("tokened", b"x"))])

        anonymous = pusher.cli("push", name)
        assert anonymous.code == 1 and "unauthorized: authentication required" in anonymous.err
        wrong = pusher.cli("login", "-u", USER, "-p", "nope", registry.host)
        refusal = f'Get "https://{registry.host}/v2/": unauthorized: incorrect username or password'
        assert wrong.err.endswith(f"Error response from daemon: {refusal}\n")
        pusher.ok("login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD.encode())
        pusher.ok("push", name)
        pusher.ok("rmi", name)
        assert "Pull complete" in pusher.ok("pull", name)
        assert registry.issuer is not None
        assert {"account": USER, "scope": ["repository:tokened:pull,push"]} in registry.issuer.requests


# -- mirrors ------------------------------------------------------------------------------------------------


def test_docker_hub_pulls_go_to_a_registry_mirror(tmp_path: Path, plain: Registry, pusher: Daemon, base: bytes) -> None:
    load_image(pusher, f"{plain.host}/library/mirrored:1", [base], Cmd=["echo", "from the mirror"])
    pusher.ok("push", f"{plain.host}/library/mirrored:1")
    daemon = Daemon(tmp_path / "mirrored", config={"registry-mirrors": [plain.url]})
    with daemon.started():
        pulled = daemon.ok("pull", "mirrored:1")
        assert "Status: Downloaded newer image for mirrored:1" in pulled
        assert daemon.ok("run", "--rm", "mirrored:1") == "from the mirror\n"


# -- the docker CLI and docker-py through logship -----------------------------------------------------------

needs_docker = pytest.mark.skipif(not os.path.exists(DOCKER), reason=f"the docker CLI is not installed ({DOCKER})")


@needs_docker
def test_the_docker_cli_logs_in_pushes_and_pulls_through_logship(
    tmp_path: Path, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    with Registry(tmp_path / "basic", "basic") as registry:
        name = f"{registry.host}/bydocker:1"
        load_image(pusher, name, [base, tar_of(file("bydocker", b"x"))], Cmd=["cat", "/bydocker"])
        registry.certs_d(pusher.root)
        registry.certs_d(puller.root)

        def docker(daemon: Daemon, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
            return subprocess.run(
                [DOCKER, *args],
                env=env,
                input=stdin.decode() if stdin else None,
                capture_output=True,
                text=True,
                timeout=120,
            )

        wrong = docker(pusher, "login", "-u", USER, "--password-stdin", registry.host, stdin=b"nope")
        assert wrong.returncode == 1 and "401 Unauthorized" in wrong.stderr
        login = docker(pusher, "login", "-u", USER, "--password-stdin", registry.host, stdin=PASSWORD.encode())
        assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
        pushed = docker(pusher, "push", name)
        assert pushed.returncode == 0 and "1: digest: sha256:" in pushed.stdout, pushed.stderr
        pulled = docker(puller, "pull", name)
        assert pulled.returncode == 0 and f"Downloaded newer image for {name}" in pulled.stdout, pulled.stderr
        assert docker(puller, "run", "--rm", name).stdout == "x"


def test_docker_py_logs_in_pushes_and_pulls_through_logship(
    tmp_path: Path, pusher: Daemon, puller: Daemon, base: bytes
) -> None:
    import docker as docker_py

    with Registry(tmp_path / "basic", "basic") as registry:
        name = f"{registry.host}/bydockerpy"
        load_image(pusher, f"{name}:1", [base, tar_of(file("bydockerpy", b"x"))])
        registry.certs_d(pusher.root)
        registry.certs_d(puller.root)
        auth = {"username": USER, "password": PASSWORD}
        up = docker_py.DockerClient(base_url=pusher.host)
        down = docker_py.DockerClient(base_url=puller.host)
        try:
            assert up.login(USER, PASSWORD, registry=registry.host)["Status"] == "Login Succeeded"
            with pytest.raises(docker_py.errors.APIError, match="401 Unauthorized"):
                up.login(USER, "nope", registry=registry.host, reauth=True)
            statuses = [json.loads(line) for line in up.images.push(name, tag="1", auth_config=auth).splitlines()]
            assert any("aux" in status for status in statuses) and not any("error" in s for s in statuses)
            image = down.images.pull(name, tag="1", auth_config=auth)
            assert image.id == up.images.get(f"{name}:1").id
        finally:
            up.close()
            down.close()
