"""Wake-ups for log followers: the writer announces each write, followers sleep until the next one.

A follower takes the current `waiter()` *before* it looks at the file, then reads, then waits on that
waiter: an announcement made in between has already set it, so no write is ever slept through, and
nobody polls. Used from the event loop only.
"""

from __future__ import annotations

import asyncio


class ChangeNotifier:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def waiter(self) -> asyncio.Event:
        """The event the next `notify()` sets."""
        return self._event

    def notify(self) -> None:
        """Wake everyone waiting now; later waiters get a fresh event."""
        event, self._event = self._event, asyncio.Event()
        event.set()
