"""Disk budgets: how much a disk-buffered driver may hold before its container waits (blocking mode) or its
oldest lines are given up (non-blocking mode).

- `buffer-max-size` (a log-opt, per container and driver) bounds one `DiskBuffer`.
- `log-buffer-total` (daemon.json) bounds them all together. When the total is used up, the containers
  holding more than an even share of it are the ones held back (or made to give up lines); a container
  whose backend keeps up holds almost nothing and goes on as before.
- The daemon log gets one warning when a budget passes half, and one when it passes 90%; each is said
  again only after the budget has fallen back below a quarter, and at most once a minute.

The copier asks its container's `BufferGate` before every splice; nothing here runs on the hot path of a
container whose drivers keep up but a few comparisons.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from logship.humanize import human_size
from logship.pipeline.diskbuffer import DiskBuffer
from logship.pipeline.spool import READ_SIZE, SEGMENT_BYTES

log = logging.getLogger("logship.diskbuffer")

WARN_LEVELS = (0.5, 0.9)
REARM_BELOW = 0.25
WARN_INTERVAL_S = 60.0
_TOTAL_FRESH_S = 0.1  # the daemon-wide total is summed at most this often
HOLD_POLL_S = 1.0  # a held container looks again this often (the total may change elsewhere)
MIN_SPLICE = 64 << 10  # a budget almost used up still lets this much in at a time (its overshoot at most)


@dataclass
class _Warnings:
    """Which thresholds were announced for one budget, and when."""

    said: set[float] = field(default_factory=set)
    last: dict[float, float] = field(default_factory=dict)

    def check(self, used: int, limit: int, what: str) -> None:
        if limit <= 0:
            return
        fill = used / limit
        if fill < REARM_BELOW:
            self.said.clear()
            return
        crossed = [level for level in WARN_LEVELS if fill >= level and level not in self.said]
        if not crossed:
            return
        level = crossed[-1]  # from below half to past 90% at once: the 90% warning alone
        now = time.monotonic()
        if now - self.last.get(level, -WARN_INTERVAL_S) < WARN_INTERVAL_S:
            return
        self.said.update(lv for lv in WARN_LEVELS if lv <= level)
        self.last[level] = now
        log.warning(
            "%s is %d%% full (%s of %s)%s",
            what,
            int(fill * 100),
            human_size(used),
            human_size(limit),
            "; its backend is not keeping up" if level < 0.9 else "; at 100% lines wait or are given up",
        )


class DaemonBudget:
    """`log-buffer-total`: every disk buffer of the daemon together (0: no daemon-wide bound)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.buffers: set[DiskBuffer] = set()
        self._summed_at = -_TOTAL_FRESH_S
        self._backlogs: dict[DiskBuffer, int] = {}  # as last summed
        self._used = 0
        self._holders = 0
        self._warnings = _Warnings()

    def register(self, buffer: DiskBuffer) -> None:
        self.buffers.add(buffer)

    def unregister(self, buffer: DiskBuffer) -> None:
        self.buffers.discard(buffer)
        self._backlogs.pop(buffer, None)

    def used(self) -> int:
        self._sum()
        return self._used

    def _sum(self) -> None:
        """Every buffer's backlog, at most every _TOTAL_FRESH_S (500 containers splice often)."""
        now = time.monotonic()
        if now - self._summed_at < _TOTAL_FRESH_S:
            return
        self._summed_at = now
        self._backlogs = {buffer: buffer.backlog() for buffer in self.buffers}
        self._used = sum(self._backlogs.values())
        self._holders = sum(1 for backlog in self._backlogs.values() if backlog)
        self._warnings.check(self._used, self.total, "the daemon's disk buffers (log-buffer-total)")

    def _used_with(self, buffer: DiskBuffer, backlog: int) -> int:
        """The total with `buffer`'s own backlog as it is now (the others' as last summed)."""
        self._sum()
        return self._used - self._backlogs.get(buffer, 0) + backlog

    def excess(self, buffer: DiskBuffer) -> int:
        """How far `buffer` is past its share of a used-up total (0 when the total is not used up)."""
        if not self.total:
            return 0
        backlog = buffer.backlog()
        used = self._used_with(buffer, backlog)
        if used <= self.total:
            return 0
        share = self.total // max(1, self._holders)
        return max(0, min(used - self.total, backlog - share))

    def room(self, buffer: DiskBuffer) -> int:
        """What the total leaves for `buffer`'s next splice (READ_SIZE without a daemon-wide bound)."""
        if not self.total:
            return READ_SIZE
        return max(0, self.total - self._used_with(buffer, buffer.backlog()))


class BufferGate:
    """A container's disk buffers, asked by its copiers before each splice (see `copier.Gate`)."""

    def __init__(self, container: str, buffers: list[DiskBuffer], budget: DaemonBudget, blocking: bool) -> None:
        self.container = container
        self.buffers = buffers
        self.budget = budget
        self.blocking = blocking
        self._warnings = {id(buffer): _Warnings() for buffer in buffers}
        self._names = {
            id(buffer): f"the disk buffer of log driver {buffer.name} for container {container[:12]} (buffer-max-size)"
            for buffer in buffers
        }

    async def before_splice(self) -> int:
        room = READ_SIZE
        for buffer in self.buffers:
            while not buffer.done.is_set():
                over = buffer.over_budget(self.budget.excess(buffer))
                self._warnings[id(buffer)].check(buffer.backlog(), buffer.config.limit, self._names[id(buffer)])
                if not over:
                    own = buffer.config.limit - buffer.backlog()
                    room = min(room, max(MIN_SPLICE, min(own, self.budget.room(buffer))))
                    break
                if not self.blocking:
                    buffer.give_up_oldest(over)
                    break
                await buffer.wait_progress(HOLD_POLL_S)
        return room

    def bypassed(self, lines: int) -> None:
        for buffer in self.buffers:
            buffer.stats.lines_dropped += lines

    def disk_full(self) -> bool:
        freed = False
        for buffer in self.buffers:
            freed = buffer.release_disk(SEGMENT_BYTES) or freed
        return freed
