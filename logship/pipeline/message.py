"""What flows through the pipeline: messages, and the batches drivers receive.

A message is one line of a container's output without its newline, its stream, a timestamp in
nanoseconds, optional partial metadata and optional attributes (Docker's `backend.LogMessage`).

On the write path the copier does not build one object per line: it hands drivers a `Batch`, the
lines of one read of one stream sharing one timestamp, with partial metadata kept sparse (only the
lines that are pieces of a line longer than 16 KiB carry it). Readers yield lists of `Message`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

STDOUT = "stdout"
STDERR = "stderr"
STREAMS = (STDOUT, STDERR)

# Docker's copier buffer: a line longer than this is cut into pieces of this size.
MAX_LINE_SIZE = 16 * 1024


@dataclass(frozen=True, slots=True)
class PartialMeta:
    """Docker's PartialLogMetaData: which piece of a long line this is.

    Every piece but the last has `last=False`; a line cut short by EOF never gets a last piece.
    Readers of formats that do not store the id (json-file) report an empty id and ordinal 0.
    """

    id: str
    ordinal: int
    last: bool


@dataclass(slots=True)
class Message:
    line: bytes
    stream: str
    timestamp_ns: int
    partial: PartialMeta | None = None
    attrs: dict[str, str] | None = None

    @property
    def ends_line(self) -> bool:
        """True when the line ended with a newline (whole lines and last pieces)."""
        return self.partial is None or self.partial.last


@dataclass(slots=True)
class Batch:
    """Lines read in one go from one stream, all stamped with one time.

    `partials` maps a line's index to its partial metadata; most batches have none.
    `nbytes` is the total size of the lines, kept so buffers can account in bytes cheaply.
    """

    stream: str
    timestamp_ns: int
    lines: list[bytes]
    partials: dict[int, PartialMeta] = field(default_factory=dict)
    nbytes: int = -1

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            self.nbytes = sum(map(len, self.lines))

    def __len__(self) -> int:
        return len(self.lines)

    def ends_line(self, index: int) -> bool:
        meta = self.partials.get(index)
        return meta is None or meta.last

    def messages(self) -> Iterator[Message]:
        """One Message per line, for drivers that work line by line."""
        partials = self.partials
        for index, line in enumerate(self.lines):
            yield Message(line, self.stream, self.timestamp_ns, partials.get(index) if partials else None)

    def take(self, count: int) -> tuple[Batch, Batch]:
        """Split after the first `count` lines: (head, rest), partial metadata re-indexed."""
        head_partials = {i: m for i, m in self.partials.items() if i < count}
        rest_partials = {i - count: m for i, m in self.partials.items() if i >= count}
        head = Batch(self.stream, self.timestamp_ns, self.lines[:count], head_partials)
        rest = Batch(self.stream, self.timestamp_ns, self.lines[count:], rest_partials)
        return head, rest
