"""The lines stage: drop/keep filters and redaction, before any driver sees a line (the file drivers
included, so a secret never reaches the disk).

- Filters judge the line as the container wrote it: it goes on if it matches `keep` (when set) and does
  not match `drop` (when set). Redaction then rewrites the lines that go on.
- A batch's lines are judged as one block of text (`patterns`), so lines that match nothing cost a share
  of a C-level scan, not a Python call each.
- A line longer than the line limit arrives in 16 KiB pieces. Its pieces are held until the line is whole,
  judged and redacted as one line (a secret cut in two by a piece boundary is still found), and cut into
  pieces again (same partial id; ordinals from 1; a redacted line that now fits is a whole line). A line
  longer than HOLD goes on in parts: the filters judge its first HOLD bytes, and redaction works on it as
  a stream that keeps OVERLAP bytes back, so a match of up to OVERLAP bytes is found wherever it falls.

Each record comes out with the number of the source line after it (`ends`): what a reader's ledger
counts, so a reader that resumes skips exactly the lines it had delivered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch, PartialMeta
from logship.pipeline.processing.config import ProcessingConfig
from logship.pipeline.processing.patterns import LinePattern, Redactor
from logship.pipeline.stats import ProcessingStats

HOLD = 1 << 20  # a long line is held whole up to this size
OVERLAP = 64 << 10  # past it, redaction keeps this much back for the next part


@dataclass
class _Group:
    """The pieces of one long line, held."""

    id: str
    stream: str
    timestamp_ns: int
    first_line: int  # source line number of its first piece
    restart: Checkpoint  # a clean restart point before it
    next_line: int = 0  # source line number after its last piece so far
    raw: list[bytes] = field(default_factory=list)  # not judged yet
    raw_bytes: int = 0
    pieces: int = 0  # source pieces in `raw`
    context: bytes = b""  # the byte before `raw`, once part of the line went on
    ready: bytes = b""  # judged and redacted, not yet cut into pieces
    keep: bool | None = None  # the filters' decision, once taken
    ordinal: int = 0  # pieces handed on so far


@dataclass
class Records:
    """A stage's output for one batch: the records, and the source line after each (None: record i is
    source line first_line + i)."""

    batch: Batch
    ends: list[int] | None
    restart: Checkpoint | None = None  # a restart point before them all, when it is earlier than the batch's


class LineStage:
    def __init__(self, config: ProcessingConfig, max_line: int, stats: ProcessingStats) -> None:
        self.keep = LinePattern(config.keep) if config.keep else None
        self.drop = LinePattern(config.drop) if config.drop else None
        self.redactor = Redactor(config.redact, config.replacement) if config.redact else None
        self.max_line = max_line
        self.stats = stats
        self._group: _Group | None = None

    def holding(self) -> tuple[Checkpoint, int] | None:
        """(restart point, first source line) of the long line held, None when none is."""
        group = self._group
        return None if group is None else (group.restart, group.first_line)

    def apply(self, batch: Batch, first_line: int, restart: Checkpoint) -> Records:
        if batch.text is not None and self._group is None:
            return self._text(batch, first_line)
        return self._list(batch, first_line, restart)

    def finish(self) -> Records | None:
        """A run of the container ended: a long line held goes on as it is, its last piece not last (the
        line had no newline, as Docker's copier sends it)."""
        group = self._group
        if group is None:
            return None
        out = _Out()
        self._release(group, out, final=True, eof=True, end=group.next_line)
        self._group = None
        return Records(Batch(group.stream, group.timestamp_ns, out.lines, out.partials), out.ends, group.restart)

    # -- whole lines, as a block of text --

    def _text(self, batch: Batch, first_line: int) -> Records:
        text = batch.text
        assert text is not None
        count = len(batch)
        kept = self._kept(text, count) if self.keep is not None or self.drop is not None else None
        ends: list[int] | None = None
        if kept is not None:
            parts, indexes = kept
            ends = [first_line + index + 1 for index in indexes]
            self.stats.lines_filtered += count - len(ends)
            if not ends:
                return Records(Batch(batch.stream, batch.timestamp_ns, []), ends)
            text = b"\n".join(parts)
            count = len(ends)
        if self.redactor is not None:
            text, found = self.redactor.text(text)
            self.stats.matches_redacted += found
            if not found and kept is None:
                return Records(batch, None)
        elif kept is None:
            return Records(batch, None)
        return Records(Batch.of_text(batch.stream, batch.timestamp_ns, text, count), ends)

    def _kept(self, text: bytes, count: int) -> tuple[list[bytes], list[int]] | None:
        """The lines that go on (as blocks of text, and their indexes), None when all of them do."""
        if self.keep is not None:
            kept = _indexed(text, self.keep.lines(text))
            if self.drop is not None:
                gone = {index for index, _, _ in _indexed(text, self.drop.lines(text))}
                kept = [line for line in kept if line[0] not in gone]
            if len(kept) == count:
                return None
            return [text[start:end] for _, start, end in kept], [index for index, _, _ in kept]
        assert self.drop is not None
        dropped_lines = _indexed(text, self.drop.lines(text))
        if not dropped_lines:
            return None
        parts: list[bytes] = []
        indexes: list[int] = []
        start = index = 0
        for dropped, line_start, line_end in dropped_lines:
            if dropped > index:  # the lines between two dropped ones go on as one block
                parts.append(text[start : line_start - 1])
                indexes.extend(range(index, dropped))
            start, index = line_end + 1, dropped + 1
        if index < count:
            parts.append(text[start:])
            indexes.extend(range(index, count))
        return parts, indexes

    def _passes(self, line: bytes) -> bool:
        if self.keep is not None and not self.keep.search(line):
            return False
        return self.drop is None or not self.drop.search(line)

    # -- lines one by one: pieces of long lines --

    def _list(self, batch: Batch, first_line: int, restart: Checkpoint) -> Records:
        out = _Out()
        earlier = self._group.restart if self._group is not None else None  # a long line begun before
        partials = batch.partials
        for index, line in enumerate(batch.lines):
            source = first_line + index
            meta = partials.get(index) if partials else None
            group = self._group
            if group is not None and (meta is None or meta.id != group.id):
                self._release(group, out, final=True, eof=True, end=group.next_line)  # cut short: no last piece
                group = self._group = None
            if meta is None:
                if self._passes(line):
                    if self.redactor is not None:
                        line, found = self.redactor.line(line)
                        self.stats.matches_redacted += found
                    out.add(line, None, source + 1)
                else:
                    self.stats.lines_filtered += 1
                continue
            if group is None:
                group = self._group = _Group(meta.id, batch.stream, batch.timestamp_ns, source, restart)
            group.next_line = source + 1
            if group.keep is False:
                self.stats.lines_filtered += 1
                if meta.last:
                    self._group = None
                continue
            group.raw.append(line)
            group.raw_bytes += len(line)
            group.pieces += 1
            if meta.last:
                self._release(group, out, final=True, eof=False, end=source + 1)
                self._group = None
            elif group.raw_bytes >= HOLD:
                self._release(group, out, final=False, eof=False, end=group.first_line)
        return Records(Batch(batch.stream, batch.timestamp_ns, out.lines, out.partials), out.ends, earlier)

    def _release(self, group: _Group, out: _Out, final: bool, eof: bool, end: int) -> None:
        """Judge and redact what the group holds and hand on its pieces: all of them when `final`, else the
        full pieces ready (their `end` stays at the line's first piece: the line is not delivered until its
        last piece is)."""
        before = len(out.lines)
        start = len(group.context)
        data = group.context + b"".join(group.raw) if group.context else b"".join(group.raw)
        pieces, group.pieces = group.pieces, 0
        if group.keep is None:
            group.keep = self._passes(data[start:])
        if not group.keep:
            self.stats.lines_filtered += pieces
            group.raw, group.raw_bytes = [], 0
            return
        if self.redactor is not None:
            redacted, found, border = self.redactor.stream(data, start, final, OVERLAP)
            self.stats.matches_redacted += found
        else:
            redacted, border = data[start:], len(data)
        group.context = data[border - 1 : border] if border else b""
        rest = data[border:]
        group.raw, group.raw_bytes = ([rest], len(rest)) if rest else ([], 0)
        group.pieces = 0 if final or not rest else 1  # the held rest counts as one piece until the next
        ready = group.ready + redacted
        size = self.max_line
        if final and group.ordinal == 0 and len(ready) < size and not eof:
            out.add(ready, None, end)  # redaction made it short enough to be a whole line
            return
        position = 0
        while len(ready) - position >= size:
            group.ordinal += 1
            out.add(ready[position : position + size], PartialMeta(group.id, group.ordinal, False), group.first_line)
            position += size
        ready = ready[position:]
        if final:
            if ready or not eof:  # a line ending at a piece's end has an empty last piece, as in Docker
                group.ordinal += 1
                out.add(ready, PartialMeta(group.id, group.ordinal, not eof), end)
            elif len(out.lines) > before:
                out.ends[-1] = end
            ready = b""
        group.ready = ready


class _Out:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.partials: dict[int, PartialMeta] = {}
        self.ends: list[int] = []

    def add(self, line: bytes, meta: PartialMeta | None, end: int) -> None:
        if meta is not None:
            self.partials[len(self.lines)] = meta
        self.lines.append(line)
        self.ends.append(end)


def _indexed(text: bytes, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(line index, start, end) of each span, counting newlines as it goes."""
    out = []
    index = 0
    previous = 0
    for start, end in spans:
        index += text.count(b"\n", previous, start)
        previous = start
        out.append((index, start, end))
    return out
