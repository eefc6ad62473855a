"""A driver's progress through a container's spool: a tiny file with two slots written alternately with
one pwrite each, each slot checksummed, so a kill during a write leaves the other slot intact.

A ledger holds, per stream, a `Checkpoint` (a clean restart point and how many lines the driver has), and
for drivers that append to a file, the `FileIntent` written before a batch goes to it (see
`logship.pipeline.acknowledging`).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

_SLOT_BYTES = 2048


@dataclass(frozen=True)
class Checkpoint:
    """How far a driver has got in one stream.

    `offset` is a clean restart point (the stream's start or just after a newline), `line` the number of
    lines produced before it, `delivered` the number of lines delivered (>= line: the pieces of a long line
    cut after `offset`).
    """

    offset: int = 0
    line: int = 0
    delivered: int = 0


@dataclass
class FileIntent:
    """Written before a batch goes to a log file: what the file was, so a torn write can be undone."""

    path: str
    inode: int
    size: int


@dataclass
class LedgerState:
    streams: dict[str, Checkpoint] = field(default_factory=dict)
    intent: FileIntent | None = None


class Ledger:
    """One driver's progress (two checksummed slots written alternately, one pwrite each).

    `state` is what this daemon knows; `saved` what a restarted one would find. They differ only between
    an acknowledgement that was not written at once (`acknowledge(..., save=False)`: the next `intend`
    saves it along, which halves the writes for file drivers) and that next save.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state, self._seq = read_ledger(path)
        self.saved = dict(self.state.streams)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        # Both slots' blocks are taken now: a later save never needs new space, so a disk that fills up
        # meanwhile never keeps progress from being saved (nor tears a slot).
        try:
            os.posix_fallocate(self._fd, 0, 2 * _SLOT_BYTES)
        except OSError:
            os.close(self._fd)
            raise

    def checkpoint(self, stream: str) -> Checkpoint:
        return self.state.streams.get(stream, Checkpoint())

    def saved_checkpoint(self, stream: str) -> Checkpoint:
        return self.saved.get(stream, Checkpoint())

    def intend(self, intent: FileIntent) -> None:
        self.state.intent = intent
        self._save()

    def forget_intent(self) -> None:
        self.state.intent = None
        self._save()

    def acknowledge(self, stream: str, checkpoint: Checkpoint, save: bool = True) -> None:
        self.state.streams[stream] = checkpoint
        if save:
            self.state.intent = None
            self._save()

    def flush(self) -> None:
        """Save an acknowledgement kept back by `save=False`."""
        if self.saved != self.state.streams:
            self.state.intent = None
            self._save()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _save(self) -> None:
        if self._fd < 0:
            return
        self._seq += 1
        self.saved = dict(self.state.streams)
        # Plain text, one fact a line (json.dumps here cost more than the write itself):
        #   seq N / stream NAME OFFSET LINE DELIVERED / intent INODE SIZE PATH-IN-HEX
        parts = [b"seq %d\n" % self._seq]
        for name, point in self.state.streams.items():
            parts.append(b"stream %s %d %d %d\n" % (name.encode(), point.offset, point.line, point.delivered))
        intent = self.state.intent
        if intent is not None:
            parts.append(b"intent %d %d %s\n" % (intent.inode, intent.size, intent.path.encode().hex().encode()))
        body = b"".join(parts)
        slot = b"%08x %d\n%s" % (zlib.crc32(body), len(body), body)
        if len(slot) > _SLOT_BYTES:
            raise ValueError(f"ledger record of {len(slot)} bytes does not fit its slot")
        os.pwrite(self._fd, slot, (self._seq % 2) * _SLOT_BYTES)


def read_ledger(path: Path) -> tuple[LedgerState, int]:
    """The newest intact slot (a torn slot fails its checksum and the other one counts)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LedgerState(), 0
    best: tuple[LedgerState, int] = (LedgerState(), 0)
    for start in (0, _SLOT_BYTES):
        header, _, rest = raw[start : start + _SLOT_BYTES].partition(b"\n")
        try:
            checksum, length = header.split(b" ")
            body = rest[: int(length)]
            if len(body) != int(length) or int(checksum, 16) != zlib.crc32(body):
                continue  # never written, or torn
            seq, state = _parse_ledger(body)
        except ValueError:
            continue
        if seq > best[1]:
            best = (state, seq)
    return best


def _parse_ledger(body: bytes) -> tuple[int, LedgerState]:
    seq = 0
    state = LedgerState()
    for line in body.decode().splitlines():
        kind, *fields = line.split(" ")
        if kind == "seq":
            seq = int(fields[0])
        elif kind == "stream":
            state.streams[fields[0]] = Checkpoint(int(fields[1]), int(fields[2]), int(fields[3]))
        elif kind == "intent":
            state.intent = FileIntent(bytes.fromhex(fields[2]).decode(), int(fields[0]), int(fields[1]))
        else:
            raise ValueError(f"unknown ledger line {line!r}")
    return seq, state
