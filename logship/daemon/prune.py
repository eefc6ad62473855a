"""`system df`, `container prune` and `image prune`: what the data root holds, and getting space back.

Docker's filters: containers by `until` (created before) and `label`/`label!`; images by `dangling`
(true, the default: untagged images only; false: every image no container uses), `until` and
`label`/`label!`. `until` takes what the docker CLI passes on: a Unix time, an RFC 3339 time or a
duration ("24h": created more than a day ago). Removals go through the usual paths, so each removed
container or image has its `destroy`/`delete` event, and each prune a `prune` event with the bytes
reclaimed, as dockerd sends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from logship.daemon.events import CONTAINER, IMAGE
from logship.errors import InvalidParameter, LogshipError
from logship.logscommand import InvalidTime, api_timestamp
from logship.runtime.images import Image
from logship.runtime.treesize import tree_size

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager
    from logship.daemon.handle import Container

log = logging.getLogger("logship.prune")

CONTAINER_FILTERS = frozenset({"until", "label", "label!"})
IMAGE_FILTERS = frozenset({"dangling", "until", "label", "label!"})
PRUNABLE_STATES = ("created", "exited", "dead")


def _until_ns(filters: dict[str, list[str]]) -> int:
    values = filters.get("until", [])
    if len(values) > 1:
        raise InvalidParameter("more than one until filter specified")
    if not values:
        return 0
    try:
        stamp = api_timestamp(values[0], "until")
    except InvalidTime as err:
        raise InvalidParameter(str(err)) from None
    seconds, _, nanos = stamp.partition(".")
    return int(seconds) * 1_000_000_000 + int((nanos or "0")[:9].ljust(9, "0"))


def _labels_match(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
    """`label` (all must match) and `label!` (none may match), as dockerd's prune filters."""

    def has(wanted: str) -> bool:
        key, with_value, value = wanted.partition("=")
        return key in labels and (not with_value or labels[key] == value)

    return all(has(v) for v in filters.get("label", [])) and not any(has(v) for v in filters.get("label!", []))


def container_size(container: Container) -> int:
    """Bytes the container wrote to its own layer (dockerd's SizeRw)."""
    upper = container.dir / "diff"
    return tree_size(upper) if upper.is_dir() else 0


async def prune_containers(manager: ContainerManager, filters: dict[str, list[str]]) -> dict[str, Any]:
    until_ns = _until_ns(filters)
    deleted: list[str] = []
    reclaimed = 0
    for container in manager.all():
        record = container.record
        if record.state.status not in PRUNABLE_STATES:
            continue
        if until_ns and record.created_ns >= until_ns:
            continue
        if not _labels_match(record.config.get("Labels") or {}, filters):
            continue
        size = await asyncio.to_thread(container_size, container)
        try:
            await manager.remove(container, force=False)
        except LogshipError as err:  # it started meanwhile: not prunable any more
            log.info("prune skipped container %s: %s", record.short_id, err)
            continue
        deleted.append(record.id)
        reclaimed += size
    manager.events.emit(CONTAINER, "prune", "", {"reclaimed": str(reclaimed)})
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


async def prune_images(manager: ContainerManager, filters: dict[str, list[str]]) -> dict[str, Any]:
    dangling_only = True
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"Invalid filter 'dangling={value}'")
        dangling_only = value.lower() in ("true", "1")
    until_ns = _until_ns(filters)
    store = manager.images
    used = {container.record.image_id for container in manager.all()}
    records: list[dict[str, str]] = []
    reclaimed = 0
    for image in await asyncio.to_thread(store.list):
        if image.id in used or (dangling_only and image.repo_tags):
            continue
        if until_ns and _created_ns(image) >= until_ns:
            continue
        if not _labels_match((image.config.get("config") or {}).get("Labels") or {}, filters):
            continue
        removed: list[dict[str, str]] = []
        try:  # by each of its tags, as dockerd does: the last one takes the image with it
            for reference in image.repo_tags or [image.id]:
                removed += await asyncio.to_thread(store.remove, reference, False, manager.containers_using_image)
        except LogshipError as err:
            log.info("prune skipped image %s: %s", image.id[7:19], err)
            if not removed:
                continue
        records.extend(removed)
        if any("Deleted" in entry for entry in removed):
            reclaimed += image.size
    manager.events.emit(IMAGE, "prune", "", {"reclaimed": str(reclaimed)})
    return {"ImagesDeleted": records or None, "SpaceReclaimed": reclaimed}


def _created_ns(image: Image) -> int:
    try:
        return int(float(api_timestamp(image.created, "created")) * 1e9)
    except (InvalidTime, ValueError):
        return 0


async def disk_usage(manager: ContainerManager, summary: Any) -> dict[str, Any]:
    """`GET /system/df`: images (with how many containers use each), containers (with the size of their
    own layer), volumes (with their size and how many containers use each), no build cache (logship has
    none)."""
    images = await asyncio.to_thread(manager.images.list)
    users: dict[str, int] = {}
    for container in manager.all():
        users[container.record.image_id] = users.get(container.record.image_id, 0) + 1
    image_sizes = {image.id: image.size for image in images}
    image_entries = []
    for image in images:
        entry = summary(image)
        entry["Containers"] = users.get(image.id, 0)
        entry["SharedSize"] = 0
        image_entries.append(entry)
    container_entries = []
    for container in manager.all():
        entry = container.record.to_summary()
        size = await asyncio.to_thread(container_size, container)
        entry["SizeRw"] = size
        entry["SizeRootFs"] = size + image_sizes.get(container.record.image_id, 0)
        container_entries.append(entry)
    volume_entries = []
    for volume in await asyncio.to_thread(manager.volumes.all):
        entry = volume.to_api()
        size = await asyncio.to_thread(tree_size, volume.mountpoint)
        entry["UsageData"] = {"Size": size, "RefCount": len(manager.volumes.users(volume.name))}
        volume_entries.append(entry)
    return {
        "LayersSize": sum(image_sizes.values()),
        "Images": image_entries,
        "Containers": container_entries,
        "Volumes": volume_entries,
        "BuildCache": [],
        "BuilderSize": 0,
    }
