"""Line splitting: a container stream's bytes in, batches of lines out.

Docker's copier reads 2 KiB at a time into a 16 KiB line buffer and builds one message per line. Here a
stream is read in large chunks and each chunk becomes batches sharing one timestamp: usually text batches
(`Batch.of_text`, the lines still one block of bytes, at most about 256 KiB each so they stay in the CPU
cache until written), a list of lines only when a line has to be cut. No Python object per line is made
unless a driver asks for the list. The visible result is Docker's:

- a line is the bytes before "\n", without it;
- a line that does not fit the 16 KiB buffer together with its newline is cut into 16 KiB pieces that share
  a random partial id, ordinals from 1, one timestamp (the first piece's), and `last=True` on the piece that
  ends the line (which may be empty: 16,384 bytes then "\n" gives a full piece and an empty last piece);
- bytes left without a newline at EOF are delivered as a non-last partial, as Docker does;
- a half line waits for its newline (no time-based flush), as in Docker.
"""

from __future__ import annotations

import secrets

from logship.pipeline.message import MAX_LINE_SIZE, Batch, PartialMeta

# A read is handed on in batches of up to about this many bytes of text (see _text_batches): small enough
# to stay in the CPU cache (L2) from the read to the write of the log file.
BATCH_TEXT_BYTES = 256 << 10


class LineSplitter:
    """Turns one stream's chunks into batches. Pure: no I/O, time passed in, easy to test."""

    def __init__(self, stream: str, max_line: int = MAX_LINE_SIZE) -> None:
        self.stream = stream
        self.max_line = max_line
        self._pending = b""  # start of a line whose newline has not arrived (always < max_line)
        self._group_id = ""  # partial id of a long line still being cut, "" when none is open
        self._group_ordinal = 0
        self._group_ts = 0

    def feed(self, chunk: bytes, now_ns: int) -> list[Batch]:
        batches: list[Batch] = []
        if self._group_id:
            data = self._pending + chunk if self._pending else chunk
            self._pending = b""
            chunk = self._continue_group(data, batches)
            if self._group_id:  # the long line goes on past this chunk
                return batches
        pending = self._pending
        last_newline = chunk.rfind(b"\n")
        rest = chunk[last_newline + 1 :]
        if last_newline < 0 and pending:
            rest = pending + rest
        if len(rest) < self.max_line:
            self._pending = rest
            if last_newline < 0:
                return batches
            if not _has_long_line(pending, chunk, last_newline, self.max_line):
                batches += _text_batches(self.stream, now_ns, pending, chunk, last_newline)
                return batches
        # Lines of 16 KiB or more to cut, or the start of one: a list of lines with partial metadata.
        lines = (pending + chunk[:last_newline]).split(b"\n") if last_newline >= 0 else []
        batch = self._cut_long_lines(lines, now_ns)
        if len(rest) >= self.max_line:  # the start of a long line: its full pieces go now
            self._open_group(now_ns)
            while len(rest) >= self.max_line:
                batch.lines.append(rest[: self.max_line])
                batch.partials[len(batch.lines) - 1] = self._next_piece(last=False)
                batch.nbytes += self.max_line
                rest = rest[self.max_line :]
        self._pending = rest
        if batch.lines:
            batches.append(batch)
        return batches

    def finish(self, now_ns: int) -> list[Batch]:
        """EOF: what is left without a newline goes out as a non-last piece, as Docker's copier does."""
        if not self._pending:
            self._group_id = ""
            return []
        if not self._group_id:
            self._open_group(now_ns)
        line, self._pending = self._pending, b""
        batch = Batch(self.stream, self._group_ts, [line], {0: self._next_piece(last=False)})
        self._group_id = ""
        return [batch]

    def holds_line(self) -> bool:
        """Whether the start of a line (or the rest of a long one) waits for its newline."""
        return bool(self._pending or self._group_id)

    def discard(self) -> bytes:
        """Forget the unfinished line held (its bytes are returned): the next bytes start a new line."""
        held, self._pending, self._group_id = self._pending, b"", ""
        return held

    def _open_group(self, now_ns: int) -> None:
        self._group_id = secrets.token_hex(32)
        self._group_ordinal = 0
        self._group_ts = now_ns

    def _next_piece(self, last: bool) -> PartialMeta:
        self._group_ordinal += 1
        meta = PartialMeta(self._group_id, self._group_ordinal, last)
        if last:
            self._group_id = ""
        return meta

    def _continue_group(self, data: bytes, batches: list[Batch]) -> bytes:
        """Cut the rest of a long line that began in an earlier chunk; returns what follows it."""
        newline = data.find(b"\n")
        end = newline if newline >= 0 else len(data)
        batch = Batch(self.stream, self._group_ts, [], nbytes=0)
        start = 0
        while end - start >= self.max_line:
            batch.lines.append(data[start : start + self.max_line])
            batch.partials[len(batch.lines) - 1] = self._next_piece(last=False)
            start += self.max_line
        if newline >= 0:
            batch.lines.append(data[start:newline])
            batch.partials[len(batch.lines) - 1] = self._next_piece(last=True)
            remainder = data[newline + 1 :]
        else:
            self._pending = data[start:]
            remainder = b""
        batch.nbytes = sum(map(len, batch.lines))
        if batch.lines:
            batches.append(batch)
        return remainder

    def _cut_long_lines(self, lines: list[bytes], now_ns: int) -> Batch:
        batch = Batch(self.stream, now_ns, [], nbytes=0)
        out = batch.lines
        for line in lines:
            if len(line) < self.max_line:
                out.append(line)
                continue
            self._open_group(now_ns)
            start = 0
            while len(line) - start >= self.max_line:
                out.append(line[start : start + self.max_line])
                batch.partials[len(out) - 1] = self._next_piece(last=False)
                start += self.max_line
            out.append(line[start:])
            batch.partials[len(out) - 1] = self._next_piece(last=True)
        batch.nbytes = sum(map(len, out))
        return batch


def _has_long_line(pending: bytes, chunk: bytes, end: int, max_line: int) -> bool:
    """Whether a line of `pending + chunk[:end]` (lines joined by newlines) has `max_line` bytes or more.
    Hops from the last newline of each `max_line` window to the next: a few C calls per 16 KiB, no look at
    every line. `pending` (shorter than max_line, no newline) is the start of the first line."""
    start = -len(pending)
    while end - start >= max_line:
        newline = chunk.rfind(b"\n", max(start, 0), start + max_line)
        if newline < 0:
            return True
        start = newline + 1
    return False


def _text_batches(stream: str, now_ns: int, pending: bytes, chunk: bytes, end: int) -> list[Batch]:
    """The whole lines of `pending + chunk[:end]` as text batches (`Batch.of_text`) of up to about
    BATCH_TEXT_BYTES each, without copying the chunk into one block with `pending` first.

    One large read becomes several batches: each is encoded and written while its bytes are still in the
    CPU cache, which costs less than half as much as handling a 1 MiB read as one block.
    """
    batches: list[Batch] = []
    start = -len(pending)  # where the next batch's text starts in `chunk`; negative: in `pending`
    while True:
        cut = end
        if end - start > BATCH_TEXT_BYTES:
            limit = max(start + BATCH_TEXT_BYTES, 0)
            cut = chunk.rfind(b"\n", max(start, 0), limit)
            if cut < 0:  # a line longer than a batch (a driver raised the line limit): cut after it
                cut = chunk.find(b"\n", limit, end)
                if cut < 0:
                    cut = end
        text = pending + chunk[:cut] if start < 0 else chunk[start:cut]
        batches.append(Batch.of_text(stream, now_ns, text, text.count(b"\n") + 1))
        if cut == end:
            return batches
        start = cut + 1
