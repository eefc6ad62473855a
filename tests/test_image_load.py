"""`load`: `docker save` tarballs and OCI image layouts become images that run with their config's defaults.

Every archive is built here from files (no registry): a busybox layer, then a second layer that deletes a
file with a `.wh.` whiteout and replaces a directory's contents with an opaque whiteout. The image's config
sets Env, Entrypoint, Cmd and WorkingDir, and its command prints what shows that each took effect.

Archives are loaded the ways users load them: `logship load`, the real `docker load` (28.x), docker-py's
`images.load`, and the image store directly for the finer points of the formats. Hostile archives aim at a
sentinel directory outside the daemon's data root, which must stay empty.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pty
import random
import select
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard

from logship.cli.images import render_upload_bar
from logship.client import APIError, Client
from logship.errors import InvalidParameter
from logship.runtime.imagearchive import open_archive
from logship.runtime.imageload import archive_images, load_images
from logship.runtime.images import ImageStore
from logship.runtime.platforms import go_architecture
from tests.harness import LOGSHIP, Daemon, Result
from tests.rootfs import HOST_BUSYBOX, build_busybox_rootfs
from tests.tarballs import Entry, device, digest, directory, file, hardlink, hexdigest, symlink, tar_of

integration = pytest.mark.integration

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
needs_docker = pytest.mark.skipif(not os.path.exists(DOCKER), reason=f"the docker CLI is not installed ({DOCKER})")

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the image's own command prints when Env, WorkingDir, Entrypoint + Cmd and both whiteouts applied.
SCRIPT = 'echo "$GREETING from $(pwd)"; test -e /etc/gone.conf && echo "gone.conf survived"; ls /data/cache; cat note'
EXPECTED_OUTPUT = "hello from /app\nfresh.txt\nfrom layer 2\n"


# -- archive building ---------------------------------------------------------------------------------


def image_config(layers: list[bytes], architecture: str | None = None, **container: Any) -> bytes:
    """An image config as Docker writes one (compact JSON), its diff_ids those of `layers` uncompressed."""
    config = {
        "architecture": architecture or go_architecture(),
        "config": {"Env": [PATH_ENV], "Cmd": None, "Entrypoint": None, "WorkingDir": "", **container},
        "created": "2024-05-01T10:00:00.123456789Z",
        "history": [{"created": "2024-05-01T10:00:00.123456789Z", "created_by": "built by test_image_load"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(layer) for layer in layers]},
    }
    return json.dumps(config, separators=(",", ":")).encode()


@dataclass
class SavedImage:
    config: bytes
    layers: list[bytes]
    tags: list[str] | None = None

    @property
    def id(self) -> str:
        return digest(self.config)


def docker_save(*images: SavedImage, legacy: bool = False, layer_paths: list[str] | None = None) -> bytes:
    """A `docker save` tarball. Modern (Docker 25+): blobs/sha256/ with index.json and oci-layout beside
    manifest.json. Legacy: `<hex>.json` configs and `<dir>/layer.tar`, a layer two images share stored
    once and symlinked from the second. `layer_paths` overrides what manifest.json names (hostile cases)."""
    entries: list[Entry] = []
    manifest: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    stored: dict[str, str] = {}  # layer digest -> where it was first stored
    for number, image in enumerate(images):
        paths = []
        for position, layer in enumerate(image.layers):
            if legacy:
                layer_dir = hexdigest(b"%d/%d" % (number, position))
                path = f"{layer_dir}/layer.tar"
                first = stored.get(digest(layer))
                entries.append(directory(f"{layer_dir}/"))
                entries.append(symlink(path, f"../{first}") if first else file(path, layer))
                stored.setdefault(digest(layer), path)
            else:
                path = f"blobs/sha256/{hexdigest(layer)}"
                if digest(layer) not in stored:
                    entries.append(file(path, layer))
                    stored[digest(layer)] = path
            paths.append(path)
        config_path = f"{hexdigest(image.config)}.json" if legacy else f"blobs/sha256/{hexdigest(image.config)}"
        entries.append(file(config_path, image.config))
        manifest.append({"Config": config_path, "RepoTags": image.tags, "Layers": layer_paths or paths})
        if not legacy:
            oci_manifest = _oci_manifest(image.config, image.layers, "application/vnd.oci.image.layer.v1.tar")
            entries.append(file(f"blobs/sha256/{hexdigest(oci_manifest)}", oci_manifest))
            for tag in image.tags or [None]:
                annotations = {"io.containerd.image.name": f"docker.io/library/{tag}"} if tag else {}
                index.append({**_descriptor(oci_manifest, MANIFEST_TYPE), "annotations": annotations})
    entries.append(file("manifest.json", json.dumps(manifest).encode()))
    if not legacy:
        entries.append(file("index.json", json.dumps({"schemaVersion": 2, "manifests": index}).encode()))
        entries.append(file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
    return tar_of(*entries)


MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _descriptor(blob: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(blob), "size": len(blob), **extra}


def _oci_manifest(config: bytes, stored_layers: list[bytes], layer_type: str) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": _descriptor(config, "application/vnd.oci.image.config.v1+json"),
        "layers": [_descriptor(layer, layer_type) for layer in stored_layers],
    }
    return json.dumps(manifest).encode()


@dataclass
class OciImage:
    config: bytes
    layers: list[bytes]  # uncompressed; stored gzip-compressed
    platform: dict[str, str] = field(default_factory=lambda: {"os": "linux", "architecture": go_architecture()})


def oci_layout(
    *platforms: OciImage,
    annotations: dict[str, str] | None = None,
    layer_type: str = GZIP_LAYER,
    compress: Callable[[bytes], bytes] = gzip.compress,
) -> bytes:
    """An OCI image layout in a tar: index.json -> an index of one manifest per platform -> config and
    gzip-compressed layers, all under blobs/sha256/."""
    blobs: dict[str, bytes] = {}
    manifests = []
    for image in platforms:
        stored_layers = [compress(layer) for layer in image.layers]
        manifest = _oci_manifest(image.config, stored_layers, layer_type)
        for blob in (image.config, manifest, *stored_layers):
            blobs[hexdigest(blob)] = blob
        manifests.append(_descriptor(manifest, MANIFEST_TYPE, platform=image.platform))
    nested = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests}).encode()
    blobs[hexdigest(nested)] = nested
    index = {"schemaVersion": 2, "manifests": [_descriptor(nested, INDEX_TYPE, annotations=annotations or {})]}
    return tar_of(
        directory("blobs/"),
        directory("blobs/sha256/"),
        *(file(f"blobs/sha256/{name}", blob) for name, blob in blobs.items()),
        file("index.json", json.dumps(index).encode()),
        file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    )


# -- the two-layer image --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_layer(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Layer 1: busybox with its applet links, /app, a file and a directory that layer 2 removes."""
    if not HOST_BUSYBOX.exists():
        pytest.skip("needs /bin/busybox: apt-get install -y busybox-static")
    root = build_busybox_rootfs(tmp_path_factory.mktemp("layer1") / "rootfs")
    (root / "app").mkdir()
    (root / "etc" / "gone.conf").write_text("layer 1\n")
    (root / "data" / "cache" / "stale").mkdir(parents=True)
    (root / "data" / "cache" / "old.txt").write_text("layer 1\n")
    (root / "data" / "cache" / "stale" / "deep.txt").write_text("layer 1\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(root.iterdir()):
            archive.add(entry, arcname=entry.name)
    return buffer.getvalue()


TOP_LAYER = tar_of(
    directory("etc/"),
    file("etc/.wh.gone.conf"),
    directory("data/"),
    directory("data/cache/"),
    file("data/cache/.wh..wh..opq"),
    file("data/cache/fresh.txt", b"layer 2\n"),
    directory("app/"),
    file("app/note", b"from layer 2\n"),
)


@pytest.fixture(scope="module")
def layers(base_layer: bytes) -> list[bytes]:
    return [base_layer, TOP_LAYER]


def runnable_config(layers: list[bytes], **overrides: Any) -> bytes:
    defaults = {
        "Env": [PATH_ENV, "GREETING=hello"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": [SCRIPT],
        "WorkingDir": "/app",
    }
    return image_config(layers, **{**defaults, **overrides})


# -- the daemon side --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    loader = Daemon(tmp_path_factory.mktemp("logship-load"))
    loader.start()
    try:
        yield loader
    finally:
        loader.stop()


def write(daemon: Daemon, name: str, data: bytes) -> Path:
    path = daemon.root / name
    path.write_bytes(data)
    return path


def docker(daemon: Daemon, *args: str, input: bytes | None = None) -> Result:
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}
    done = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=env, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


def image_ids(daemon: Daemon) -> set[str]:
    return set(daemon.ok("images", "-q", "--no-trunc").split())


@integration
def test_logship_load_of_a_docker_save_tarball_runs_with_the_config_defaults_and_whiteouts(
    daemon: Daemon, layers: list[bytes]
) -> None:
    image = SavedImage(runnable_config(layers), layers, ["layered:1.0"])
    archive = write(daemon, "layered.tar", docker_save(image))

    result = daemon.cli("load", "-i", str(archive))

    assert (result.code, result.out, result.err) == (0, "Loaded image: layered:1.0\n", "")
    inspected = daemon.inspect("layered:1.0")
    assert inspected["Id"] == image.id  # Docker's rule: the digest of the config bytes
    assert inspected["Config"]["WorkingDir"] == "/app"
    assert daemon.ok("run", "--rm", "layered:1.0") == EXPECTED_OUTPUT


@integration
def test_load_reads_stdin_and_a_gzip_compressed_legacy_tarball(daemon: Daemon, layers: list[bytes]) -> None:
    image = SavedImage(runnable_config(layers, Env=[PATH_ENV, "GREETING=hello"]), layers, ["legacy:gz"])

    loaded = daemon.ok("load", input=gzip.compress(docker_save(image, legacy=True)))

    assert loaded == "Loaded image: legacy:gz\n"
    assert daemon.ok("run", "--rm", "legacy:gz") == EXPECTED_OUTPUT


@integration
@needs_docker
def test_the_docker_cli_loads_a_docker_save_tarball_and_runs_it(daemon: Daemon, layers: list[bytes]) -> None:
    image = SavedImage(runnable_config(layers, Env=[PATH_ENV, "GREETING=hello", "BY=docker"]), layers, ["bydocker:1"])
    archive = write(daemon, "bydocker.tar", docker_save(image))

    loaded = docker(daemon, "load", "-i", str(archive))
    assert (loaded.code, loaded.out, loaded.err) == (0, "Loaded image: bydocker:1\n", "")
    from_stdin = docker(daemon, "load", input=archive.read_bytes())
    assert (from_stdin.code, from_stdin.out) == (0, "Loaded image: bydocker:1\n")

    ran = docker(daemon, "run", "--rm", "bydocker:1")
    assert (ran.code, ran.out) == (0, EXPECTED_OUTPUT)
    assert docker(daemon, "image", "inspect", "--format", "{{.Id}}", "bydocker:1").out.strip() == image.id


@integration
@needs_docker
def test_the_docker_cli_on_a_terminal_shows_the_loading_layer_progress(daemon: Daemon, layers: list[bytes]) -> None:
    # A layer no other test loads: layers the store has already are not loaded again (nor shown), as in Docker.
    layers = [*layers, tar_of(file("progress.txt", b"shown"))]
    image = SavedImage(runnable_config(layers, Cmd=["echo progress"]), layers, ["progress:1"])
    archive = write(daemon, "progress.tar", docker_save(image))
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}

    code, screen = run_with_terminal([DOCKER, "load", "-i", str(archive)], env, terminal_on="stdout")

    assert code == 0
    assert "Loading layer" in screen
    assert f"{hexdigest(layers[-1])[:12]}: Loading layer" in screen
    assert "Loaded image: progress:1" in screen


@integration
def test_docker_py_loads_an_oci_layout_with_gzip_layers_choosing_this_platform(
    daemon: Daemon, layers: list[bytes]
) -> None:
    import docker as docker_py

    gzip_layers = [layers[0], TOP_LAYER]
    other = OciImage(
        image_config(gzip_layers, architecture="s390x", Cmd=["echo", "wrong platform"]),
        gzip_layers,
        {"os": "linux", "architecture": "s390x"},
    )
    # An Env of its own gives this image its own ID: the same config as another test's image would share it.
    this = OciImage(runnable_config(gzip_layers, Env=[PATH_ENV, "GREETING=hello", "FROM=oci"]), gzip_layers)
    archive = oci_layout(other, this, annotations={"io.containerd.image.name": "docker.io/library/oci-app:2"})

    client = docker_py.DockerClient(base_url=daemon.host)
    try:
        [image] = client.images.load(archive)
    finally:
        client.close()

    assert image.id == digest(this.config)
    assert image.tags == ["oci-app:2"]
    assert daemon.ok("run", "--rm", "oci-app:2") == EXPECTED_OUTPUT


@integration
def test_an_untagged_image_loads_by_id_and_is_listed_without_a_name(daemon: Daemon) -> None:
    layer = tar_of(file("only.txt", b"untagged"))
    image = SavedImage(image_config([layer], Cmd=["true"]), [layer], None)

    assert daemon.ok("load", input=docker_save(image)) == f"Loaded image ID: {image.id}\n"

    listing = daemon.ok("images")
    assert f"<none>       <none>   {image.id.removeprefix('sha256:')[:12]}" in listing


@integration
def test_reloading_an_image_is_fine_and_a_tag_taken_from_another_image_is_reported(daemon: Daemon) -> None:
    first_layer, second_layer = tar_of(file("v", b"1")), tar_of(file("v", b"2"))
    first = SavedImage(image_config([first_layer], Cmd=["true"]), [first_layer], ["moving:latest", "moving:1"])
    second = SavedImage(image_config([second_layer], Cmd=["true"]), [second_layer], ["moving:latest"])

    assert daemon.ok("load", input=docker_save(first)) == "Loaded image: moving:latest\nLoaded image: moving:1\n"
    assert daemon.ok("load", input=docker_save(first)) == "Loaded image: moving:latest\nLoaded image: moving:1\n"
    assert daemon.ok("load", input=docker_save(second)) == (
        f"The image moving:latest already exists, renaming the old one with ID {first.id} to empty string\n"
        "Loaded image: moving:latest\n"
    )

    assert daemon.inspect("moving:latest")["Id"] == second.id
    assert daemon.inspect("moving:1")["Id"] == first.id


@integration
def test_import_still_makes_an_image_from_a_flat_rootfs_which_load_refuses_naming_import(
    daemon: Daemon, base_layer: bytes
) -> None:
    flat = write(daemon, "flat.tar", base_layer)

    image_id = daemon.ok("import", str(flat), "flat:1").strip()
    refused = daemon.cli("load", "-i", str(flat))

    assert daemon.ok("run", "--rm", "flat:1", "cat", "/etc/gone.conf") == "layer 1\n"
    assert daemon.inspect("flat:1")["Id"] == image_id
    assert refused.code == 1
    assert refused.err == (
        "Error response from daemon: the archive holds neither manifest.json (a `docker save` tarball) nor "
        "index.json (an OCI image layout): to make an image from a root filesystem tarball, use `import` "
        "instead of `load`\n"
    )


# -- the wire format ----------------------------------------------------------------------------------


@integration
def test_the_api_streams_dockers_json_messages_with_progress_unless_quiet(daemon: Daemon) -> None:
    layer = tar_of(file("big.bin", os.urandom(1_500_000)))
    image = SavedImage(image_config([layer], Cmd=["true"]), [layer], ["wire:1"])
    client = Client(daemon.host)

    response = client.request("POST", "/images/load", {"quiet": "0"}, docker_save(image))
    body = response.read()

    assert response.getheader("Content-Type") == "application/json"
    lines = body.split(b"\r\n")
    assert lines[-1] == b""  # every message ends with CRLF, as dockerd's streamformatter writes them
    progress = [json.loads(line) for line in lines[:-2]]
    assert progress and all(message["status"] == "Loading layer" for message in progress)
    assert {message["id"] for message in progress} == {hexdigest(layer)[:12]}
    assert progress[-1]["progressDetail"] == {"current": len(layer), "total": len(layer)}
    assert b'"progress":"[==================================================\\u003e]' in lines[-3]
    assert lines[-2] == b'{"stream":"Loaded image: wire:1\\n"}'

    quiet = client.request("POST", "/images/load", {"quiet": "1"}, docker_save(image)).read()
    assert quiet == b'{"stream":"Loaded image: wire:1\\n"}\r\n'


@integration
def test_a_failure_during_the_load_is_the_last_message_and_one_before_it_a_plain_400(
    daemon: Daemon, tmp_path: Path
) -> None:
    bad_layer = tar_of(file("ok.txt", b"x"), file("../escape.txt", b"x"))
    image = SavedImage(image_config([bad_layer]), [bad_layer], ["bad:1"])
    client = Client(daemon.host)

    streamed = client.request("POST", "/images/load", {"quiet": "1"}, docker_save(image))
    message = (
        f"cannot load layer 1 of 1 (blobs/sha256/{hexdigest(bad_layer)}) of manifest.json entry 1: "
        "refusing tar member '../escape.txt': its name '../escape.txt' contains '..', "
        "which would climb out of the image root"
    )
    assert streamed.status == 200
    assert (
        streamed.read()
        == json.dumps({"errorDetail": {"message": message}, "error": message}, separators=(",", ":")).encode() + b"\r\n"
    )

    with pytest.raises(APIError) as refused:
        client.request("POST", "/images/load", {"quiet": "1"}, b"not a tar archive" * 100)
    assert refused.value.status == 400
    assert "the image archive is not a tar file" in str(refused.value)


@integration
@needs_docker
def test_the_docker_cli_prints_load_errors_as_dockerd_makes_it(daemon: Daemon) -> None:
    bad_layer = tar_of(device("dev/null"))
    streamed = docker(daemon, "load", input=docker_save(SavedImage(image_config([bad_layer]), [bad_layer], ["x:1"])))
    before = docker(daemon, "load", input=b"")

    assert streamed.code == 1
    assert streamed.err.startswith("cannot load layer 1 of 1 ")
    assert "refusing tar member 'dev/null': it is a character device node" in streamed.err
    assert before.code == 1
    assert before.err == "Error response from daemon: the image archive is empty: no data was received\n"


# -- the progress bar -----------------------------------------------------------------------------------


def run_with_terminal(args: list[str], env: dict[str, str], terminal_on: str) -> tuple[int, str]:
    """Run with a pseudo-terminal as its stdout or stderr (the other stream is discarded); return the
    exit code and everything it drew on the terminal."""
    controller, terminal = pty.openpty()
    streams = {"stdout": terminal, "stderr": subprocess.DEVNULL} if terminal_on == "stdout" else {}
    if terminal_on == "stderr":
        streams = {"stdout": subprocess.DEVNULL, "stderr": terminal}
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, env=env, **streams)  # type: ignore[call-overload]
    os.close(terminal)
    screen = bytearray()
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            screen.extend(chunk)
    finally:
        os.close(controller)
    return process.wait(timeout=120), screen.decode(errors="replace")


@integration
def test_a_long_load_shows_an_upload_progress_bar_on_a_terminal(daemon: Daemon, layers: list[bytes]) -> None:
    big = tar_of(file("payload.bin", os.urandom(3 << 20)))
    image = SavedImage(image_config([*layers, big], Cmd=["true"]), [*layers, big], ["big:1"])
    archive = write(daemon, "big.tar", docker_save(image))
    size = archive.stat().st_size

    code, screen = run_with_terminal([*LOGSHIP, "load", "-i", str(archive)], daemon.env(), terminal_on="stderr")

    assert code == 0
    redraws = screen.replace("\r\n", "\n").split("\r")  # the terminal turns the final "\n" into "\r\n"
    assert len(redraws) > 3  # several frames, each drawn over the last
    assert redraws[-1].rstrip("\n") == render_upload_bar(size, size)
    assert render_upload_bar(size, size).startswith("Loading [" + "=" * 40 + "]")


@integration
def test_quiet_or_a_pipe_shows_no_progress_bar(daemon: Daemon, layers: list[bytes]) -> None:
    archive = write(daemon, "quiet.tar", docker_save(SavedImage(runnable_config(layers), layers, ["quiet:1"])))

    code, screen = run_with_terminal([*LOGSHIP, "load", "-q", "-i", str(archive)], daemon.env(), terminal_on="stderr")
    piped = daemon.cli("load", "-i", str(archive))

    assert (code, screen) == (0, "")
    assert (piped.code, piped.err) == (0, "")


def test_the_upload_bar_shows_bytes_sent_of_the_total() -> None:
    assert render_upload_bar(0, 4_000_000) == "Loading [>" + " " * 39 + "]       0B/4MB"
    assert render_upload_bar(1_000_000, 4_000_000) == "Loading [" + "=" * 10 + ">" + " " * 29 + "]      1MB/4MB"
    assert render_upload_bar(4_000_000, 4_000_000) == "Loading [" + "=" * 40 + "]      4MB/4MB"


# -- hostile archives -------------------------------------------------------------------------------------


@dataclass
class Hostile:
    archive: bytes
    error: str  # a part of the refusal that names what was wrong


def hostile_archives(sentinel: Path, victim: Path) -> dict[str, Hostile]:
    def with_layer(*entries: Entry) -> bytes:
        harmless = tar_of(file("ok.txt", b"fine"))
        layer = tar_of(*entries)
        return docker_save(SavedImage(image_config([harmless, layer]), [harmless, layer], ["hostile:1"]))

    honest = tar_of(file("app/note", b"honest"))
    tampered = tar_of(file("app/note", b"HONEST"))  # same length, so the tar still parses
    tampered_save = docker_save(SavedImage(image_config([honest]), [honest], ["hostile:1"])).replace(honest, tampered)
    escaping_link = tar_of(
        directory("abc/"),
        symlink("abc/layer.tar", "../../../../../../../../etc/hostname"),
        file("config.json", image_config([b""])),
        file("manifest.json", b'[{"Config": "config.json", "RepoTags": ["hostile:1"], "Layers": ["abc/layer.tar"]}]'),
    )
    return {
        "absolute path": Hostile(
            with_layer(file(f"{sentinel}/pwned", b"x")), f"its name '{sentinel}/pwned' is an absolute path"
        ),
        "dot-dot": Hostile(
            with_layer(file("../../../../../../../..{sentinel}/pwned", b"x")), "contains '..', which would climb out"
        ),
        "symlink outside, then a file through it": Hostile(
            with_layer(symlink("escape", str(sentinel)), file("escape/pwned", b"x")),
            "its path goes through the symbolic link 'escape'",
        ),
        "hard link outside": Hostile(with_layer(hardlink("stolen", str(victim))), "its hard link target"),
        "hard link with dot-dot": Hostile(
            with_layer(hardlink("stolen", f"../../../../../../../..{victim}")), "contains '..'"
        ),
        "device node": Hostile(with_layer(device("dev/sda")), "'dev/sda': it is a character device node"),
        "manifest layer path with dot-dot": Hostile(
            docker_save(
                SavedImage(image_config([honest]), [honest], ["hostile:1"]), layer_paths=["../outside/layer.tar"]
            ),
            "refusing layer 1 of manifest.json entry 1 '../outside/layer.tar': it contains '..'",
        ),
        "archive link pointing outside the archive": Hostile(
            escaping_link, "'abc/layer.tar': it links to '../../../../../../../../etc/hostname', outside the archive"
        ),
        "digest mismatch": Hostile(
            tampered_save,
            f"the blob blobs/sha256/{hexdigest(honest)} does not match its digest: "
            f"expected {digest(honest)}, got {digest(tampered)}",
        ),
    }


HOSTILE_CASES = list(hostile_archives(Path("/s"), Path("/v")))


@integration
@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_archives_are_refused_and_write_nothing_outside_the_data_root(daemon: Daemon, case: str) -> None:
    sentinel = daemon.root / "sentinel"
    sentinel.mkdir(exist_ok=True)
    victim = daemon.root / "victim"
    victim.write_bytes(b"secret")
    hostile = hostile_archives(sentinel, victim)[case]
    before = image_ids(daemon)

    result = daemon.cli("load", input=hostile.archive)

    assert result.code == 1
    assert hostile.error in result.err
    assert result.out == ""
    assert list(sentinel.iterdir()) == []
    assert victim.stat().st_nlink == 1
    assert image_ids(daemon) == before
    assert os.listdir(daemon.data_root / "images" / "tmp") == []


# -- the formats, through the image store ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "data")


def load_bytes(store: ImageStore, data: bytes, scratch: Path) -> list[str]:
    """Load an archive into the store; the report lines."""
    upload = (scratch / "upload").open("w+b")
    upload.write(data)
    said: list[str] = []
    with open_archive(upload, scratch) as archive:
        load_images(store, archive, archive_images(archive), said.append)
    return said


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


SMALL = tar_of(directory("etc/"), file("etc/a", b"a"), directory("var/"), file("var/b", b"b"))


@pytest.mark.parametrize(
    "compress", [bz2.compress, lzma.compress, lambda data: data], ids=["bzip2", "xz", "plain-oci-layers"]
)
def test_outer_archives_and_oci_layers_may_be_compressed_or_not(
    store: ImageStore, scratch: Path, compress: Callable[[bytes], bytes]
) -> None:
    image = OciImage(image_config([SMALL]), [SMALL])
    layer_type = GZIP_LAYER if compress is not None else ""
    archive = oci_layout(image, annotations={"org.opencontainers.image.ref.name": "app:1"}, compress=compress)

    said = load_bytes(store, compress(archive), scratch)

    assert said == ["Loaded image: app:1\n"] and layer_type
    assert (store.get("app:1").rootfs / "var/b").read_bytes() == b"b"


def test_a_legacy_save_of_two_images_sharing_a_layer_through_a_symlink_loads_both(
    store: ImageStore, scratch: Path
) -> None:
    own = tar_of(file("own.txt", b"second"))
    first = SavedImage(image_config([SMALL], Cmd=["one"]), [SMALL], ["one:1"])
    second = SavedImage(image_config([SMALL, own], Cmd=["two"]), [SMALL, own], ["two:1"])

    said = load_bytes(store, docker_save(first, second, legacy=True), scratch)

    assert said == ["Loaded image: one:1\n", "Loaded image: two:1\n"]
    assert (store.get("two:1").rootfs / "etc/a").read_bytes() == b"a"
    assert (store.get("two:1").rootfs / "own.txt").read_bytes() == b"second"


def test_oci_names_come_from_the_containerd_annotation_and_a_bare_ref_name_tag_loads_untagged(
    store: ImageStore, scratch: Path
) -> None:
    named = oci_layout(
        OciImage(image_config([SMALL], Cmd=["a"]), [SMALL]),
        annotations={
            "io.containerd.image.name": "registry.example.com:5000/team/app:v2",
            "org.opencontainers.image.ref.name": "v2",
        },
    )
    tag_only = OciImage(image_config([SMALL], Cmd=["b"]), [SMALL])

    assert load_bytes(store, named, scratch) == ["Loaded image: registry.example.com:5000/team/app:v2\n"]
    assert load_bytes(
        store, oci_layout(tag_only, annotations={"org.opencontainers.image.ref.name": "latest"}), scratch
    ) == [f"Loaded image ID: {digest(tag_only.config)}\n"]


def test_one_image_under_two_names_in_an_index_loads_once_with_both_tags(store: ImageStore, scratch: Path) -> None:
    image = SavedImage(image_config([SMALL]), [SMALL], ["app:1", "app:latest"])
    archive = docker_save(image)
    members = tarfile.open(fileobj=io.BytesIO(archive))  # noqa: SIM115 - in memory
    # Read it as an OCI layout only: the same archive without manifest.json.
    oci_only = tar_of(
        *(
            (info, members.extractfile(info).read())  # type: ignore[union-attr]
            for info in members.getmembers()
            if info.name != "manifest.json"
        )
    )

    assert load_bytes(store, oci_only, scratch) == ["Loaded image: app:1\n", "Loaded image: app:latest\n"]
    assert [image.repo_tags for image in store.list()] == [["app:1", "app:latest"]]


def test_an_index_without_this_platform_and_several_others_is_refused_naming_them(
    store: ImageStore, scratch: Path
) -> None:
    others = [
        OciImage(image_config([SMALL]), [SMALL], {"os": "linux", "architecture": arch, "variant": "v7"})
        for arch in ("mips64le", "loong64")
    ]

    with pytest.raises(InvalidParameter) as refused:
        load_bytes(store, oci_layout(*others), scratch)

    assert f"has no image for linux/{go_architecture()} (it has linux/mips64le/v7, linux/loong64/v7)" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("layer_type", "message"),
    [
        ("application/vnd.example.squashfs", "has the media type 'application/vnd.example.squashfs', which is not"),
    ],
)
def test_layers_of_a_kind_logship_cannot_apply_are_refused_before_reading_them(
    store: ImageStore, scratch: Path, layer_type: str, message: str
) -> None:
    archive = oci_layout(OciImage(image_config([SMALL]), [SMALL]), layer_type=layer_type)

    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_bytes(store, archive, scratch)
    assert store.list() == []


def test_zstd_compressed_layers_of_an_oci_layout_load(store: ImageStore, scratch: Path) -> None:
    archive = oci_layout(
        OciImage(image_config([SMALL]), [SMALL]),
        layer_type="application/vnd.oci.image.layer.v1.tar+zstd",
        compress=zstandard.ZstdCompressor().compress,
    )

    load_bytes(store, archive, scratch)

    (image,) = store.list()
    assert image.config["rootfs"]["diff_ids"] == [digest(SMALL)]
    assert image.rootfs.is_dir()


def test_a_layer_that_does_not_match_the_configs_diff_id_is_refused(store: ImageStore, scratch: Path) -> None:
    lying = SavedImage(image_config([tar_of(file("other", b"x"))]), [SMALL], ["liar:1"])

    with pytest.raises(InvalidParameter) as refused:
        load_bytes(store, docker_save(lying, legacy=True), scratch)

    assert f"its content has the digest {digest(SMALL)}, but the image config's rootfs.diff_ids says" in str(
        refused.value
    )
    assert store.list() == []


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (b"", "the image archive is empty"),
        (gzip.compress(b"garbage" * 100), "the image archive is not a tar file"),
        (gzip.compress(random.Random(7).randbytes(100_000))[:200], "cannot decompress the image archive"),
        (b"\x28\xb5\x2f\xfd" + b"\xff" * 64, "cannot decompress the image archive"),
        (tar_of(file("manifest.json", b"{}")), "manifest.json must be a non-empty list of images"),
        (tar_of(file("manifest.json", b"[{")), "manifest.json is not valid JSON"),
        (tar_of(file("index.json", b"{}")), "the archive has index.json but no oci-layout file"),
    ],
    ids=["empty", "gzip-garbage", "cut-gzip", "zstd", "manifest-not-a-list", "manifest-not-json", "no-oci-layout"],
)
def test_archives_that_are_not_image_archives_are_refused_saying_why(
    store: ImageStore, scratch: Path, archive: bytes, message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        load_bytes(store, archive, scratch)
    assert os.listdir(scratch) == ["upload"]  # no decompressed copy left behind


def test_a_truncated_archive_is_refused_before_any_layer_is_applied(store: ImageStore, scratch: Path) -> None:
    complete = docker_save(SavedImage(image_config([SMALL]), [SMALL], ["cut:1"]), legacy=True)
    # Legacy saves put the layer first; keep manifest.json readable by moving it to the front.
    members = tarfile.open(fileobj=io.BytesIO(complete))  # noqa: SIM115 - in memory
    entries = [(info, members.extractfile(info).read() if info.isreg() else b"") for info in members.getmembers()]  # type: ignore[union-attr]
    reordered = tar_of(*sorted(entries, key=lambda entry: not entry[0].name.endswith(".json")))
    layer_end = reordered.index(SMALL) + len(SMALL) // 2

    with pytest.raises(InvalidParameter, match=r"the image archive is truncated: .*layer\.tar"):
        load_bytes(store, reordered[:layer_end], scratch)


def test_an_image_for_another_operating_system_is_refused(store: ImageStore, scratch: Path) -> None:
    config = json.loads(image_config([SMALL]))
    config["os"] = "windows"
    windows = SavedImage(json.dumps(config).encode(), [SMALL], ["win:1"])

    with pytest.raises(InvalidParameter, match="is for the operating system 'windows': logship runs Linux images only"):
        load_bytes(store, docker_save(windows), scratch)


def test_manifest_repo_tags_need_a_tag_as_in_docker(store: ImageStore, scratch: Path) -> None:
    untagged_name = SavedImage(image_config([SMALL]), [SMALL], ["busybox"])

    with pytest.raises(InvalidParameter, match=r"invalid tag 'busybox' in RepoTags of manifest\.json entry 1"):
        load_bytes(store, docker_save(untagged_name), scratch)
