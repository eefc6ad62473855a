"""Where `cp` finds a container's files: a running container's live root, or a stopped one's overlay.

A stopped container's overlay is mounted by the archive worker for the copy's duration; the container's
lock is held meanwhile, so it cannot start (and mount the same layers) under the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from logship.runtime.archive import Root

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager
    from logship.daemon.handle import Container


@contextlib.asynccontextmanager
async def container_root(manager: ContainerManager, container: Container, ref: str) -> AsyncIterator[Root]:
    name = ref.lstrip("/")
    process = container.process
    if container.record.state.running and process is not None and process.init_pid:
        yield Root(name, live_root=f"/proc/{process.init_pid}/root")
        return
    async with container.lock:
        process = container.process
        if container.record.state.running and process is not None and process.init_pid:
            yield Root(name, live_root=f"/proc/{process.init_pid}/root")  # started while we waited
            return
        image = await asyncio.to_thread(manager.images.get, container.record.image_id)
        directory = container.dir.resolve()
        layers = (str(image.rootfs), str(directory / "diff"), str(directory / "work"), str(directory / "merged"))
        yield Root(name, overlay=layers)
