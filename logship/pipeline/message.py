"""What flows through the pipeline: messages, and the batches drivers receive.

A message is one line of a container's output without its newline, its stream, a timestamp in
nanoseconds, optional partial metadata and optional attributes (Docker's `backend.LogMessage`).

On the write path the copier does not build one object per line: it hands drivers a `Batch`, the
lines of one read of one stream sharing one timestamp, usually still as one block of text, with partial
metadata kept sparse (only the lines that are pieces of a line longer than 16 KiB carry it). Readers
yield lists of `Message`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


class Batch:
    """Lines read in one go from one stream, all stamped with one time.

    `partials` maps a line's index to its partial metadata; most batches have none.
    `nbytes` is the total size of the lines, kept so buffers can account in bytes cheaply.

    The copier makes most batches with `of_text`: the lines stay one `bytes` joined by newlines (`text`)
    and the list of lines is only built if a driver asks for `lines`. An encoder that can work on the whole
    text at once (json-file) then never creates one object per line. A batch made from text is never
    changed afterwards; one made from a list may be (the copier appends pieces of long lines).
    """

    __slots__ = ("_count", "_lines", "_text", "fields", "marks", "nbytes", "partials", "stream", "timestamp_ns")

    def __init__(
        self,
        stream: str,
        timestamp_ns: int,
        lines: list[bytes],
        partials: dict[int, PartialMeta] | None = None,
        nbytes: int = -1,
    ) -> None:
        self.stream = stream
        self.timestamp_ns = timestamp_ns
        self.partials: dict[int, PartialMeta] = {} if partials is None else partials
        self.nbytes = sum(map(len, lines)) if nbytes < 0 else nbytes
        # parse=json (logship.pipeline.processing): each line's fields, None for a line that was not a JSON
        # object; None when no line of the batch was.
        self.fields: list[dict[str, Any] | None] | None = None
        self.marks = 0  # processing marks of the spool before its first line (see logship.pipeline.spool)
        self._lines: list[bytes] | None = lines
        self._text: bytes | None = None
        self._count = 0

    @classmethod
    def of_text(cls, stream: str, timestamp_ns: int, text: bytes, count: int) -> Batch:
        """`count` whole lines (none of them a partial), joined by single newlines in `text`."""
        batch = cls(stream, timestamp_ns, [], nbytes=len(text) - (count - 1))
        batch._lines = None
        batch._text = text
        batch._count = count
        return batch

    @property
    def lines(self) -> list[bytes]:
        if self._lines is None:
            assert self._text is not None
            self._lines = self._text.split(b"\n")
        return self._lines

    @property
    def text(self) -> bytes | None:
        """The lines joined by newlines for a batch made with `of_text`, else None."""
        return self._text

    def __len__(self) -> int:
        return self._count if self._lines is None else len(self._lines)

    def __repr__(self) -> str:
        return f"Batch({self.stream!r}, {self.timestamp_ns}, {self.lines!r}, {self.partials!r}, nbytes={self.nbytes})"

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
        lines = self.lines
        head = Batch(self.stream, self.timestamp_ns, lines[:count], head_partials)
        rest = Batch(self.stream, self.timestamp_ns, lines[count:], rest_partials)
        if self.fields is not None:
            head.fields, rest.fields = self.fields[:count], self.fields[count:]
        head.marks = self.marks
        return head, rest
