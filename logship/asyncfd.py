"""Waiting on raw file descriptors from asyncio (FIFOs, pty masters, pidfds)."""

from __future__ import annotations

import asyncio


def wait_readable(fd: int) -> asyncio.Future[None]:
    """A future done once `fd` polls readable: data, EOF, or for a pidfd, the process exited.
    Cancelling it (or its completion) removes the reader, so no callback outlives the wait."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_reader(fd, ready)
    future.add_done_callback(lambda _: loop.remove_reader(fd))
    return future
