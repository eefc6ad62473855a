"""The copier: a container's stdout/stderr bytes in, batches of lines out.

Docker's copier reads 2 KiB at a time into a 16 KiB line buffer and builds one message per line. Here a
stream is read in large chunks and each chunk becomes one `Batch` (one timestamp, a list of lines), so the
per-line cost stays in C (`bytes.split`). The visible result is Docker's:

- a line is the bytes before "\n", without it;
- a line that does not fit the 16 KiB buffer together with its newline is cut into 16 KiB pieces that share
  a random partial id, ordinals from 1, one timestamp (the first piece's), and `last=True` on the piece that
  ends the line (which may be empty: 16,384 bytes then "\n" gives a full piece and an empty last piece);
- bytes left without a newline at EOF are delivered as a non-last partial, as Docker does;
- a half line waits for its newline (no time-based flush), as in Docker.
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from collections.abc import Awaitable, Callable

from logship.asyncfd import wait_readable
from logship.pipeline.message import MAX_LINE_SIZE, Batch, PartialMeta

READ_SIZE = 1 << 20  # one pipe's worth: the FIFOs are enlarged to 1 MiB


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
        data = self._pending + chunk if self._pending else chunk
        self._pending = b""
        batches: list[Batch] = []
        if self._group_id:
            data = self._continue_group(data, batches)
            if self._group_id:  # the long line goes on past this chunk
                return batches
        last_newline = data.rfind(b"\n")
        if last_newline < 0:
            rest = data
            lines: list[bytes] = []
        else:
            lines = data[:last_newline].split(b"\n")
            rest = data[last_newline + 1 :]
        if lines and max(map(len, lines)) >= self.max_line:
            batch = self._cut_long_lines(lines, now_ns)
        else:
            batch = Batch(self.stream, now_ns, lines, nbytes=last_newline + 1 - len(lines) if lines else 0)
        if rest and len(rest) >= self.max_line:
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


Sink = Callable[[Batch], Awaitable[None]]
RawSink = Callable[[str, bytes], Awaitable[None]]


async def copy_stream(
    fd: int,
    splitter: LineSplitter,
    deliver: Sink,
    on_raw: RawSink | None = None,
    on_read: Callable[[int], None] | None = None,
) -> None:
    """Read `fd` (non-blocking) until EOF, handing each chunk's batches to `deliver`.

    `deliver` may wait (blocking mode): reading stops meanwhile, the pipe fills and the container's
    writes block, which is the backpressure Docker users expect. `on_raw` sees the bytes as read, before
    line splitting, for attached clients. A pty master reports EIO once the container side is closed:
    that is its EOF. The fd is not closed here.
    """
    stream = splitter.stream
    while True:
        try:
            chunk = os.read(fd, READ_SIZE)
        except BlockingIOError:
            await wait_readable(fd)
            continue
        except OSError as err:
            if err.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        if on_read is not None:
            on_read(len(chunk))
        if on_raw is not None:
            await on_raw(stream, chunk)
        for batch in splitter.feed(chunk, time.time_ns()):
            await deliver(batch)
    for batch in splitter.finish(time.time_ns()):
        await deliver(batch)
