"""The shared layer store: two images on one base layer keep it once, and `rmi` frees only what no
other image uses; images stored before layers were shared (a flat rootfs of their own) still work."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from logship.runtime.images import ImageStore
from logship.runtime.layers import chain_ids, tar_applier
from tests.tarballs import digest, file, tar_of

BASE = tar_of(file("base.bin", b"b" * 100_000), file("etc/os-release", b"ID=test\n"))


def config(*layers: bytes, cmd: str = "true") -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": [digest(layer) for layer in layers]},
        }
    ).encode()


def add(store: ImageStore, tag: str, *layers: bytes) -> str:
    appliers = [tar_applier(io.BytesIO(layer)) for layer in layers]
    return store.add_image(config(*layers, cmd=tag), appliers, [tag]).image.id


def nobody_uses(image_id: str) -> list[str]:
    return []


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "data")


def test_two_images_on_one_base_layer_store_its_files_once(store: ImageStore, tmp_path: Path) -> None:
    add(store, "one:1", BASE, tar_of(file("one.txt", b"1")))
    add(store, "two:1", BASE, tar_of(file("two.txt", b"2")))

    one, two = store.get("one:1"), store.get("two:1")
    assert (one.rootfs / "one.txt").read_bytes() == b"1" and not (one.rootfs / "two.txt").exists()
    assert (two.rootfs / "two.txt").read_bytes() == b"2" and not (two.rootfs / "one.txt").exists()
    # The base layer's file is one inode, seen by both images.
    assert (one.rootfs / "base.bin").stat().st_ino == (two.rootfs / "base.bin").stat().st_ino
    layers = sorted(os.listdir(tmp_path / "data" / "images" / "layers"))
    assert len(layers) == 3  # the base, and one stack on it per image


def test_a_layer_replacing_a_base_file_never_changes_the_shared_inode(store: ImageStore) -> None:
    add(store, "base:1", BASE)
    add(store, "changed:1", BASE, tar_of(file("base.bin", b"changed"), file(".wh.etc", b"")))

    assert (store.get("base:1").rootfs / "base.bin").read_bytes() == b"b" * 100_000
    assert (store.get("base:1").rootfs / "etc/os-release").exists()
    assert (store.get("changed:1").rootfs / "base.bin").read_bytes() == b"changed"
    assert not (store.get("changed:1").rootfs / "etc").exists()


def test_rmi_frees_only_the_layers_no_other_image_uses(store: ImageStore) -> None:
    top_one, top_two = tar_of(file("one.txt", b"1")), tar_of(file("two.txt", b"2"))
    one = add(store, "one:1", BASE, top_one)
    add(store, "two:1", BASE, top_two)
    base_chain, one_chain = chain_ids([digest(BASE), digest(top_one)])

    records = store.remove("one:1", force=False, in_use_by=nobody_uses)

    assert records == [{"Untagged": "one:1"}, {"Deleted": one}, {"Deleted": one_chain}]
    assert (store.get("two:1").rootfs / "base.bin").stat().st_size == 100_000
    records = store.remove("two:1", force=False, in_use_by=nobody_uses)
    assert records[-1] == {"Deleted": base_chain}
    assert store.layers.get(base_chain) is None


def test_an_image_stored_before_layers_were_shared_is_still_read_and_removed(store: ImageStore, tmp_path: Path) -> None:
    # The layout of earlier versions: <id>/config.json, meta.json and a flat rootfs/ of its own.
    image_id = add(store, "old:1", BASE)
    hex_id = image_id.removeprefix("sha256:")
    layer = store.get("old:1").rootfs
    shutil.copytree(layer, tmp_path / "data" / "images" / hex_id / "rootfs", symlinks=True)
    shutil.rmtree(layer.parent)

    reopened = ImageStore(tmp_path / "data")
    old = reopened.get("old:1")
    assert old.rootfs == tmp_path / "data" / "images" / hex_id / "rootfs"
    assert (old.rootfs / "base.bin").stat().st_size == 100_000
    assert reopened.remove("old:1", force=False, in_use_by=nobody_uses)[-1] == {"Deleted": digest(BASE)}
    assert reopened.list() == []
