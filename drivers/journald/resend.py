"""Entries lost when journald restarts, found and sent again.

The journal's socket is a datagram socket with no acknowledgement: `sendmsg` succeeds once the kernel has
queued the entry on journald's socket. When journald dies, the entries still queued there (up to
`net.unix.max_dgram_qlen` + 1 of them) vanish with its socket, and nothing tells the sender. So the driver
keeps a window of the entries it sent last, and when it sees that journald went away (a send failed) or was
replaced (the socket at the journal's path is a new inode), it reads back from the journal which of those
entries the old journald stored, by their CONTAINER_LOG_EPOCH and CONTAINER_LOG_ORDINAL, and sends the
others again. Delivery is then at-least-once: an entry the new journald received but had not yet written
when the journal was read back can arrive twice (the journal is read until it stops changing to make that
rare). A resent entry keeps its ordinal and SYSLOG_TIMESTAMP but gets a later receive time, so it comes
after newer entries in journal order.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

MIN_WINDOW = 1024
SETTLE_POLL_S = 0.1  # between two reads of the journal while it is still changing
SETTLE_MAX_S = 2.0


def window_size() -> int:
    """How many sent entries to keep: comfortably more than journald's socket can queue."""
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as qlen:
            queued = int(qlen.read())
    except (OSError, ValueError):
        queued = 512  # systemd's own sysctl default
    return max(MIN_WINDOW, 4 * (queued + 1))


def socket_identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the socket at `path`: a restarted journald binds a new one."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


@dataclass
class SentEntry:
    ordinal: int
    fields: list[bytes]


class SentWindow:
    """The last entries handed to journald, oldest first, and when the oldest was sent."""

    def __init__(self, size: int) -> None:
        self._entries: deque[SentEntry] = deque(maxlen=size)
        self._first_sent_s: deque[float] = deque(maxlen=size)

    def add(self, ordinal: int, fields: list[bytes]) -> None:
        self._entries.append(SentEntry(ordinal, fields))
        self._first_sent_s.append(time.time())

    def __iter__(self) -> Iterator[SentEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def oldest_sent_s(self) -> float:
        return self._first_sent_s[0] if self._first_sent_s else time.time()


def stored_ordinals(epoch: str, since_s: float) -> set[int]:
    """CONTAINER_LOG_ORDINALs of this epoch's entries the journal holds, received since `since_s`."""
    from systemd import journal

    found: set[int] = set()
    with journal.Reader() as reader:
        reader.add_match(CONTAINER_LOG_EPOCH=epoch)
        reader.seek_realtime(since_s - 1.0)  # journald stamps on receipt, after we sent
        for entry in reader:
            try:
                found.add(int(entry["CONTAINER_LOG_ORDINAL"]))
            except (KeyError, ValueError):
                continue
    return found


def lost_entries(window: SentWindow, epoch: str) -> list[SentEntry]:
    """The window's entries the journal does not hold, once the journal has stopped changing."""
    since = window.oldest_sent_s()
    wanted = {entry.ordinal for entry in window}
    stored = stored_ordinals(epoch, since) & wanted
    deadline = time.monotonic() + SETTLE_MAX_S
    while stored != wanted and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        again = stored_ordinals(epoch, since) & wanted
        if again == stored:
            break
        stored = again
    return [entry for entry in window if entry.ordinal not in stored]
