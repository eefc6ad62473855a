"""`docker push`: an image's layers and config as blobs, then a manifest under each tag.

A registry that has a layer already is asked first: by the digest the layer was pulled as, and by the one
an earlier push made (remembered beside the layer, `pushed.json`); a HEAD answers and nothing is sent.
Otherwise the layer's exact tar is rebuilt from the layer store (`tarsplit`), gzipped into a temporary file
(so that its digest and size are known before the upload) and sent. The config is sent byte for byte: the
image keeps its ID on the registry.

The manifest is image manifest v2 schema 2, or an OCI manifest when a layer is OCI-only (zstd).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yarl

from logship.errors import InvalidParameter, NotFound
from logship.runtime.images import Image, ImageStore
from logship.runtime.layers import MEDIA_TYPE_TAR, Layer, chain_ids
from logship.runtime.reference import Reference, parse_reference
from logship.runtime.registry import manifests
from logship.runtime.registry.auth import Credentials
from logship.runtime.registry.client import Repository, raise_for_answer
from logship.runtime.registry.endpoints import RegistryConfig
from logship.runtime.registry.session import MAX_CONCURRENT_UPLOADS, Progress, Report, open_repository
from logship.runtime.tarsplit import has_split, layer_tar
from logship.runtime.tarstream import decompressed

_PUSHED = "pushed.json"
_CHUNK = 1 << 20
_PROGRESS_STEP = 512 << 10


@dataclass(frozen=True)
class PushedBlob:
    digest: str
    size: int
    media_type: str


class Pusher:
    def __init__(self, store: ImageStore, config: RegistryConfig, scratch: Path) -> None:
        self.store = store
        self.config = config
        self._scratch = scratch

    async def push(self, name: str, tag: str | None, credentials: Credentials, report: Report) -> list[str]:
        """Push `name:tag`, or every tag of `name` when `tag` is None (as `docker push name` does now);
        the "name@digest" references it made."""
        repository_ref = parse_reference(name)
        if repository_ref.digest is not None:
            raise InvalidParameter("cannot push a digest reference")
        if tag is None and repository_ref.tag is not None:
            tag = repository_ref.tag
        images = await asyncio.to_thread(self._images_to_push, repository_ref, tag)
        report(Progress(f"The push refers to repository [{_full_name(repository_ref)}]"))
        done = []
        async with open_repository(self.config, repository_ref, credentials, "pull,push") as repository:
            for tag_name, image in images:
                digest, size = await self._push_image(repository, image, tag_name, report)
                report(Progress(f"{tag_name}: digest: {digest} size: {size}"))
                report(Progress("", aux={"Tag": tag_name, "Digest": digest, "Size": size}))
                done.append(f"{repository_ref.familiar_name}@{digest}")
                await asyncio.to_thread(self.store.add_references, image.id, [done[-1]])
        return done

    def _images_to_push(self, reference: Reference, tag: str | None) -> list[tuple[str, Image]]:
        if tag is not None:
            tagged = f"{reference.familiar_name}:{tag}"
            try:
                return [(tag, self.store.get(tagged))]
            except NotFound:
                raise NotFound(f"An image does not exist locally with the tag: {reference.familiar_name}") from None
        found = []
        for image in self.store.list():
            for name in image.repo_tags:
                repository, _, tag_name = name.rpartition(":")
                if repository == reference.familiar_name:
                    found.append((tag_name, image))
        if not found:
            raise NotFound(f"An image does not exist locally with the tag: {reference.familiar_name}")
        return sorted(found, key=lambda pair: pair[0])

    async def _push_image(self, repository: Repository, image: Image, tag: str, report: Report) -> tuple[str, int]:
        diff_ids = image.config.get("rootfs", {}).get("diff_ids", [])
        chains = chain_ids(diff_ids)
        layers = [await asyncio.to_thread(self.store.layers.get, chain) for chain in chains]
        if any(layer is None for layer in layers):
            raise InvalidParameter(
                f"the image {image.id} was stored by an older logship without its layers' blobs: load or pull it "
                "again to push it"
            )
        for layer in layers:
            assert layer is not None
            report(Progress("Preparing", _short(layer.diff_id)))
        semaphore = asyncio.Semaphore(MAX_CONCURRENT_UPLOADS)

        async def upload(layer: Layer) -> PushedBlob:
            if semaphore.locked():
                report(Progress("Waiting", _short(layer.diff_id)))
            async with semaphore:
                return await self._push_layer(repository, layer, report)

        blobs = await asyncio.gather(*(upload(layer) for layer in layers if layer is not None))
        config_bytes = (self.store.directory / image.id.removeprefix("sha256:") / "config.json").read_bytes()
        config_digest = manifests.digest_of(config_bytes)
        if not await _blob_exists(repository, config_digest):
            await _upload_bytes(repository, config_digest, config_bytes)
        oci = any(blob.media_type.startswith("application/vnd.oci.") for blob in blobs)
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifests.OCI_MANIFEST if oci else manifests.DOCKER_MANIFEST,
            "config": {
                "mediaType": manifests.OCI_CONFIG if oci else manifests.DOCKER_CONFIG,
                "size": len(config_bytes),
                "digest": config_digest,
            },
            "layers": [
                {"mediaType": _layer_type(blob.media_type, oci), "size": blob.size, "digest": blob.digest}
                for blob in blobs
            ],
        }
        body = json.dumps(manifest, indent=3).encode()
        content_type = manifest["mediaType"]
        assert isinstance(content_type, str)
        response = await repository.request("PUT", f"manifests/{tag}", {"Content-Type": content_type}, body)
        async with response:
            await raise_for_answer(response, "PUT", "")
        return manifests.digest_of(body), len(body)

    async def _push_layer(self, repository: Repository, layer: Layer, report: Report) -> PushedBlob:
        """The blob the registry has for this layer already (the one it was pulled as, or the one an
        earlier push made), else the layer's tar rebuilt from the layer store, gzipped and uploaded."""
        layer_id = _short(layer.diff_id)
        for candidate in filter(None, (_remembered(layer), _as_pushed(layer))):
            if await _blob_exists(repository, candidate.digest):
                report(Progress("Layer already exists", layer_id))
                return candidate
        with tempfile.TemporaryDirectory(dir=self._scratch, prefix="push-") as scratch:
            compressed = Path(scratch) / "layer.tar.gz"
            blob = await asyncio.to_thread(_compressed_layer, layer, compressed)
            await _upload_file(repository, blob, compressed, report, layer_id)
        await asyncio.to_thread(_remember, layer, blob)
        report(Progress("Pushed", layer_id))
        return blob


async def _blob_exists(repository: Repository, digest: str) -> bool:
    response = await repository.request("HEAD", f"blobs/{digest}")
    async with response:
        if response.status == 404:
            return False
        await raise_for_answer(response, "HEAD", "")
        return True


async def _start_upload(repository: Repository) -> str:
    response = await repository.request("POST", "blobs/uploads/", {"Content-Length": "0"}, b"")
    async with response:
        await raise_for_answer(response, "POST", "")
        location = response.headers.get("Location")
        if not location:
            raise InvalidParameter("the registry started an upload without saying where to send it (no Location)")
        return str(response.url.join(yarl.URL(location)))


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + digest


async def _upload_bytes(repository: Repository, digest: str, data: bytes) -> None:
    location = await _start_upload(repository)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    response = await repository.request("PUT", _with_digest(location, digest), headers, data)
    async with response:
        await raise_for_answer(response, "PUT", "")


async def _upload_file(repository: Repository, blob: PushedBlob, path: Path, report: Report, layer_id: str) -> None:
    location = await _start_upload(repository)

    async def chunks() -> AsyncIterator[bytes]:
        sent = reported = 0
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, _CHUNK):
                sent += len(chunk)
                if sent - reported >= _PROGRESS_STEP or sent == blob.size:
                    reported = sent
                    report(Progress("Pushing", layer_id, sent, blob.size))
                yield chunk

    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
    response = await repository.request("PUT", _with_digest(location, blob.digest), headers, chunks())
    async with response:
        await raise_for_answer(response, "PUT", "")


def _compressed_layer(layer: Layer, target: Path) -> PushedBlob:
    """The layer's tar (rebuilt by `tarsplit`, or the blob a layer of the first store version kept),
    gzipped at level 1 (fast: the bytes go over a network anyway) with mtime 0, so the same layer always
    compresses to the same digest; hashed as written."""
    if has_split(layer.directory):
        chunks: Iterable[bytes] = layer_tar(layer.directory, layer.rootfs, layer.diff_id)
    elif layer.legacy_blob_path.exists():
        chunks = _legacy_tar(layer.legacy_blob_path)
    else:
        raise InvalidParameter(f"the layer {layer.diff_id} was stored without what push needs: pull or load it again")
    with target.open("wb") as raw:
        hashing = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=1, mtime=0) as compressed:
            for chunk in chunks:
                compressed.write(chunk)
    return PushedBlob("sha256:" + hashing.sha256.hexdigest(), target.stat().st_size, manifests.DOCKER_LAYER_GZIP)


def _legacy_tar(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        plain = decompressed(source)
        while chunk := plain.read(_CHUNK):
            yield chunk


class _HashingWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        return self._out.write(data)


def _remembered(layer: Layer) -> PushedBlob | None:
    try:
        record = json.loads((layer.directory / _PUSHED).read_bytes())
        return PushedBlob(record["digest"], int(record["size"]), record["mediaType"])
    except (OSError, ValueError, KeyError):
        return None


def _remember(layer: Layer, blob: PushedBlob) -> None:
    record = {"digest": blob.digest, "size": blob.size, "mediaType": blob.media_type}
    (layer.directory / _PUSHED).write_text(json.dumps(record))


def _as_pushed(layer: Layer) -> PushedBlob | None:
    blob = layer.blob
    return PushedBlob(blob.digest, blob.size, blob.media_type) if blob else None


def _layer_type(media_type: str, oci: bool) -> str:
    if not oci:
        return media_type
    return {
        manifests.DOCKER_LAYER_GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
        MEDIA_TYPE_TAR: "application/vnd.oci.image.layer.v1.tar",
    }.get(media_type, media_type)


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _full_name(reference: Reference) -> str:
    """ "docker.io/library/busybox", "127.0.0.1:5000/app": how dockerd names the repository it pushes to."""
    return f"{reference.domain}/{reference.path}"
