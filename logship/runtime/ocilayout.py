"""The OCI image layout in an image archive: `oci-layout`, and `index.json` listing image manifests (or
indexes of manifests, one per platform), each naming its config and layers by digest under
`blobs/<algorithm>/<hex>`.

Image names come from the `io.containerd.image.name` annotation, or `org.opencontainers.image.ref.name`
when that is a whole reference ("app:1.0"); a bare tag ("1.0") names no repository, so that image loads
untagged. An index of several platforms gives this machine's image (`platforms.match_platform`), or its
only image whatever the platform. Every blob read is checked against its descriptor's digest and size;
layers are found, not read (`ImageArchive.layer_appliers` reads them when the image is stored).
"""

from __future__ import annotations

import re
import tarfile
from typing import Any

from logship.errors import InvalidParameter
from logship.runtime.imagearchive import ArchivedImage, ArchivedLayer, ImageArchive, parse_json
from logship.runtime.imageconfig import config_diff_ids
from logship.runtime.platforms import match_platform, platform_text, this_platform
from logship.runtime.reference import parse_reference, tag_reference

OCI_LAYOUT = "oci-layout"
OCI_INDEX = "index.json"

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

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

_MAX_INDEX_DEPTH = 4


def oci_images(archive: ImageArchive) -> list[ArchivedImage]:
    """Every image `index.json` describes, its config and names read and checked, its layers found."""
    if not archive.has(OCI_LAYOUT):
        raise InvalidParameter(f"the archive has {OCI_INDEX} but no {OCI_LAYOUT} file: it is not an OCI image layout")
    layout = archive.read_json(OCI_LAYOUT, OCI_LAYOUT)
    version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
    if version != "1.0.0":
        raise InvalidParameter(
            f"unsupported OCI image layout version {version!r} in {OCI_LAYOUT}: logship reads version 1.0.0"
        )
    index = archive.read_json(OCI_INDEX, OCI_INDEX)
    descriptors = _descriptors(index, OCI_INDEX)
    if not descriptors:
        raise InvalidParameter(f"{OCI_INDEX} lists no images")
    # Several names may point at one image: it loads once, with all of them.
    found: dict[str, tuple[ArchivedImage, list[str]]] = {}
    for number, descriptor in enumerate(descriptors, 1):
        source = f"{OCI_INDEX} entry {number}"
        manifest = _resolve_manifest(archive, descriptor, source, depth=0)
        digest = manifest["digest"]
        if digest not in found:
            found[digest] = (_oci_image(archive, manifest, source), [])
        name = _oci_name(descriptor, source)
        if name is not None and name not in found[digest][1]:
            found[digest][1].append(name)
    return [ArchivedImage(image.config, tuple(names), image.layers, image.source) for image, names in found.values()]


def _resolve_manifest(archive: ImageArchive, descriptor: dict[str, Any], source: str, depth: int) -> dict[str, Any]:
    """The image manifest a descriptor leads to, through indexes choosing this machine's platform."""
    media_type = descriptor.get("mediaType")
    if media_type in _MANIFEST_TYPES:
        return descriptor
    if media_type is not None and media_type not in _INDEX_TYPES:
        raise InvalidParameter(
            f"{source} is of media type {media_type!r}, which is neither an image manifest nor an index"
        )
    document = _read_blob_json(archive, descriptor, source)
    if media_type is None and "manifests" not in document:
        return descriptor  # no media type given, and not an index: take it as a manifest
    if depth >= _MAX_INDEX_DEPTH:
        raise InvalidParameter(f"{source}: indexes nest more than {_MAX_INDEX_DEPTH} deep")
    chosen = _choose_platform(_descriptors(document, source), source)
    return _resolve_manifest(archive, chosen, f"{source} ({platform_text(chosen.get('platform'))})", depth + 1)


def _oci_image(archive: ImageArchive, descriptor: dict[str, Any], source: str) -> ArchivedImage:
    manifest = _read_blob_json(archive, descriptor, source)
    config_descriptor = manifest.get("config")
    if not isinstance(config_descriptor, dict):
        raise InvalidParameter(f"the manifest {descriptor['digest']} of {source} names no config")
    config = _read_blob(archive, config_descriptor, f"the config of {source}")
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
        path = _blob_path(layer, what)
        member = archive.regular_member(path, what)
        _check_size(layer, member, path)
        layers.append(ArchivedLayer(path=path, member=member, digest=layer["digest"], diff_id=diff_id))
    return ArchivedImage(config, (), tuple(layers), source)


def _blob_path(descriptor: dict[str, Any], what: str) -> str:
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise InvalidParameter(f"{what} has no valid digest (got {digest!r})")
    match = _SHA256_DIGEST_RE.match(digest)
    if match is None:
        raise InvalidParameter(f"{what} has the digest {digest!r}: logship verifies sha256 digests only")
    return f"blobs/sha256/{match.group(1)}"


def _read_blob(archive: ImageArchive, descriptor: dict[str, Any], what: str) -> bytes:
    path = _blob_path(descriptor, what)
    data = archive.read_document(path, what, descriptor["digest"])
    if isinstance(descriptor.get("size"), int) and descriptor["size"] != len(data):
        raise InvalidParameter(
            f"the blob {path} ({what}) holds {len(data)} bytes but its descriptor says {descriptor['size']}: "
            "the archive is corrupt or was altered"
        )
    return data


def _read_blob_json(archive: ImageArchive, descriptor: dict[str, Any], what: str) -> dict[str, Any]:
    data = _read_blob(archive, descriptor, what)
    document = parse_json(data, f"the blob {descriptor['digest']} ({what})")
    if not isinstance(document, dict):
        raise InvalidParameter(f"the blob {descriptor['digest']} ({what}) must be a JSON object")
    return document


def _descriptors(document: Any, source: str, key: str = "manifests") -> list[dict[str, Any]]:
    value = document.get(key) if isinstance(document, dict) else None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidParameter(f"{source} must hold a list of descriptors under {key!r}")
    return value


def _choose_platform(descriptors: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """The manifest for linux on this machine's architecture; else the only one there is."""
    wanted = this_platform()
    chosen, images = match_platform(
        descriptors,
        wanted,
        lambda descriptor: descriptor.get("platform"),
        lambda descriptor: descriptor.get("annotations"),
    )
    if chosen is not None:
        return chosen
    if len(images) == 1:
        return images[0]
    if not images:
        raise InvalidParameter(f"the index of {source} lists no image manifests")
    offered = ", ".join(platform_text(descriptor.get("platform")) for descriptor in images)
    raise InvalidParameter(
        f"the index of {source} has no image for {wanted} (it has {offered}): "
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
