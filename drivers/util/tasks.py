"""How a network driver ends its sender at close: the sender gets `timeout_s` to send what is queued (the
container's last lines), then is cancelled. The wait is shielded, so a close that is itself cancelled (a
daemon stopping) does not cancel the sender half-way through a write before the cancellation below."""

from __future__ import annotations

import asyncio
import contextlib


async def finish_within(task: asyncio.Task[None], timeout_s: float) -> None:
    """Let `task` finish within `timeout_s`, else cancel it and wait until it is gone."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
