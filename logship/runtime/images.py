"""The image store: images' Docker-shaped configs and their tags, over the shared layer store.

On disk, under `<data_root>/images/`:

    <64-hex>/config.json   a Docker image config; the image ID is "sha256:" + sha256 of these exact bytes
    <64-hex>/meta.json     what is not part of the ID: {"size": bytes of the rootfs, counted as Docker does}
    <64-hex>/rootfs/       only in images stored before layers were shared: their flat filesystem, still used
    layers/                each stack of layers once, shared by the images on it (see `layers`)
    repositories.json      {"name:tag" or "name@sha256:<digest>": "sha256:<64-hex>"}, names in Docker's
                           short ("familiar") form; digested names are the RepoDigests of pulled images
    tmp/                   staging: layers and images are built here and renamed into place when complete

An image's root filesystem is the stack of its config's `rootfs.diff_ids`: the layer store's rootfs for
the chain ID of the whole stack. Every change becomes visible in one rename (a layer or image directory,
or repositories.json rewritten beside itself), so a crash never leaves half an image or a torn tag file;
leftovers in tmp/ are cleared when the store opens. One lock serialises the short commit steps; the long
part of an import (reading and extracting the archive) runs outside it, so imports can proceed side by side.

The functions are synchronous and may block on disk and on the import stream: the asyncio daemon calls
them in a worker thread.

Images arrive three ways: `import_tarball` builds a config around one flat root filesystem (`docker
import`), `add_image` takes a config as it is with a function per layer that applies it (`docker load`,
whose archives `imageload` reads), and a pull (`registry.pull`) adds the layers it downloads to `layers`
itself and then calls `commit_image`.

Docker behaviour reproduced here: lookup by tag, digest, full ID or unique ID prefix (GetImage), and
what `docker rmi` deletes once it has untagged (ImageDelete). Elsewhere: references are parsed in
`reference`, the untag rules and messages of `docker rmi` are `imagetags`, configs are read and `docker
import`'s built in `imageconfig`, `--change` instructions applied in `changes`, sizes counted by `treesize`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from logship.errors import Conflict, InvalidParameter, NotFound, SystemError_
from logship.runtime.changes import apply_changes
from logship.runtime.imageconfig import (
    IMPORT_COMMENT,
    config_diff_ids,
    import_config_bytes,
    import_container_config,
    rfc3339_now,
)
from logship.runtime.imagetags import RemovalRecords, stored_reference, untag_for_id_removal, untag_named_reference
from logship.runtime.layers import LayerApplier, LayerStore, chain_ids, tar_applier
from logship.runtime.reference import HEX_RE, ID_RE, is_id_prefix, parse_reference, parse_reference_or_id, tag_reference
from logship.runtime.treesize import tree_size

_CONFIG = "config.json"
_META = "meta.json"
_ROOTFS = "rootfs"


# Told of each change to the images, as Docker's image events: (action, image ID, reference or "").
# Actions: "import", "load", "pull", "push", "tag", "untag", "delete". Called from worker threads, after
# the change is on disk; it must not block nor call back into the store.
ImageEventListener = Callable[[str, str, str], None]

# Given an image ID, the IDs of the containers whose root filesystem is built on it.
ContainersUsing = Callable[[str], list[str]]


@dataclass
class Image:
    id: str  # "sha256:<64-hex>"
    repo_tags: list[str]  # familiar references, e.g. ["busybox:latest"]; empty for a dangling image
    created: str  # RFC 3339 with nanoseconds, from the config
    size: int  # bytes of the root filesystem
    config: dict[str, Any]  # the whole image config (config.json)
    rootfs: Path
    # "name@sha256:<manifest digest>" of the registries it was pulled from or pushed to
    repo_digests: list[str] = field(default_factory=list)


@dataclass
class AddedImage:
    image: Image
    # The tags that pointed at another image before, with that image's ID: {"busybox:latest": "sha256:..."}
    moved_tags: dict[str, str]


# ---------------------------------------------------------------------------------------------------------
# The store.
# ---------------------------------------------------------------------------------------------------------


class ImageStore:
    """Images under `<data_root>/images/`. Thread-safe; every method blocks (run it off the event loop)."""

    def __init__(self, data_root: Path) -> None:
        self._dir = data_root / "images"
        self._staging = self._dir / "tmp"
        self._tags_file = self._dir / "repositories.json"
        self._lock = threading.Lock()
        self._dir.mkdir(parents=True, exist_ok=True)
        # Root filesystems hold setuid binaries: no other host user may reach them.
        os.chmod(self._dir, 0o700)
        shutil.rmtree(self._staging, ignore_errors=True)  # imports or removals a crash interrupted
        self._staging.mkdir()
        self.layers = LayerStore(self._dir, self._staging)
        self._listeners: list[ImageEventListener] = []

    # -- events ----------------------------------------------------------------------------------------

    def subscribe(self, listener: ImageEventListener) -> None:
        """Call `listener(action, image_id, reference)` after every image change (the hook for /events)."""
        self._listeners.append(listener)

    def emit(self, action: str, image_id: str, reference: str = "") -> None:
        for listener in self._listeners:
            listener(action, image_id, reference)

    @property
    def directory(self) -> Path:
        return self._dir

    # -- reading ---------------------------------------------------------------------------------------

    def exists(self, image_id: str) -> bool:
        """Whether the image of this full ID ("sha256:" optional) is stored."""
        return self._exists(image_id.removeprefix("sha256:"))

    def get(self, ref_or_id: str) -> Image:
        """The image a reference, full ID ("sha256:" optional) or unique ID prefix names."""
        with self._lock:
            tags = self._read_tags()
            return self._load(self._resolve(ref_or_id, tags), tags)

    def list(self) -> list[Image]:
        """Every image, tagged or not, newest first (as `docker images`)."""
        with self._lock:
            tags = self._read_tags()
            images = [self._load(hex_id, tags) for hex_id in self._image_hex_ids()]
        return sorted(images, key=lambda image: (_created_sort_key(image.created), image.id), reverse=True)

    # -- importing -------------------------------------------------------------------------------------

    def import_tarball(
        self,
        stream: BinaryIO,
        reference: str | None,
        changes: Sequence[str] = (),
        message: str = "",
    ) -> Image:
        """Import a root filesystem from a tar stream in `docker export` form, plain or compressed
        (gzip, bzip2, xz), as `docker import`: one layer, a config built from `changes`, tagged
        `reference` (moving the tag if another image had it)."""
        if reference and parse_reference(reference).digest is not None:
            raise InvalidParameter("cannot import digest reference")
        target = tag_reference(reference) if reference else None
        container_config = import_container_config()
        apply_changes(container_config, changes)  # a bad --change fails before any byte is read
        comment = message or IMPORT_COMMENT
        with self.layers.hold([]) as held:
            layer = self.layers.add(None, tar_applier(stream), held=held)
            config_bytes = import_config_bytes(container_config, layer.diff_id, comment, rfc3339_now())
            hex_id = self.commit_image(config_bytes)
        with self._lock:
            tags = self._read_tags()
            if target is not None:
                tags[str(target)] = "sha256:" + hex_id
                self._write_tags(tags)
            image = self._load(hex_id, tags)
        self.emit("import", image.id, str(target) if target is not None else "")
        return image

    def add_image(self, config: bytes, layers: Sequence[LayerApplier], tags: Sequence[str] = ()) -> AddedImage:
        """Store an image whose config is known before its files, as `docker load` does: the config is
        kept byte for byte (the ID is its digest) and `layers[i]` applies the config's i-th diff ID (see
        `LayerStore.add`); layers the store has already are not applied again. An image of the same ID
        already here is kept. Each of `tags` ("name:tag") then points at the image, moved from any other
        image that had it."""
        targets = [str(tag_reference(tag)) for tag in tags]
        hex_id = hashlib.sha256(config).hexdigest()
        if self._exists(hex_id):
            return self._tag_added(hex_id, targets)
        chains = chain_ids(config_diff_ids(config))
        if len(chains) != len(layers):
            raise InvalidParameter(f"the image config lists {len(chains)} layers, but {len(layers)} were given")
        with self.layers.hold(chains) as held:
            parent = None
            for chain_id, apply, diff_id in zip(chains, layers, config_diff_ids(config), strict=True):
                if not self.layers.exists(chain_id):
                    self.layers.add(parent, apply, expected_diff_id=diff_id, held=held)
                parent = chain_id
            self.commit_image(config)
        return self._tag_added(hex_id, targets)

    def commit_image(self, config: bytes) -> str:
        """Show the image of `config` whose layers are all in `layers` already (held by the caller); its
        64-hex ID. The same config bytes mean the same image: one already here is kept."""
        hex_id = hashlib.sha256(config).hexdigest()
        chains = chain_ids(config_diff_ids(config))
        if not chains:
            raise InvalidParameter("the image config lists no layers: logship cannot run an image without a rootfs")
        missing = [chain for chain in chains if not self.layers.exists(chain)]
        if missing:
            raise SystemError_(f"cannot store the image sha256:{hex_id}: its layer {missing[0]} is missing")
        if self._exists(hex_id):
            return hex_id
        top = self.layers.get(chains[-1])
        assert top is not None
        with self.layers.staging("image-") as staging:
            _write_durably(staging / _CONFIG, config)
            _write_durably(staging / _META, json.dumps({"size": tree_size(top.rootfs)}).encode())
            with self._lock:
                self._commit(staging, hex_id)
        return hex_id

    def _tag_added(self, hex_id: str, targets: Sequence[str]) -> AddedImage:
        image_id = "sha256:" + hex_id
        with self._lock:
            if not self._exists(hex_id):
                raise Conflict(f"the image {image_id} was removed while it was being loaded: load it again")
            tags = self._read_tags()
            moved = {target: tags[target] for target in targets if tags.get(target, image_id) != image_id}
            if targets:
                tags.update((target, image_id) for target in targets)
                self._write_tags(tags)
            return AddedImage(self._load(hex_id, tags), moved)

    def import_directory(
        self, path: Path, reference: str | None, changes: Sequence[str] = (), message: str = ""
    ) -> Image:
        """Import a root filesystem from a local directory: the same image as importing a tar of it."""
        if not path.is_dir():
            raise InvalidParameter(f"cannot import {str(path)!r}: it is not a directory")
        with self.layers.staging("archive-") as scratch:
            archive_path = scratch / "rootfs.tar"
            with tarfile.open(archive_path, "w", format=tarfile.PAX_FORMAT) as archive:
                archive.add(path, arcname=".")
            with archive_path.open("rb") as stream:
                return self.import_tarball(stream, reference, changes, message)

    # -- tagging and removing --------------------------------------------------------------------------

    def add_references(self, image_id: str, references: Sequence[str]) -> dict[str, str]:
        """Point each of `references` ("name:tag" or "name@sha256:...") at `image_id` (a full ID), as a
        pull does; returns the tags that pointed at another image before, with that image's ID."""
        with self._lock:
            if not self._exists(image_id.removeprefix("sha256:")):
                raise Conflict(f"the image {image_id} was removed while it was being pulled: pull it again")
            tags = self._read_tags()
            names = [str(stored_reference(reference)) for reference in references]
            moved = {name: tags[name] for name in names if tags.get(name, image_id) != image_id}
            tags.update((name, image_id) for name in names)
            self._write_tags(tags)
            return moved

    def tag(self, image_id: str, reference: str) -> None:
        """Point `reference` at the image `image_id` names (any form `get` accepts), moving the tag if
        another image had it."""
        target = tag_reference(reference)
        with self._lock:
            tags = self._read_tags()
            hex_id = self._resolve(image_id, tags)
            tags[str(target)] = "sha256:" + hex_id
            self._write_tags(tags)
        self.emit("tag", "sha256:" + hex_id, str(target))

    def remove(self, ref_or_id: str, force: bool, in_use_by: ContainersUsing) -> RemovalRecords:
        """`docker rmi`: untag, and delete the image when no tag is left.

        `in_use_by(image_id)` returns the IDs of containers built on the image; it is called under the
        store's lock and must not call back into the store. Returns Docker's records, e.g.
        `[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}]`. An image in use is never deleted:
        without `force` that is a Conflict, with `force` its tags go and its data stays until a later
        removal finds it unused.
        """
        with self._lock:
            tags = self._read_tags()
            hex_id = self._resolve(ref_or_id, tags)
            image_id = "sha256:" + hex_id
            users = in_use_by(image_id)
            if is_id_prefix(image_id, ref_or_id):
                records = untag_for_id_removal(tags, image_id, force, users)
            else:
                records = untag_named_reference(tags, image_id, ref_or_id, force, users)
            self._write_tags(tags)
            if users or image_id in tags.values():
                self._emit_removal(image_id, records)
                return records  # still tagged, or in use: the data stays
            records.append({"Deleted": image_id})
            own_rootfs = (self._dir / hex_id / _ROOTFS).is_dir()
            layers = self._diff_ids(hex_id)
            doomed = self._hide(hex_id)
            remaining = self._image_hex_ids()
            if own_rootfs:
                # An image from before layers were shared: its layers "go" when no other image has them.
                still_used = {diff for other in remaining for diff in self._diff_ids(other)}
                records.extend({"Deleted": diff} for diff in layers if diff not in still_used)
            else:
                used = {chain for other in remaining for chain in chain_ids(self._diff_ids(other))}
                removed = set(self.layers.remove_unused(used))
                chains = chain_ids(layers)
                # Docker names the layers it removes by chain ID, top first.
                records.extend({"Deleted": chain} for chain in reversed(chains) if chain in removed)
        shutil.rmtree(doomed, ignore_errors=True)  # slow for a big rootfs, and invisible already
        self._emit_removal(image_id, records)
        return records

    def _emit_removal(self, image_id: str, records: RemovalRecords) -> None:
        for record in records:
            if "Untagged" in record:
                self.emit("untag", image_id, record["Untagged"])
            elif record.get("Deleted") == image_id:
                self.emit("delete", image_id)

    # -- internals -------------------------------------------------------------------------------------

    def _resolve(self, ref_or_id: str, tags: Mapping[str, str]) -> str:
        """The 64-hex ID `ref_or_id` names, as Docker's GetImage: an ID, then a tag, then an ID prefix."""
        target = parse_reference_or_id(ref_or_id)
        if isinstance(target, str):
            hex_id = target.removeprefix("sha256:")
            if self._exists(hex_id):
                return hex_id
            raise NotFound(f"No such image: {target}")
        reference = stored_reference(ref_or_id)
        tagged = tags.get(str(reference), "").removeprefix("sha256:")
        if tagged and self._exists(tagged):
            return tagged
        prefix = ref_or_id.removeprefix("sha256:")
        if HEX_RE.match(prefix):
            matches = [hex_id for hex_id in self._image_hex_ids() if hex_id.startswith(prefix)]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise NotFound(
                    f"No such image: {reference} (the ID prefix {prefix!r} matches {len(matches)} images: "
                    "give more characters)"
                )
        raise NotFound(f"No such image: {reference}")

    def _image_hex_ids(self) -> tuple[str, ...]:
        return tuple(sorted(name for name in os.listdir(self._dir) if self._exists(name)))

    def _exists(self, hex_id: str) -> bool:
        return bool(ID_RE.match(hex_id)) and (self._dir / hex_id / _CONFIG).is_file()

    def _diff_ids(self, hex_id: str) -> tuple[str, ...]:
        config = json.loads((self._dir / hex_id / _CONFIG).read_bytes())
        return tuple(config.get("rootfs", {}).get("diff_ids", []))

    def _load(self, hex_id: str, tags: Mapping[str, str]) -> Image:
        directory = self._dir / hex_id
        config = json.loads((directory / _CONFIG).read_bytes())
        rootfs = directory / _ROOTFS
        if not rootfs.is_dir():  # stored on shared layers
            chains = chain_ids(config.get("rootfs", {}).get("diff_ids", []))
            layer = self.layers.get(chains[-1]) if chains else None
            if layer is None:
                raise SystemError_(
                    f"the layers of the image sha256:{hex_id} are missing from the store: remove the image "
                    "(rmi -f) and pull or load it again"
                )
            rootfs = layer.rootfs
        try:
            size = int(json.loads((directory / _META).read_bytes())["size"])
        except (OSError, ValueError, KeyError):
            size = tree_size(rootfs)  # an image without meta: count again
        image_id = "sha256:" + hex_id
        names = sorted(name for name, target in tags.items() if target == image_id)
        return Image(
            id=image_id,
            repo_tags=[name for name in names if "@" not in name],
            created=str(config.get("created", "")),
            size=size,
            config=config,
            rootfs=rootfs,
            repo_digests=[name for name in names if "@" in name],
        )

    def _commit(self, staging: Path, hex_id: str) -> None:
        """Make a staged image visible in one rename. The same config bytes mean the same image, so an
        existing directory of that ID is kept and the staged copy dropped."""
        try:
            os.rename(staging, self._dir / hex_id)
        except OSError:
            if not self._exists(hex_id):
                raise
            return
        _fsync_directory(self._dir)

    def _hide(self, hex_id: str) -> Path:
        """Take an image out of sight in one rename; the caller deletes the returned tree at leisure."""
        doomed = Path(tempfile.mkdtemp(dir=self._staging, prefix="delete-"))
        os.rename(self._dir / hex_id, doomed / hex_id)
        _fsync_directory(self._dir)
        return doomed

    def _read_tags(self) -> dict[str, str]:
        try:
            data = self._tags_file.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            tags = json.loads(data)
        except ValueError as err:
            raise SystemError_(
                f"the tag file {self._tags_file} is not valid JSON ({err}): restore it from a backup "
                "or remove it (images stay, untagged)"
            ) from None
        return {str(name): str(target) for name, target in tags.items()}

    def _write_tags(self, tags: Mapping[str, str]) -> None:
        data = json.dumps(dict(sorted(tags.items())), indent=2).encode() + b"\n"
        fd, temporary = tempfile.mkstemp(dir=self._dir, prefix=".repositories.")
        try:
            with open(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self._tags_file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(self._dir)


def _created_sort_key(created: str) -> float:
    try:
        return datetime.fromisoformat(created).timestamp()
    except ValueError:
        return 0.0


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
