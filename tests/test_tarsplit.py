"""tar-split: a layer is kept as its extracted files plus its tar without their contents, and rebuilt
byte for byte (so its diff ID, and the image's ID, survive a push) without storing it twice."""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from logship.errors import InvalidParameter
from logship.runtime.tarsplit import SKELETON, apply_and_split, layer_tar
from tests.tarballs import digest, directory, file, hardlink, symlink, tar_of


def split_and_rebuild(tmp_path: Path, archive: bytes, stream: bytes | None = None) -> bytes:
    rootfs, meta = tmp_path / "rootfs", tmp_path / "meta"
    rootfs.mkdir()
    meta.mkdir()
    diff_id = apply_and_split(io.BytesIO(stream if stream is not None else archive), rootfs, meta)
    assert diff_id == digest(archive)
    return b"".join(layer_tar(meta, rootfs, diff_id))


def gnu_tar(*names: str) -> bytes:
    """Long names the GNU way (././@LongLink members), which tarfile's PAX writer never makes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            data = name.encode() * 3
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


LAYERS = {
    "files-dirs-links": tar_of(
        directory("etc/"),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        file("empty"),
        symlink("bin/sh", "busybox"),
        file("bin/busybox", b"\x7fELF" + b"x" * 70_000),
        hardlink("bin/ls", "bin/busybox"),
        file(".wh.gone"),
        file("etc/.wh..wh..opq"),
    ),
    "pax-long-names-and-xattrs": tar_of(
        file("d/" + "n" * 200, b"long", pax_headers={"SCHILY.xattr.user.note": "kept"}),
        file("unicode-é.txt", b"\xff" * 513),
    ),
    "gnu-long-names": gnu_tar("a/" + "x" * 150, "b/" + "/".join(["y" * 100] * 3)),
    "big-random-file": tar_of(file("blob.bin", random.Random(3).randbytes(3 << 20))),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_layer_is_rebuilt_byte_for_byte_from_its_files_and_skeleton(tmp_path: Path, name: str) -> None:
    assert split_and_rebuild(tmp_path, LAYERS[name]) == LAYERS[name]


def test_a_compressed_layer_is_rebuilt_as_its_uncompressed_tar(tmp_path: Path) -> None:
    archive = LAYERS["files-dirs-links"]
    assert split_and_rebuild(tmp_path, archive, gzip.compress(archive)) == archive


def test_the_skeleton_keeps_headers_only(tmp_path: Path) -> None:
    archive = LAYERS["big-random-file"]
    split_and_rebuild(tmp_path, archive)
    assert os.path.getsize(tmp_path / "meta" / SKELETON) < 4096  # of a 3 MiB layer


def test_a_file_changed_on_disk_is_refused_rather_than_pushed(tmp_path: Path) -> None:
    archive = tar_of(file("data", b"original"))
    rootfs, meta = tmp_path / "rootfs", tmp_path / "meta"
    rootfs.mkdir()
    meta.mkdir()
    diff_id = apply_and_split(io.BytesIO(archive), rootfs, meta)
    (rootfs / "data").write_bytes(b"tampered")

    with pytest.raises(InvalidParameter, match="has another digest: its files were changed on disk"):
        b"".join(layer_tar(meta, rootfs, diff_id))


def test_a_layer_writing_one_file_twice_says_it_cannot_be_rebuilt(tmp_path: Path) -> None:
    archive = tar_of(file("twice", b"first"), file("twice", b"second"))
    rootfs, meta = tmp_path / "rootfs", tmp_path / "meta"
    rootfs.mkdir()
    meta.mkdir()
    diff_id = apply_and_split(io.BytesIO(archive), rootfs, meta)

    with pytest.raises(InvalidParameter, match="cannot be rebuilt for pushing: 'twice' is written twice"):
        b"".join(layer_tar(meta, rootfs, diff_id))


def test_rebuilding_never_follows_a_link_out_of_the_layer(tmp_path: Path) -> None:
    archive = tar_of(directory("etc/"), file("etc/secret", b"layer's own"))
    rootfs, meta = tmp_path / "rootfs", tmp_path / "meta"
    rootfs.mkdir()
    meta.mkdir()
    diff_id = apply_and_split(io.BytesIO(archive), rootfs, meta)
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "secret").write_bytes(b"host's own!")
    (rootfs / "etc" / "secret").unlink()
    (rootfs / "etc").rmdir()
    (rootfs / "etc").symlink_to(outside)

    with pytest.raises(InvalidParameter, match="its file 'etc/secret' is gone"):
        b"".join(layer_tar(meta, rootfs, diff_id))
