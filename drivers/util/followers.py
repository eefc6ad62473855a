"""The writer's side of `logs -f`: who follows a log file, the files handed to each, and what was lost.

Why: every rotation with max-file deletes the oldest rotated file. A follower that is behind (a client
that reads slowly, or simply one big write that rotates a small file several times at once: one read
of a container's output can be a megabyte) would find the files it had not reached gone. Docker loses
those lines (moby#23913, #39235). So `LogFile` knows its followers, and before it deletes a file that a
follower has not reached, it opens the file for that follower: an open descriptor keeps an unlinked
file readable, and the follower reads it when it gets there, in order.

That costs disk (the deleted file's blocks stay in use while the follower holds it), so it is bounded
per follower: the files handed to one follower and not yet read add up to at most `follow-backlog`
bytes (256 MiB by default) and MAX_HANDED_FILES files. Past that, the file is deleted as in Docker and
its lines are counted as lost for that follower (`FollowLoss`); the follower reports them when it
reaches the gap, so the report stands where the lines would have been: after the files handed to it
before the bound was reached, before the files still there.

All state here is changed under the `LogFile`'s file-operation lock: by the writer when it rotates,
by the follower when it picks its files up (`LogFile.open_since`) or is done with one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

# Descriptors are the other cost: a log with a tiny max-size could otherwise hand one follower tens of
# thousands of files within its byte bound.
MAX_HANDED_FILES = 1024
DEFAULT_FOLLOW_BACKLOG = 256 << 20


@dataclass
class RotatedFile:
    path: str
    file: BinaryIO
    compressed: bool
    held: int = 0  # bytes this file counts against its follower's backlog (files handed over by the writer)


@dataclass(frozen=True)
class FollowLoss:
    """Lines a follower lost: max-file deleted files it had not read, beyond what it could be handed."""

    lines: int = 0  # messages, as `--tail` counts them (each piece of a line longer than 16 KiB is one)
    files: int = 0
    nbytes: int = 0
    uncounted_files: int = 0  # files that vanished without the writer (removed by hand): lines unknown

    def __bool__(self) -> bool:
        return bool(self.files or self.uncounted_files)

    def __add__(self, other: FollowLoss) -> FollowLoss:
        return FollowLoss(
            self.lines + other.lines,
            self.files + other.files,
            self.nbytes + other.nbytes,
            self.uncounted_files + other.uncounted_files,
        )

    def encode(self) -> bytes:
        """The text of a reader's loss notice (see `drivers.base.LOST`), read back by `decode`."""
        return b"lines=%d files=%d bytes=%d uncounted-files=%d" % (
            self.lines,
            self.files,
            self.nbytes,
            self.uncounted_files,
        )

    @classmethod
    def decode(cls, text: bytes) -> FollowLoss:
        fields = dict(item.split(b"=", 1) for item in text.split())
        return cls(int(fields[b"lines"]), int(fields[b"files"]), int(fields[b"bytes"]), int(fields[b"uncounted-files"]))

    def describe(self) -> str:
        """For the person following: what was lost, why, and what to change."""
        parts = []
        if self.files:
            parts.append(
                f"{self.lines} log lines ({self.files} rotated file{'s' if self.files != 1 else ''}, "
                f"{self.nbytes} bytes) were deleted by max-file before this follower could read them: it had fallen "
                "behind by more than follow-backlog allows"
            )
        if self.uncounted_files:
            parts.append(
                f"{self.uncounted_files} rotated file{'s' if self.uncounted_files != 1 else ''} disappeared before "
                f"this follower could read {'them' if self.uncounted_files != 1 else 'it'} (removed outside logship)"
            )
        advice = "to keep up, read faster or raise the container's max-size, max-file or follow-backlog log-opts"
        return "; ".join([*parts, advice])


class Follower:
    """One reader following a log file: the newest file it holds, and what the writer handed it."""

    def __init__(self, generation: int, backlog: int) -> None:
        self.generation = generation  # the rotation generation of the newest file it has open
        self.backlog = backlog  # bytes of handed files it may hold
        # Files the writer deleted before this follower reached them, by generation: handed over (open), or
        # what was lost with them when they were past the bound.
        self.handed: dict[int, RotatedFile | FollowLoss] = {}
        self.held_bytes = 0
        self.held_files = 0

    def needs(self, generation: int) -> bool:
        """Whether the file of `generation`, about to be deleted, is one this follower has yet to read."""
        return generation > self.generation and generation not in self.handed

    def takes(self, size: int) -> bool:
        return self.held_files < MAX_HANDED_FILES and self.held_bytes + size <= self.backlog

    def hand(self, generation: int, found: RotatedFile, size: int) -> None:
        found.held = size
        self.handed[generation] = found
        self.held_bytes += size
        self.held_files += 1

    def lose(self, generation: int, lines: int, size: int) -> None:
        self.handed[generation] = FollowLoss(lines, 1, size)

    def release(self, found: RotatedFile) -> None:
        """A handed file is read (or no longer wanted): it no longer counts against the backlog."""
        if found.held:
            self.held_bytes -= found.held
            self.held_files -= 1
            found.held = 0

    def close(self) -> None:
        """The follower went away: close what was handed to it and not picked up."""
        for found in self.handed.values():
            if isinstance(found, RotatedFile):
                found.file.close()
                self.release(found)
        self.handed.clear()
