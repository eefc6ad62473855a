"""The end of a run's output: how long the daemon waits for a container's pipes to drain into the spool
before it lets the container's supervisor go, and what it tells a driver that is still stuck then.
"""

from __future__ import annotations

import asyncio
import logging

from logship.daemon.output import Output
from logship.pipeline.router import DEFAULT_FLUSH_TIMEOUT_S
from logship.runtime import spawn

log = logging.getLogger("logship.containers")

# After the container's main process is gone its pipes reach EOF at once (every writer died with the pid
# namespace); this bound only guards against a runtime bug keeping a writer open.
DRAIN_TIMEOUT_S = 30.0
EXIT_FLUSH_REASON = f"not written within the {DEFAULT_FLUSH_TIMEOUT_S:g}s flush bound after the container ended"


async def release_when_drained(short_id: str, process: spawn.Process, output: Output) -> None:
    """Let the supervisor go once every output FIFO has reached EOF and its bytes are in the spool. Once the
    container's pid 1 is gone the pipes drain at once, unless a stuck driver holds the copiers (blocking
    mode): after the flush bound they stop waiting for it (`Router.give_up_waiting`). If a FIFO stays open
    (a process outside the container holding a write end), the supervisor is let go after DRAIN_TIMEOUT_S
    anyway, so the container does not look "running" forever."""

    async def input_ended() -> None:  # a task, not the bare gather: cancelling it then leaves no stray error
        assert output.spool is not None
        await output.spool.input_ended()

    drained = asyncio.ensure_future(input_ended())
    init_gone = asyncio.ensure_future(process.wait_init())
    try:
        await asyncio.wait({drained, init_gone}, return_when=asyncio.FIRST_COMPLETED)
        if not drained.done():
            finished, _ = await asyncio.wait({drained}, timeout=DEFAULT_FLUSH_TIMEOUT_S)
            if not finished:
                output.router.give_up_waiting(EXIT_FLUSH_REASON)
        if not drained.done():
            try:
                await asyncio.wait_for(asyncio.shield(drained), DRAIN_TIMEOUT_S)
            except TimeoutError:
                log.error("container %s: its output is still open %ss after it ended", short_id, DRAIN_TIMEOUT_S)
        process.release()
    finally:
        drained.cancel()
        init_gone.cancel()
