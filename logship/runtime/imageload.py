"""`docker load`: which format an image archive is in, and storing its images as `docker load` reports.

An archive is one tar, plain or compressed (gzip, bzip2, xz, zstd), holding either or both of Docker's
save format (`manifest.json`, read by `dockersave`) and an OCI image layout (`oci-layout` and
`index.json`, read by `ocilayout`). When both are present `manifest.json` is read, as Docker's own loader
does. How the archive is opened and why nothing of it reaches the disk unchecked is `imagearchive`'s.

Reading an archive (`imagearchive.open_archive`, `archive_images`) checks its structure and reads only
the small JSON documents, so a caller can refuse a bad archive before it starts answering; `load_images`
then applies the layers. Both block: run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from logship.errors import InvalidParameter
from logship.runtime.dockersave import MANIFEST, docker_save_images
from logship.runtime.imagearchive import ArchivedImage, ImageArchive, LayerProgress
from logship.runtime.images import Image, ImageStore
from logship.runtime.ocilayout import OCI_INDEX, oci_images

# Receives each line of the load's report, newline included: "Loaded image: busybox:latest\n".
Say = Callable[[str], None]


def archive_images(archive: ImageArchive) -> list[ArchivedImage]:
    """Every image the archive describes, its config and names read and checked, its layers found
    (but not yet read). InvalidParameter says what is wrong with an archive that cannot load."""
    if archive.has(MANIFEST):
        return docker_save_images(archive)
    if archive.has(OCI_INDEX):
        return oci_images(archive)
    raise InvalidParameter(
        f"the archive holds neither {MANIFEST} (a `docker save` tarball) nor {OCI_INDEX} (an OCI image "
        "layout): to make an image from a root filesystem tarball, use `import` instead of `load`"
    )


def load_images(
    store: ImageStore,
    archive: ImageArchive,
    images: Sequence[ArchivedImage],
    say: Say,
    progress: LayerProgress | None = None,
) -> list[Image]:
    """Store `images` (from `archive_images`) and tag them, reporting as `docker load` does:
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
