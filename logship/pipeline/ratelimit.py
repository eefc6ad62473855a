"""A container's rate limit (`rate-limit` lines per second, `rate-burst` lines at once), as journald's
RateLimitIntervalSec/RateLimitBurst: a token bucket the splicer applies to whole lines before they reach
the spool, so every driver sees the same lines.

- non-blocking mode: a line that starts when the bucket is empty is dropped whole (its rest too, however
  long), and counted;
- blocking mode: the splicer waits for the tokens, and so the container waits to write more.

Off (the default), the splicer splices and nothing here runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._at = time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self._at) * self.rate)
        self._at = now
        return self.tokens

    def wait_s(self, lines: int) -> float:
        """How long until `lines` tokens are there."""
        return max(0.0, (lines - self.refill()) / self.rate)


class RateLimit:
    """One container's limit, shared by its streams; each stream remembers whether the line it is in was
    kept or dropped."""

    def __init__(self, rate: float, burst: int) -> None:
        self.bucket = TokenBucket(rate, burst)
        self._line_kept: dict[str, bool | None] = {}  # None: at the start of a line

    async def admit(self, stream: str, data: bytes, blocking: bool, dropped: Callable[[int], None]) -> bytes:
        """The part of `data` (one read of `stream`) that goes on; `dropped(n)` counts lines given up."""
        if blocking:
            return await self._wait_for(stream, data)
        kept: list[bytes] = []
        lost = 0
        position = 0
        state = self._line_kept.get(stream)
        while position < len(data):
            if state is None:  # a line starts: it goes on whole if a token is there
                state = self.bucket.refill() >= 1.0
                if state:
                    self.bucket.tokens -= 1.0
                    room = int(self.bucket.tokens)
                    # As many whole lines as there are tokens, in one slice.
                    end = _after_newlines(data, position, room + 1)
                    whole = data[end - 1 : end] == b"\n"
                    started = data.count(b"\n", position, end) + (0 if whole else 1)
                    self.bucket.tokens -= started - 1  # the first line's token is taken already
                    kept.append(data[position:end])
                    state = None if whole else True
                    position = end
                    continue
            newline = data.find(b"\n", position)
            end = len(data) if newline < 0 else newline + 1
            if state:
                kept.append(data[position:end])
            elif newline >= 0:
                lost += 1
            if newline >= 0:
                state = None
            position = end
        self._line_kept[stream] = state
        if lost:
            dropped(lost)
        return b"".join(kept)

    def ended(self, stream: str) -> int:
        """The stream's input ended: 1 when it ended inside a line being dropped (counted now), else 0."""
        return 1 if self._line_kept.pop(stream, None) is False else 0

    async def _wait_for(self, stream: str, data: bytes) -> bytes:
        """Blocking mode: a token for every line this read completes, waiting for them as needed."""
        lines = data.count(b"\n")
        if self._line_kept.get(stream) is None and data and not data.endswith(b"\n"):
            lines += 1  # a line starts here and ends in a later read: its token now
        self._line_kept[stream] = None if data.endswith(b"\n") else True
        while lines > 0:
            available = int(self.bucket.refill())
            if available <= 0:
                await asyncio.sleep(self.bucket.wait_s(min(lines, max(1, self.bucket.burst))))
                continue
            taken = min(available, lines)
            self.bucket.tokens -= taken
            lines -= taken
        return data


def _after_newlines(data: bytes, start: int, count: int) -> int:
    """The offset just past the `count`-th newline from `start`, or the end of `data` if fewer."""
    position = start
    for _ in range(count):
        newline = data.find(b"\n", position)
        if newline < 0:
            return len(data)
        position = newline + 1
    return position
