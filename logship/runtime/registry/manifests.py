"""Manifests as registries serve them: image manifest v2 schema 2, OCI image manifests, and the lists of
them per platform (Docker manifest lists, OCI indexes), checked before anything is downloaded.

A document is trusted only through its digest: a manifest fetched by digest must hash to it, and one
fetched by tag is named by the digest of its bytes (what `RepoDigests` and `pull name@digest` use).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from logship.errors import InvalidParameter
from logship.runtime import imageconfig
from logship.runtime.imageconfig import json_object
from logship.runtime.ocilayout import LAYER_MEDIA_TYPES
from logship.runtime.platforms import Platform, match_platform, platform_text

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
ACCEPT = [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX]

MAX_LAYERS = 1000
_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None

    @property
    def short_id(self) -> str:
        return self.digest.partition(":")[2][:12]


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(data: bytes, expected: str, what: str) -> None:
    actual = digest_of(data, expected.partition(":")[0])
    if actual != expected:
        raise InvalidParameter(
            f"{what} does not match its digest: expected {expected}, got {actual}; the registry sent "
            "corrupt or altered content"
        )


def media_type_of(body: bytes, header: str) -> str:
    """The document's own mediaType field, else the Content-Type header (registries vary)."""
    document = json_object(body, "the manifest")
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in document:
        return OCI_INDEX
    if header.split(";")[0].strip() in (*ACCEPT, *SCHEMA1_TYPES):
        return header.split(";")[0].strip()
    return OCI_MANIFEST if "layers" in document else header


def parse_index(body: bytes, source: str) -> list[Descriptor]:
    document = json_object(body, source)
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise InvalidParameter(f"{source} has no list of manifests")
    return [_descriptor(entry, f"manifest {number} of {source}") for number, entry in enumerate(entries, 1)]


def choose_platform(entries: list[Descriptor], wanted: Platform, source: str) -> Descriptor:
    """The entry of a manifest list or index for `wanted` (a variant matches when none is asked for)."""
    manifests = [entry for entry in entries if entry.media_type in MANIFEST_TYPES]
    chosen, images = match_platform(manifests, wanted, lambda entry: entry.platform, lambda entry: entry.annotations)
    if chosen is not None:
        return chosen
    offered = ", ".join(platform_text(entry.platform) for entry in images) or "none"
    raise InvalidParameter(
        f"no matching manifest for {wanted} in the manifest list entries of {source} (it has {offered}): "
        "give --platform to pick another"
    )


def parse_manifest(body: bytes, media_type: str, source: str) -> Manifest:
    if media_type in SCHEMA1_TYPES:
        raise InvalidParameter(
            f"{source} is an image manifest of schema 1 ({media_type}), which Docker deprecated and logship "
            "does not pull: push the image again with a current docker or buildx (schema 2)"
        )
    if media_type not in MANIFEST_TYPES:
        raise InvalidParameter(f"{source} has the media type {media_type!r}, which is not an image manifest")
    document = json_object(body, source)
    if document.get("schemaVersion") != 2:
        raise InvalidParameter(f"{source} has schemaVersion {document.get('schemaVersion')!r}; 2 is expected")
    config = _descriptor(document.get("config"), f"the config of {source}")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise InvalidParameter(f"{source} has no list of layers")
    if len(layers) > MAX_LAYERS:
        raise InvalidParameter(f"{source} lists {len(layers)} layers, more than the {MAX_LAYERS} logship accepts")
    descriptors = tuple(_descriptor(layer, f"layer {number} of {source}") for number, layer in enumerate(layers, 1))
    for number, layer in enumerate(descriptors, 1):
        if layer.media_type not in LAYER_MEDIA_TYPES:
            raise InvalidParameter(
                f"layer {number} of {source} has the media type {layer.media_type!r}, which is not a layer "
                "logship can apply (tar, tar+gzip or tar+zstd)"
            )
    return Manifest(media_type, config, descriptors)


def config_diff_ids(config: bytes, layers: int, source: str) -> list[str]:
    diff_ids = imageconfig.config_diff_ids(config, f"the image config of {source}")
    if len(diff_ids) != layers:
        raise InvalidParameter(
            f"the manifest of {source} lists {layers} layers but its config's rootfs.diff_ids lists "
            f"{len(diff_ids)}: the registry holds a broken image"
        )
    return diff_ids


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidParameter(f"{what} is not a descriptor (an object with mediaType, digest and size)")
    digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType", "")
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise InvalidParameter(f"{what} has no valid digest (got {digest!r}); logship verifies sha256 and sha512")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidParameter(f"{what} has no valid size (got {size!r})")
    platform = value.get("platform")
    annotations = value.get("annotations")
    return Descriptor(
        media_type=media_type if isinstance(media_type, str) else "",
        digest=digest,
        size=size,
        platform=platform if isinstance(platform, dict) else None,
        annotations=annotations if isinstance(annotations, dict) else None,
    )
