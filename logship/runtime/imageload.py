"""`docker load`: read image archives (`docker save` tarballs, OCI image layouts) into the image store.

An archive is one tar, plain or compressed (gzip, bzip2, xz), holding either or both of:

- Docker's save format: `manifest.json`, a list of {"Config": path, "RepoTags": ["name:tag"] or null,
  "Layers": [path, ...]}. Before Docker 25 the paths are `<hex>.json` and `<dir>/layer.tar` (a layer
  shared by two images is a symlink to the first copy); since Docker 25 they point into `blobs/sha256/`.
- an OCI image layout: `oci-layout`, and `index.json` listing image manifests (or indexes of manifests,
  one per platform), each naming its config and layers by digest under `blobs/<algorithm>/<hex>`. Image
  names come from the `io.containerd.image.name` annotation, or `org.opencontainers.image.ref.name`
  when that is a whole reference ("app:1.0"); a bare tag ("1.0") names no repository, so that image
  loads untagged.

When both are present `manifest.json` is read, as Docker's own loader does.

The archive is hostile until checked, and nothing of it reaches the disk unchecked:

- the outer tar is never extracted. The upload is a seekable file; each layer is read from its place in
  it. Paths that manifests name must be relative, without "..", and links between members of the outer
  tar are followed only through the archive's own table of members, never outside the archive;
- every blob is hashed while it is read and must match its digest; every layer's uncompressed content
  must match the config's `rootfs.diff_ids`, which the image ID (the digest of the config) vouches for;
- layers are applied in order by `tarsafe.apply_layer` (relative names, no links followed, no device
  nodes, whiteouts honoured) into a staging directory the store throws away if anything fails.

Reading an archive (`open_archive`, `ImageArchive.images`) checks its structure and reads only the small
JSON documents, so a caller can refuse a bad archive before it starts answering; `load_images` then
applies the layers. Both block: run them in a worker thread.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

import zstandard

from logship.errors import InvalidParameter
from logship.runtime.images import Image, ImageStore, config_diff_ids, go_architecture
from logship.runtime.layers import Blob, LayerApplier
from logship.runtime.reference import parse_reference, tag_reference
from logship.runtime.tarsafe import Readable, decompressed, is_compressed
from logship.runtime.tarsplit import apply_and_split

# Called with (layer ID: the first 12 hex digits of its diff ID, bytes read so far, bytes in all).
LayerProgress = Callable[[str, int, int], None]
# Receives each line of the load's report, newline included: "Loaded image: busybox:latest\n".
Say = Callable[[str], None]

MANIFEST = "manifest.json"
OCI_LAYOUT = "oci-layout"
OCI_INDEX = "index.json"

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# buildx stores provenance and SBOMs as extra manifests in an index; they are not images to run.
_ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"

_INDEX_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
_MANIFEST_TYPES = frozenset(
    {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}
)
# Layer media types apply_layer reads (it recognises the compression from the bytes themselves).
LAYER_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)

_SHA256_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_BLOB_PATH_RE = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")

# Manifests, indexes and configs are read into memory; real ones are kilobytes.
_MAX_DOCUMENT_SIZE = 16 << 20
_MAX_LINK_HOPS = 16
_MAX_INDEX_DEPTH = 4
_COPY_CHUNK = 1 << 20
_SNIFF_SIZE = 6  # enough bytes to recognise every compression format
# A layer's progress is reported about every 1% of it, and at least every 512 KiB read.
_PROGRESS_MIN_STEP = 512 << 10


@dataclass(frozen=True)
class ArchivedLayer:
    path: str  # where the layer is in the archive, for messages
    member: tarfile.TarInfo  # the regular file holding it (links already resolved)
    digest: str | None  # "sha256:<hex>" its stored bytes must hash to, when the archive names one
    diff_id: str  # "sha256:<hex>" its uncompressed tar must hash to, from the image config


@dataclass(frozen=True)
class ArchivedImage:
    config: bytes  # kept byte for byte: the image ID is its digest
    repo_tags: tuple[str, ...]  # normalised familiar names, "busybox:latest"; empty for an untagged image
    layers: tuple[ArchivedLayer, ...]
    source: str  # where in the archive it is described, for messages

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Loading: apply each image's layers into the store.
# ---------------------------------------------------------------------------------------------------------


def load_images(
    store: ImageStore,
    archive: ImageArchive,
    images: Sequence[ArchivedImage],
    say: Say,
    progress: LayerProgress | None = None,
) -> list[Image]:
    """Store `images` (from `archive.images()`) and tag them, reporting as `docker load` does:
    "Loaded image: <name:tag>" per tag, "Loaded image ID: sha256:..." for an untagged image, and a note
    when a tag moves from another image."""
    loaded = []
    for image in images:
        added = store.add_image(image.config, archive.layer_appliers(image, progress), image.repo_tags)
        for tag in image.repo_tags:
            if tag in added.moved_tags:
                previous = added.moved_tags[tag]
                say(f"The image {tag} already exists, renaming the old one with ID {previous} to empty string\n")
            say(f"Loaded image: {tag}\n")
        if not image.repo_tags:
            say(f"Loaded image ID: {added.image.id}\n")
        store.emit("load", added.image.id, ", ".join(image.repo_tags))
        loaded.append(added.image)
    return loaded


# ---------------------------------------------------------------------------------------------------------
# Opening: the outer tar, decompressed if need be, indexed for random access.
# ---------------------------------------------------------------------------------------------------------


def open_archive(upload: BinaryIO, scratch_dir: Path) -> ImageArchive:
    """The archive in the seekable file `upload`, which it takes over (closing it when the archive is
    closed, or at once on failure). A compressed upload is first decompressed into a temporary file
    under `scratch_dir`: reading images needs random access, which compressed streams do not give."""
    try:
        upload.seek(0)
        head = upload.read(_SNIFF_SIZE)
        upload.seek(0)
        if not is_compressed(head):
            return ImageArchive(upload)
        plain = tempfile.TemporaryFile(dir=scratch_dir)  # noqa: SIM115 - the archive owns it from here
        try:
            _copy_decompressed(decompressed(upload), plain)
            upload.close()
            return ImageArchive(plain)
        except BaseException:
            plain.close()
            raise
    except BaseException:
        upload.close()
        raise


def _copy_decompressed(stream: Readable, target: BinaryIO) -> None:
    try:
        while chunk := stream.read(_COPY_CHUNK):
            target.write(chunk)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as err:
        raise InvalidParameter(
            f"cannot decompress the image archive: {err}; check that it is complete "
            "(`docker save` output, plain or compressed with gzip, bzip2, xz or zstd)"
        ) from None
    target.flush()
    target.seek(0)


class ImageArchive:
    """An uncompressed image archive opened for random access. Close it (or use `with`) when done."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._size = os.fstat(file.fileno()).st_size
        tar: tarfile.TarFile | None = None
        members: list[tarfile.TarInfo] = []  # filled one by one: what was read names the cut when truncated
        try:
            tar = tarfile.open(  # noqa: SIM115 - closed by close()
                fileobj=file, mode="r:", encoding="utf-8", errors="surrogateescape"
            )
            members.extend(tar)
        except tarfile.TarError as err:
            if self._size == 0:
                raise InvalidParameter("the image archive is empty: no data was received") from None
            cut = [m for m in members if m.offset_data + m.size > self._size]
            if cut:
                raise InvalidParameter(
                    f"the image archive is truncated: {cut[-1].name!r} should hold {cut[-1].size} bytes but the "
                    "archive ends before; check that the upload or the `docker save` output is complete"
                ) from None
            raise InvalidParameter(
                f"the image archive is not a tar file ({err}): `load` takes the output of `docker save` "
                "or an OCI image layout in a tar, plain or compressed with gzip, bzip2 or xz"
            ) from None
        self._tar = tar
        # Later members of the same name replace earlier ones, as when a tar is extracted.
        self._members = {_member_key(member.name): member for member in members}

    def close(self) -> None:
        self._tar.close()
        self._file.close()

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- the images it holds ---------------------------------------------------------------------------

    def images(self) -> list[ArchivedImage]:
        """Every image the archive describes, its config and names read and checked, its layers found
        (but not yet read). InvalidParameter says what is wrong with an archive that cannot load."""
        if MANIFEST in self._members:
            return self._docker_save_images()
        if OCI_INDEX in self._members:
            return self._oci_images()
        raise InvalidParameter(
            f"the archive holds neither {MANIFEST} (a `docker save` tarball) nor {OCI_INDEX} (an OCI image "
            "layout): to make an image from a root filesystem tarball, use `import` instead of `load`"
        )

    def layer_appliers(self, image: ArchivedImage, progress: LayerProgress | None = None) -> list[LayerApplier]:
        """One function per layer of the image that applies it onto the layers below it (`LayerStore.add`),
        checking it against its digests and keeping its uncompressed tar as the layer's blob."""
        return [
            functools.partial(
                self._apply_layer,
                layer,
                f"layer {number} of {len(image.layers)} ({layer.path}) of {image.source}",
                progress,
            )
            for number, layer in enumerate(image.layers, 1)
        ]

    def _apply_layer(
        self, layer: ArchivedLayer, what: str, progress: LayerProgress | None, root: Path, directory: Path
    ) -> tuple[str, Blob | None]:
        reader = _VerifyingReader(self._read_member(layer.member), layer, progress)
        try:
            diff_id = apply_and_split(io.BufferedReader(reader, _COPY_CHUNK), root, directory)
            reader.finish()
        except InvalidParameter as err:
            raise InvalidParameter(f"cannot load {what}: {err}") from None
        if diff_id != layer.diff_id:
            raise InvalidParameter(
                f"cannot load {what}: its content has the digest {diff_id}, but the image config's "
                f"rootfs.diff_ids says {layer.diff_id}; the archive is corrupt or was altered"
            )
        return diff_id, None

    # -- docker save -----------------------------------------------------------------------------------

    def _docker_save_images(self) -> list[ArchivedImage]:
        manifest = self._read_json(MANIFEST, MANIFEST)
        if not isinstance(manifest, list) or not manifest:
            raise InvalidParameter(
                f'{MANIFEST} must be a non-empty list of images ({{"Config": ..., "RepoTags": ..., '
                '"Layers": ...}), as `docker save` writes it'
            )
        images = []
        for number, entry in enumerate(manifest, 1):
            source = f"{MANIFEST} entry {number}"
            if not isinstance(entry, dict):
                raise InvalidParameter(f"{source} must be an object with Config, RepoTags and Layers")
            config_path = _string_field(entry, "Config", source)
            layer_paths = _string_list_field(entry, "Layers", source)
            repo_tags = _string_list_field(entry, "RepoTags", source)
            config = self._read_document(config_path, f"the config of {source}", _digest_of_blob_path(config_path))
            diff_ids = config_diff_ids(config, f"the config {config_path} of {source}")
            if len(layer_paths) != len(diff_ids):
                raise InvalidParameter(
                    f"{source} lists {len(layer_paths)} layers but its config's rootfs.diff_ids lists "
                    f"{len(diff_ids)}: the archive is corrupt"
                )
            layers = tuple(
                ArchivedLayer(
                    path=path,
                    member=self._regular_member(path, f"layer {number_} of {source}"),
                    digest=_digest_of_blob_path(path),
                    diff_id=diff_id,
                )
                for number_, (path, diff_id) in enumerate(zip(layer_paths, diff_ids, strict=True), 1)
            )
            tags = tuple(_repo_tag(tag, f"RepoTags of {source}") for tag in repo_tags)
            images.append(ArchivedImage(config, tags, layers, source))
        return images

    # -- OCI image layout ------------------------------------------------------------------------------

    def _oci_images(self) -> list[ArchivedImage]:
        if OCI_LAYOUT not in self._members:
            raise InvalidParameter(
                f"the archive has {OCI_INDEX} but no {OCI_LAYOUT} file: it is not an OCI image layout"
            )
        layout = self._read_json(OCI_LAYOUT, OCI_LAYOUT)
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != "1.0.0":
            raise InvalidParameter(
                f"unsupported OCI image layout version {version!r} in {OCI_LAYOUT}: logship reads version 1.0.0"
            )
        index = self._read_json(OCI_INDEX, OCI_INDEX)
        descriptors = _descriptors(index, OCI_INDEX)
        if not descriptors:
            raise InvalidParameter(f"{OCI_INDEX} lists no images")
        # Several names may point at one image: it loads once, with all of them.
        found: dict[str, tuple[ArchivedImage, list[str]]] = {}
        for number, descriptor in enumerate(descriptors, 1):
            source = f"{OCI_INDEX} entry {number}"
            manifest = self._resolve_manifest(descriptor, source, depth=0)
            digest = manifest["digest"]
            if digest not in found:
                found[digest] = (self._oci_image(manifest, source), [])
            name = _oci_name(descriptor, source)
            if name is not None and name not in found[digest][1]:
                found[digest][1].append(name)
        return [
            ArchivedImage(image.config, tuple(names), image.layers, image.source) for image, names in found.values()
        ]

    def _resolve_manifest(self, descriptor: dict[str, Any], source: str, depth: int) -> dict[str, Any]:
        """The image manifest a descriptor leads to, through indexes choosing this machine's platform."""
        media_type = descriptor.get("mediaType")
        if media_type in _MANIFEST_TYPES:
            return descriptor
        if media_type is not None and media_type not in _INDEX_TYPES:
            raise InvalidParameter(
                f"{source} is of media type {media_type!r}, which is neither an image manifest nor an index"
            )
        document = self._read_blob_json(descriptor, source)
        if media_type is None and "manifests" not in document:
            return descriptor  # no media type given, and not an index: take it as a manifest
        if depth >= _MAX_INDEX_DEPTH:
            raise InvalidParameter(f"{source}: indexes nest more than {_MAX_INDEX_DEPTH} deep")
        chosen = _choose_platform(_descriptors(document, source), source)
        return self._resolve_manifest(chosen, f"{source} ({_platform_name(chosen)})", depth + 1)

    def _oci_image(self, descriptor: dict[str, Any], source: str) -> ArchivedImage:
        manifest = self._read_blob_json(descriptor, source)
        config_descriptor = manifest.get("config")
        if not isinstance(config_descriptor, dict):
            raise InvalidParameter(f"the manifest {descriptor['digest']} of {source} names no config")
        config = self._read_blob(config_descriptor, f"the config of {source}")
        diff_ids = config_diff_ids(config, f"the config {config_descriptor['digest']} of {source}")
        layer_descriptors = _descriptors(manifest, f"the manifest {descriptor['digest']}", key="layers")
        if len(layer_descriptors) != len(diff_ids):
            raise InvalidParameter(
                f"the manifest {descriptor['digest']} of {source} lists {len(layer_descriptors)} layers but its "
                f"config's rootfs.diff_ids lists {len(diff_ids)}: the archive is corrupt"
            )
        layers = []
        for number, (layer, diff_id) in enumerate(zip(layer_descriptors, diff_ids, strict=True), 1):
            what = f"layer {number} of {source}"
            _check_layer_media_type(layer, what)
            path = self._blob_path(layer, what)
            member = self._regular_member(path, what)
            _check_size(layer, member, path)
            layers.append(ArchivedLayer(path=path, member=member, digest=layer["digest"], diff_id=diff_id))
        return ArchivedImage(config, (), tuple(layers), source)

    # -- blobs and members -----------------------------------------------------------------------------

    def _blob_path(self, descriptor: dict[str, Any], what: str) -> str:
        digest = descriptor.get("digest")
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise InvalidParameter(f"{what} has no valid digest (got {digest!r})")
        match = _SHA256_DIGEST_RE.match(digest)
        if match is None:
            raise InvalidParameter(f"{what} has the digest {digest!r}: logship verifies sha256 digests only")
        return f"blobs/sha256/{match.group(1)}"

    def _read_blob(self, descriptor: dict[str, Any], what: str) -> bytes:
        path = self._blob_path(descriptor, what)
        data = self._read_document(path, what, descriptor["digest"])
        if isinstance(descriptor.get("size"), int) and descriptor["size"] != len(data):
            raise InvalidParameter(
                f"the blob {path} ({what}) holds {len(data)} bytes but its descriptor says {descriptor['size']}: "
                "the archive is corrupt or was altered"
            )
        return data

    def _read_blob_json(self, descriptor: dict[str, Any], what: str) -> dict[str, Any]:
        data = self._read_blob(descriptor, what)
        document = _parse_json(data, f"the blob {descriptor['digest']} ({what})")
        if not isinstance(document, dict):
            raise InvalidParameter(f"the blob {descriptor['digest']} ({what}) must be a JSON object")
        return document

    def _read_json(self, path: str, what: str) -> Any:
        return _parse_json(self._read_document(path, what, None), what)

    def _read_document(self, path: str, what: str, digest: str | None) -> bytes:
        member = self._regular_member(path, what)
        if member.size > _MAX_DOCUMENT_SIZE:
            raise InvalidParameter(f"{path} ({what}) is {member.size} bytes, too large for a JSON document")
        data = self._read_member(member).read()
        if digest is not None:
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise _digest_mismatch(path, digest, actual)
        return data

    def _read_member(self, member: tarfile.TarInfo) -> IO[bytes]:
        reader = self._tar.extractfile(member)
        assert reader is not None  # a regular file: _regular_member saw to it
        return reader

    def _regular_member(self, path: str, what: str) -> tarfile.TarInfo:
        """The regular file `path` names in the archive, following links between members of the archive
        (as `docker save` links a layer two images share), never out of it."""
        name = _archive_path(path, what)
        for _ in range(_MAX_LINK_HOPS):
            member = self._members.get(name)
            if member is None:
                raise InvalidParameter(f"{what} is {path!r}, which the archive does not contain")
            if member.isreg():
                if member.offset_data + member.size > self._size:
                    raise InvalidParameter(
                        f"the image archive is truncated: {path!r} ({what}) should hold {member.size} bytes "
                        "but the archive ends before"
                    )
                return member
            if member.issym():
                target = posixpath.join(posixpath.dirname(name), member.linkname)
            elif member.islnk():
                target = member.linkname
            else:
                raise InvalidParameter(f"{what} is {path!r}, which is not a file in the archive")
            target = posixpath.normpath(target)
            if target.startswith("/") or target == ".." or target.startswith("../"):
                raise InvalidParameter(
                    f"refusing {what} {path!r}: it links to {member.linkname!r}, outside the archive"
                )
            name = _member_key(target)
        raise InvalidParameter(f"refusing {what} {path!r}: more than {_MAX_LINK_HOPS} links to follow")


class _VerifyingReader(io.RawIOBase):
    """A layer's stored bytes, hashed on the way to compare with its digest, with progress reports."""

    def __init__(self, source: IO[bytes], layer: ArchivedLayer, progress: LayerProgress | None) -> None:
        super().__init__()
        self._source = source
        self._layer = layer
        self._sha256 = hashlib.sha256()
        self._progress = progress
        self._layer_id = layer.diff_id.removeprefix("sha256:")[:12]
        self._total = layer.member.size
        self._read = 0
        self._reported = 0
        self._step = max(_PROGRESS_MIN_STEP, self._total // 100)
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        view[: len(data)] = data
        self._sha256.update(data)
        self._read += len(data)
        if not data:
            self._check()
        self._report(at_end=not data)
        return len(data)

    def finish(self) -> None:
        """Read what the tar reader left (padding after the archive's end) and check the digest."""
        while self.readinto(bytearray(_COPY_CHUNK)):
            pass

    def _check(self) -> None:
        if self._finished:
            return
        self._finished = True
        actual = "sha256:" + self._sha256.hexdigest()
        if self._layer.digest is not None and actual != self._layer.digest:
            raise _digest_mismatch(self._layer.path, self._layer.digest, actual)

    def _report(self, at_end: bool) -> None:
        if self._progress is None:
            return
        if (at_end and self._reported < self._read) or self._read - self._reported >= self._step:
            self._reported = self._read
            self._progress(self._layer_id, self._read, self._total)


# ---------------------------------------------------------------------------------------------------------
# Checking the documents.
# ---------------------------------------------------------------------------------------------------------


def _member_key(name: str) -> str:
    """Archive member names as manifests name them: "./blobs/x" and "blobs/x/" are "blobs/x"."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _archive_path(path: str, what: str) -> str:
    if path.startswith("/"):
        raise InvalidParameter(f"refusing {what} {path!r}: it is an absolute path; archive paths are relative")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"refusing {what} {path!r}: it contains '..', which would climb out of the archive")
    if not parts:
        raise InvalidParameter(f"{what} is empty: it must name a file in the archive")
    return "/".join(parts)


def _digest_of_blob_path(path: str) -> str | None:
    """Files under blobs/sha256/ are named by the digest of their content, which is therefore checked."""
    match = _BLOB_PATH_RE.match(_member_key(path))
    return "sha256:" + match.group(1) if match else None


def _digest_mismatch(path: str, expected: str, actual: str) -> InvalidParameter:
    return InvalidParameter(
        f"the blob {path} does not match its digest: expected {expected}, got {actual}; "
        "the archive is corrupt or was altered"
    )


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise InvalidParameter(f"{what} is not valid JSON: {err}") from None


def _string_field(entry: dict[str, Any], key: str, source: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"{source} has no {key} path (got {value!r})")
    return value


def _string_list_field(entry: dict[str, Any], key: str, source: str) -> list[str]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidParameter(f"{source}: {key} must be a list of strings (got {value!r})")
    return value


def _descriptors(document: Any, source: str, key: str = "manifests") -> list[dict[str, Any]]:
    value = document.get(key) if isinstance(document, dict) else None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidParameter(f"{source} must hold a list of descriptors under {key!r}")
    return value


def _is_attestation(descriptor: dict[str, Any]) -> bool:
    annotations = descriptor.get("annotations") or {}
    return isinstance(annotations, dict) and _ANNOTATION_REFERENCE_TYPE in annotations


def _platform_name(descriptor: dict[str, Any]) -> str:
    platform = descriptor.get("platform") or {}
    parts = [platform.get("os", "?"), platform.get("architecture", "?")] + (
        [platform["variant"]] if platform.get("variant") else []
    )
    return "/".join(str(part) for part in parts)


def _choose_platform(descriptors: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """The manifest for linux on this machine's architecture; else the only one there is."""
    images = [descriptor for descriptor in descriptors if not _is_attestation(descriptor)]
    architecture = go_architecture()
    for descriptor in images:
        platform = descriptor.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == architecture:
            return descriptor
    if len(images) == 1:
        return images[0]
    if not images:
        raise InvalidParameter(f"the index of {source} lists no image manifests")
    offered = ", ".join(_platform_name(descriptor) for descriptor in images)
    raise InvalidParameter(
        f"the index of {source} has no image for linux/{architecture} (it has {offered}): "
        "export the image for this machine's platform"
    )


def _check_layer_media_type(descriptor: dict[str, Any], what: str) -> None:
    media_type = descriptor.get("mediaType")
    if media_type not in LAYER_MEDIA_TYPES:
        raise InvalidParameter(
            f"{what} has the media type {media_type!r}, which is not a layer logship can apply "
            "(tar, tar+gzip or tar+zstd)"
        )


def _check_size(descriptor: dict[str, Any], member: tarfile.TarInfo, path: str) -> None:
    size = descriptor.get("size")
    if isinstance(size, int) and size != member.size:
        raise InvalidParameter(
            f"the blob {path} holds {member.size} bytes but its descriptor says {size}: "
            "the archive is corrupt or was altered"
        )


def _repo_tag(text: str, what: str) -> str:
    """A "name:tag" of manifest.json's RepoTags, normalised; Docker refuses names without a tag there."""
    if parse_reference(text).tag is None:
        raise InvalidParameter(f"invalid tag {text!r} in {what}: RepoTags entries are name:tag")
    return str(tag_reference(text))


def _oci_name(descriptor: dict[str, Any], source: str) -> str | None:
    """The name an OCI index entry gives its image, or None when it gives only a tag or nothing."""
    annotations = descriptor.get("annotations") or {}
    if not isinstance(annotations, dict):
        return None
    for key in (ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME):
        name = annotations.get(key)
        if not isinstance(name, str) or not name:
            continue
        if key == ANNOTATION_REF_NAME and not any(mark in name for mark in ":/@"):
            return None  # only a tag ("latest"): no repository to put it in
        try:
            reference = parse_reference(name)
            if reference.digest is not None and reference.tag is None:
                return None  # a digest names content, not a tag we could create
            return str(tag_reference(name.split("@", 1)[0]))
        except InvalidParameter as err:
            raise InvalidParameter(f"the {key} annotation of {source}, {name!r}, is not an image name: {err}") from None
    return None
