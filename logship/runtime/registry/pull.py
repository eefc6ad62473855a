"""`docker pull`: a manifest (through a manifest list or OCI index when there is one), its config, and
the layers the layer store lacks, downloaded in parallel and applied in order.

- Downloads go to `<images>/downloads/<hex>.partial`, hashed as they arrive and refused as soon as they
  exceed the size the manifest gives; complete and verified, they are renamed to `<hex>`. An interrupted
  pull leaves them there: the next pull resumes a partial file with an HTTP Range request (hashing what
  it has first) and uses a complete one without asking the registry again.
- Layers are applied by `tarsafe.apply_layer` into the layer store's staging (`LayerStore.add`), each as
  soon as it and the layers below it are in; the downloaded blob becomes the layer's blob (push sends it
  back as it came).
- What a pull reports follows dockerd's order and words, so the docker CLI draws its usual bars.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logship.errors import InvalidParameter, LogshipError, NotFound, Unauthorized
from logship.runtime.images import Image, ImageStore
from logship.runtime.layers import Blob, LayerApplier, chain_ids
from logship.runtime.platforms import Platform, this_platform
from logship.runtime.reference import Reference, parse_reference
from logship.runtime.registry import manifests
from logship.runtime.registry.auth import Credentials
from logship.runtime.registry.blobfile import BlobFile
from logship.runtime.registry.client import (
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    RegistryError,
    Repository,
    error_text,
    raise_for_answer,
)
from logship.runtime.registry.endpoints import RegistryConfig
from logship.runtime.registry.manifests import Descriptor
from logship.runtime.registry.session import MAX_CONCURRENT_DOWNLOADS, Progress, Report, open_repository
from logship.runtime.tarsplit import apply_and_split

DOWNLOADS = "downloads"
_CHUNK = 1 << 16
_PROGRESS_STEP = 512 << 10


@dataclass(frozen=True)
class Resolved:
    """What a reference names on the registry, read and checked, before any layer is fetched."""

    reference: Reference
    manifest_digest: str  # the digest of what the tag names (a manifest list's, for a multi-platform image)
    manifest: manifests.Manifest
    config: bytes
    diff_ids: list[str]


class Puller:
    """Pulls into `store`; one per daemon (it keeps one lock per blob, so that two pulls of images that
    share a layer download it once)."""

    def __init__(self, store: ImageStore, config: RegistryConfig) -> None:
        self.store = store
        self.config = config
        self._downloads = store.directory / DOWNLOADS
        self._downloads.mkdir(exist_ok=True)
        self._blob_locks: dict[str, asyncio.Lock] = {}

    async def pull(
        self, name: str, credentials: Credentials, platform: Platform | None, report: Report
    ) -> tuple[Image, str]:
        """Pull `name` ("busybox", "busybox:1.36", "127.0.0.1:5000/app@sha256:..."); the image and the
        reference it was stored under. Errors before the first report are the request's errors."""
        reference = _pull_reference(name)
        async with open_repository(self.config, reference, credentials, "pull") as repository:
            resolved = await self._resolve(repository, reference, platform or this_platform())
            report(Progress(f"Pulling from {_repository_name(reference)}", reference.tag or reference.digest))
            image_id = "sha256:" + hashlib.sha256(resolved.config).hexdigest()
            fresh = not await asyncio.to_thread(self.store.exists, image_id)
            if fresh:
                await self._fetch_layers(repository, resolved, report)
        stored = str(reference)
        digested = f"{reference.familiar_name}@{resolved.manifest_digest}"
        await asyncio.to_thread(
            self.store.add_references, image_id, [stored, digested] if reference.tag else [digested]
        )
        report(Progress(f"Digest: {resolved.manifest_digest}"))
        verdict = "Downloaded newer image" if fresh else "Image is up to date"
        report(Progress(f"Status: {verdict} for {stored}"))
        return await asyncio.to_thread(self.store.get, image_id), stored

    # -- resolving: manifest (list), config ----------------------------------------------------------------

    async def _resolve(self, repository: Repository, reference: Reference, platform: Platform) -> Resolved:
        target = reference.digest or reference.tag or "latest"
        body, media_type = await self._manifest(repository, reference, target)
        manifest_digest = reference.digest or manifests.digest_of(body)
        source = str(reference)
        if media_type in manifests.INDEX_TYPES:
            chosen = manifests.choose_platform(manifests.parse_index(body, source), platform, source)
            body, media_type = await self._manifest(repository, reference, chosen.digest)
            if len(body) != chosen.size:
                raise InvalidParameter(
                    f"the manifest {chosen.digest} of {source} is {len(body)} bytes but the manifest list says "
                    f"{chosen.size}: the registry sent altered content"
                )
            media_type = chosen.media_type or media_type
        manifest = manifests.parse_manifest(body, media_type, source)
        config = await self._small_blob(repository, manifest.config, f"the image config of {source}")
        diff_ids = manifests.config_diff_ids(config, len(manifest.layers), source)
        return Resolved(reference, manifest_digest, manifest, config, diff_ids)

    async def _manifest(self, repository: Repository, reference: Reference, target: str) -> tuple[bytes, str]:
        answer = await repository.get_document(f"manifests/{target}", manifests.ACCEPT, MAX_MANIFEST_SIZE)
        if answer.status >= 300:
            raise _pull_error(reference, answer.status, answer.body, answer.url, repository.lacks_credentials)
        if target.startswith("sha"):
            manifests.check_digest(answer.body, target, f"the manifest {target}")
        return answer.body, manifests.media_type_of(answer.body, answer.headers.get("Content-Type", ""))

    async def _small_blob(self, repository: Repository, descriptor: Descriptor, what: str) -> bytes:
        if descriptor.size > MAX_CONFIG_SIZE:
            raise InvalidParameter(
                f"{what} is {descriptor.size} bytes, more than the {MAX_CONFIG_SIZE} logship accepts"
            )
        answer = await repository.get_document(f"blobs/{descriptor.digest}", ["*/*"], MAX_CONFIG_SIZE)
        if answer.status >= 300:
            raise RegistryError(f"cannot fetch {what} ({descriptor.digest}): {answer.status}")
        manifests.check_digest(answer.body, descriptor.digest, what)
        if len(answer.body) != descriptor.size:
            raise InvalidParameter(f"{what} is {len(answer.body)} bytes, but the manifest says {descriptor.size}")
        return answer.body

    # -- layers ----------------------------------------------------------------------------------------------

    async def _fetch_layers(self, repository: Repository, resolved: Resolved, report: Report) -> None:
        layers = resolved.manifest.layers
        chains = chain_ids(resolved.diff_ids)
        present = [await asyncio.to_thread(self.store.layers.exists, chain) for chain in chains]
        # A stack exists only on top of all the stacks below it: everything up to the last present one is here.
        first_missing = max((i + 1 for i, here in enumerate(present) if here), default=0)
        for layer in layers[:first_missing]:
            report(Progress("Already exists", layer.short_id))
        needed = list(layers[first_missing:])
        for layer in needed:
            report(Progress("Pulling fs layer", layer.short_id))
        semaphore = asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS)

        async def download(layer: Descriptor, blob: BlobFile) -> Path:
            try:
                if semaphore.locked():
                    report(Progress("Waiting", layer.short_id))
                async with semaphore:
                    return await self._download(repository, layer, blob, report)
            except BaseException as err:
                blob.fail(err if isinstance(err, Exception) else RegistryError("the pull was cancelled"))
                raise

        blobs = [BlobFile() for _ in needed]
        tasks = [asyncio.create_task(download(layer, blob)) for layer, blob in zip(needed, blobs, strict=True)]
        try:
            with self.store.layers.hold(chains) as held:
                parent = chains[first_missing - 1] if first_missing else None
                for offset, (layer, blob, task) in enumerate(zip(needed, blobs, tasks, strict=True)):
                    number = first_missing + offset
                    # Applied while it downloads: the blob's reader ends only once it is in and verified.
                    if not await asyncio.to_thread(self.store.layers.exists, chains[number]):
                        apply = _blob_applier(blob, layer, _extract_reporter(report, layer))
                        try:
                            await asyncio.to_thread(
                                self.store.layers.add, parent, apply, resolved.diff_ids[number], held
                            )
                        except InvalidParameter as err:
                            raise await _apply_error(task, layer, err) from None
                    path = await task
                    path.unlink(missing_ok=True)
                    report(Progress("Pull complete", layer.short_id))
                    parent = chains[number]
                await asyncio.to_thread(self.store.commit_image, resolved.config)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for blob in blobs:
                blob.close()

    async def _download(self, repository: Repository, layer: Descriptor, blob: BlobFile, report: Report) -> Path:
        lock = self._blob_locks.setdefault(layer.digest, asyncio.Lock())
        async with lock:
            hex_part = layer.digest.partition(":")[2]
            done = self._downloads / hex_part
            if done.exists():
                blob.attach(done, done.stat().st_size)
                blob.finish()
                report(Progress("Download complete", layer.short_id))
                return done
            partial = self._downloads / f"{hex_part}.partial"
            await _fetch_blob(repository, layer, partial, blob, report)
            os.rename(partial, done)
            blob.finish()
            report(Progress("Download complete", layer.short_id))
            return done


async def _fetch_blob(repository: Repository, layer: Descriptor, partial: Path, blob: BlobFile, report: Report) -> None:
    """Download a blob into `partial`, resuming what is there, hashing and size-checking as bytes come,
    and telling `blob` of each byte on disk."""
    algorithm = layer.digest.partition(":")[0]
    hasher = hashlib.new(algorithm)
    offset = partial.stat().st_size if partial.exists() else 0
    if offset > layer.size:
        partial.unlink()
        offset = 0
    if offset:
        await asyncio.to_thread(_hash_file, partial, hasher)
    else:
        partial.touch()
    blob.attach(partial, offset)
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    response = await repository.request("GET", f"blobs/{layer.digest}", headers)
    async with response:
        if offset and response.status == 206:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                raise RegistryError(f"the registry answered a resumed download of {layer.digest} with another range")
        elif offset and response.status in (200, 416):
            offset, hasher = 0, hashlib.new(algorithm)  # no ranges here: start again
            if response.status == 416:
                partial.write_bytes(b"")
                await _fetch_blob(repository, layer, partial, blob, report)
                return
        else:
            await raise_for_answer(response, "GET", f"cannot download the layer {layer.digest}")
        received = offset
        reported = 0
        with partial.open("r+b", buffering=0) as out:
            out.seek(offset)
            out.truncate()
            blob.grew(offset)
            async for chunk in response.content.iter_chunked(_CHUNK):
                received += len(chunk)
                if received > layer.size:
                    out.close()
                    partial.unlink(missing_ok=True)
                    raise InvalidParameter(
                        f"the registry sent more than the {layer.size} bytes the manifest gives for the layer "
                        f"{layer.digest}: refusing it (the manifest lies about its size, or the blob is not that layer)"
                    )
                hasher.update(chunk)
                out.write(chunk)
                blob.grew(received)
                if received - reported >= _PROGRESS_STEP:
                    reported = received
                    report(Progress("Downloading", layer.short_id, received, layer.size))
    if received < layer.size:
        raise RegistryError(
            f"the download of the layer {layer.digest} ended after {received} of {layer.size} bytes; pull again "
            "to resume it"
        )
    report(Progress("Verifying Checksum", layer.short_id))
    actual = f"{algorithm}:{hasher.hexdigest()}"
    if actual != layer.digest:
        partial.unlink(missing_ok=True)
        raise InvalidParameter(
            f"the layer {layer.digest} the registry sent has the digest {actual}: it is corrupt or was altered; "
            "nothing of it was stored"
        )


async def _apply_error(download: asyncio.Task[Path], layer: Descriptor, error: InvalidParameter) -> LogshipError:
    """Why a layer applied while it downloaded was refused: the download's own failure when it failed
    (the bytes were not the blob), else the layer's fault, and then the verified blob is deleted so that
    a second pull does not apply it again."""
    try:
        path = await download
    except LogshipError as failed:
        return failed
    path.unlink(missing_ok=True)
    return InvalidParameter(f"cannot apply the layer {layer.digest}: {error}")


def _hash_file(path: Path, hasher: hashlib._Hash) -> None:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            hasher.update(chunk)


def _extract_reporter(report: Report, layer: Descriptor) -> Callable[[int], None]:
    step = max(_PROGRESS_STEP, layer.size // 50)
    last = [0]

    def extracted(done: int) -> None:
        if done - last[0] >= step or done == layer.size:
            last[0] = done
            report(Progress("Extracting", layer.short_id, done, layer.size))

    return extracted


def _blob_applier(blob: BlobFile, layer: Descriptor, progress: Callable[[int], None]) -> LayerApplier:
    """Applies a blob as it downloads (see `blobfile`); the caller deletes the file afterwards: push
    rebuilds the layer's tar from the layer store, and asks the registry for this blob's digest first."""

    def apply(rootfs: Path, directory: Path) -> tuple[str, Blob | None]:
        diff_id = apply_and_split(io.BufferedReader(_Counting(blob.reader(), progress), _CHUNK * 16), rootfs, directory)
        return diff_id, Blob(layer.digest, layer.size, layer.media_type)

    return apply


class _Counting(io.RawIOBase):
    def __init__(self, source: io.RawIOBase, progress: Callable[[int], None]) -> None:
        super().__init__()
        self._source = source
        self._progress = progress
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._source.readinto(buffer)
        self._done += count
        self._progress(self._done)
        return count


def _pull_reference(name: str) -> Reference:
    reference = parse_reference(name)
    if reference.digest is not None:
        return Reference(reference.domain, reference.path, None, reference.digest)
    return reference.with_default_tag()


def _repository_name(reference: Reference) -> str:
    """What dockerd prints after "Pulling from": the path, without the registry ("library/busybox")."""
    return reference.path


def _pull_error(reference: Reference, status: int, body: bytes, url: str, lacks_credentials: bool) -> LogshipError:
    text = error_text(body) or f"{status}"
    if status == 404:
        return NotFound(f"manifest for {reference} not found: {text}")
    if status in (401, 403):
        if status == 401 and lacks_credentials:
            return Unauthorized(f'Head "{url}": no basic auth credentials')
        return Unauthorized(
            f"pull access denied for {reference.familiar_name}, repository does not exist or may require "
            f"'docker login': {text}"
        )
    return RegistryError(f'Get "{url}": {text}')
