"""Docker's save format, as `docker save` writes it: the images of a `manifest.json` in an image archive.

`manifest.json` is a list of {"Config": path, "RepoTags": ["name:tag"] or null, "Layers": [path, ...]}.
Before Docker 25 the paths are `<hex>.json` and `<dir>/layer.tar` (a layer shared by two images is a
symlink to the first copy); since Docker 25 they point into `blobs/sha256/`, and files there are checked
against the digest their name is. Reading checks the structure and reads only the configs; the layers
are found, not read (`ImageArchive.layer_appliers` reads them when the image is stored).
"""

from __future__ import annotations

import re
from typing import Any

from logship.errors import InvalidParameter
from logship.runtime.imagearchive import ArchivedImage, ArchivedLayer, ImageArchive, member_key
from logship.runtime.imageconfig import config_diff_ids
from logship.runtime.reference import parse_reference, tag_reference

MANIFEST = "manifest.json"

_BLOB_PATH_RE = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")


def docker_save_images(archive: ImageArchive) -> list[ArchivedImage]:
    """Every image `manifest.json` describes, its config and names read and checked, its layers found."""
    manifest = archive.read_json(MANIFEST, MANIFEST)
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
        config = archive.read_document(config_path, f"the config of {source}", _digest_of_blob_path(config_path))
        diff_ids = config_diff_ids(config, f"the config {config_path} of {source}")
        if len(layer_paths) != len(diff_ids):
            raise InvalidParameter(
                f"{source} lists {len(layer_paths)} layers but its config's rootfs.diff_ids lists "
                f"{len(diff_ids)}: the archive is corrupt"
            )
        layers = tuple(
            ArchivedLayer(
                path=path,
                member=archive.regular_member(path, f"layer {number_} of {source}"),
                digest=_digest_of_blob_path(path),
                diff_id=diff_id,
            )
            for number_, (path, diff_id) in enumerate(zip(layer_paths, diff_ids, strict=True), 1)
        )
        tags = tuple(_repo_tag(tag, f"RepoTags of {source}") for tag in repo_tags)
        images.append(ArchivedImage(config, tags, layers, source))
    return images


def _digest_of_blob_path(path: str) -> str | None:
    """Files under blobs/sha256/ are named by the digest of their content, which is therefore checked."""
    match = _BLOB_PATH_RE.match(member_key(path))
    return "sha256:" + match.group(1) if match else None


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


def _repo_tag(text: str, what: str) -> str:
    """A "name:tag" of manifest.json's RepoTags, normalised; Docker refuses names without a tag there."""
    if parse_reference(text).tag is None:
        raise InvalidParameter(f"invalid tag {text!r} in {what}: RepoTags entries are name:tag")
    return str(tag_reference(text))
