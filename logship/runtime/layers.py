"""The layer store: every layer of every image once on disk, shared by the images built on it.

A layer is known by its chain ID (OCI's ChainID): the diff ID of the first layer, then
sha256(parent chain ID + " " + diff ID) for each layer on top, so a chain ID names a whole stack of
layers, not one diff. Two images whose first layers are the same share those chains. On disk, under
`<data_root>/images/layers/`:

    <chain-hex>/rootfs/       the filesystem of the whole stack: ready to be an overlay lowerdir
    <chain-hex>/layer.json    {"diff_id", "parent" (chain ID or null), "blob": the {"digest", "size",
                              "mediaType"} it was pulled as, or null}
    <chain-hex>/tar-split.*   the layer's tar without its files' contents (`tarsplit`), from which push
                              rebuilds the exact tar, so a pushed image keeps its ID

A stack's rootfs is its parent's rootfs copied with hard links (`cp -al`: new directories, the same file
inodes), then the layer applied on top. `tarsafe.apply_layer` removes an entry before it writes one of
the same name and never writes into an existing file, so a file shared with the parent is never changed
in place: each stack only adds the files its own layer brought. The runtime mounts a stack's rootfs read
only, as the lower layer of the container's overlay, so no container ever writes to a shared inode.

A layer is built in the store's staging directory and shown with one rename, like images. A chain no image
refers to is removed by `remove_unused` (the image store calls it when `rmi` deletes an image); chains a
pull or load is building on are held (`hold`) so a concurrent `rmi` does not take them away mid-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from logship.errors import InvalidParameter, SystemError_
from logship.runtime.reference import ID_RE
from logship.runtime.tarsplit import apply_and_split

LAYERS = "layers"
_ROOTFS = "rootfs"
_META = "layer.json"
_LEGACY_BLOB = "blob"

MEDIA_TYPE_TAR = "application/vnd.docker.image.rootfs.diff.tar"


@dataclass(frozen=True)
class Blob:
    """A layer as it travels to and from registries: its digest, size in bytes and media type."""

    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    blob: Blob | None  # what it was pulled as
    directory: Path

    @property
    def rootfs(self) -> Path:
        return self.directory / _ROOTFS

    @property
    def legacy_blob_path(self) -> Path:
        """Where layers stored by the first version of this store kept their blob (pulled, or a tar)."""
        return self.directory / _LEGACY_BLOB


# Applies one layer into `rootfs` (which holds the layers below it already), keeping its tar's skeleton in
# the layer's directory (`tarsplit.apply_and_split`); returns the diff ID it applied and the registry blob
# it came from, if it came from one.
LayerApplier = Callable[[Path, Path], tuple[str, Blob | None]]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI's ChainIDs of each prefix of the stack `diff_ids`."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(
            diff_id if not chains else "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
        )
    return chains


def tar_applier(stream: BinaryIO) -> LayerApplier:
    """Applies a tar stream (plain or compressed) as a layer."""

    def apply(rootfs: Path, directory: Path) -> tuple[str, Blob | None]:
        return apply_and_split(stream, rootfs, directory), None

    return apply


class LayerStore:
    """Stacks of layers under `<images>/layers/`, built in `staging`. Thread-safe."""

    def __init__(self, images_dir: Path, staging: Path) -> None:
        self._dir = images_dir / LAYERS
        self._staging = staging
        self._dir.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def get(self, chain_id: str) -> Layer | None:
        directory = self._directory(chain_id)
        try:
            meta = json.loads((directory / _META).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as err:
            raise SystemError_(
                f"the layer record {directory / _META} is not valid JSON ({err}): remove the directory "
                f"{directory} and pull or load the images that use it again"
            ) from None
        blob = meta.get("blob")
        return Layer(
            chain_id=chain_id,
            diff_id=meta["diff_id"],
            parent=meta.get("parent"),
            blob=Blob(blob["digest"], int(blob["size"]), blob["mediaType"]) if blob else None,
            directory=directory,
        )

    def exists(self, chain_id: str) -> bool:
        return (self._directory(chain_id) / _META).is_file()

    def add(
        self,
        parent: str | None,
        apply: LayerApplier,
        expected_diff_id: str | None = None,
        held: list[str] | None = None,
    ) -> Layer:
        """Build the stack `parent` + one layer with `apply`, and show it in one rename. When the same
        stack appeared meanwhile (another pull of a shared layer), that one is kept and this copy dropped.
        `expected_diff_id`: what the image config says the layer is; anything else is refused."""
        if parent is not None and not self.exists(parent):
            raise SystemError_(f"the layer {parent} an image needs is missing from {self._dir}: pull or load it again")
        with self.staging("layer-") as staging:
            rootfs = staging / _ROOTFS
            if parent is None:
                rootfs.mkdir()
                os.chmod(rootfs, 0o755)  # unless the layer's "./" entry says otherwise
            else:
                _link_copy(self._directory(parent) / _ROOTFS, rootfs)
            diff_id, blob = apply(rootfs, staging)
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise InvalidParameter(
                    f"the layer's content has the digest {diff_id}, but the image config's rootfs.diff_ids "
                    f"says {expected_diff_id}: the layer is corrupt or was altered"
                )
            chain_id = chain_ids([diff_id])[0] if parent is None else chain_ids([parent, diff_id])[1]
            meta = {
                "diff_id": diff_id,
                "parent": parent,
                "blob": None
                if blob is None
                else {"digest": blob.digest, "size": blob.size, "mediaType": blob.media_type},
            }
            (staging / _META).write_text(json.dumps(meta))
            # The files were written without fsync, one by one; flush them at once before the rename
            # shows the layer, so a crash cannot leave it with empty files.
            os.sync()
            if held is not None:
                with self._lock:
                    self._held[chain_id] += 1
                    held.append(chain_id)
            try:
                os.rename(staging, self._directory(chain_id))
            except OSError:
                if not self.exists(chain_id):
                    raise
        layer = self.get(chain_id)
        assert layer is not None
        return layer

    @contextmanager
    def hold(self, chains: Iterable[str]) -> Iterator[list[str]]:
        """Keep `chains`, and those `add(..., held=...)` creates with the list this yields, from
        `remove_unused` while a pull or load builds on them and until its image is stored."""
        held = list(chains)
        with self._lock:
            self._held.update(held)
        try:
            yield held
        finally:
            with self._lock:
                self._held.subtract(held)
                self._held += Counter()  # drop the zero counts

    def remove_unused(self, used: set[str]) -> list[str]:
        """Remove every stack outside `used` (chain IDs) and not held; their chain IDs."""
        removed = []
        with self._lock:
            keep = used | set(self._held)
            for name in os.listdir(self._dir):
                chain_id = "sha256:" + name
                if not ID_RE.match(name) or chain_id in keep:
                    continue
                doomed = Path(tempfile.mkdtemp(dir=self._staging, prefix="delete-"))
                os.rename(self._dir / name, doomed / name)
                shutil.rmtree(doomed, ignore_errors=True)
                removed.append(chain_id)
        return removed

    @contextmanager
    def staging(self, prefix: str) -> Iterator[Path]:
        """A scratch directory on the store's filesystem, removed afterwards unless renamed away."""
        path = Path(tempfile.mkdtemp(dir=self._staging, prefix=prefix))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _directory(self, chain_id: str) -> Path:
        hex_id = chain_id.removeprefix("sha256:")
        if not ID_RE.match(hex_id):
            raise InvalidParameter(f"invalid layer chain ID {chain_id!r}")
        return self._dir / hex_id


def _link_copy(source: Path, target: Path) -> None:
    """`target` as a copy of the tree `source` whose files are hard links to the same inodes, directories
    new, with owners, modes, times and extended attributes kept (coreutils' cp -al does it in C)."""
    completed = subprocess.run(
        ["cp", "-a", "--link", "--no-target-directory", str(source), str(target)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemError_(
            f"cannot build a layer on {source}: cp -al failed ({completed.stderr.decode(errors='replace').strip()})"
        )
