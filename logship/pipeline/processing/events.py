"""The events stage, for drivers with events (every driver but json-file, local and the dual-logging
cache, unless multiline-files=events): multiline events, and parse=json.

An event is one record: its lines joined by newlines, stamped with its first line's time. It ends:
- at the next line its joiner (`multiline`) judges a start;
- at a timeout: when its next line was read `multiline-timeout` or more after its last one (read times
  from the spool, so every reader judges alike, an hour later too), or, when no more lines come, once the
  wall clock is that far past its last line (`flush`, called by the reader only when it has nothing more
  to read; it records a FLUSH mark where the spool ends, so every reader ends the event there too). Where
  a restarted daemon began reading (a RESUME mark), the gap in read times is the daemon's, not the
  container's: no timeout is judged across it;
- at the size cap (`multiline-max-bytes`): a line that would take it past the cap starts the next event;
- at the end of a run of the container.

A line longer than the line limit arrives in pieces; they are put together first, up to the cap. A line
longer than the cap is never joined nor parsed: it ends the event before it and goes on in its pieces,
with their partial metadata, as without processing. Streams never join: each has its own stage.

With parse=json only (no multiline), each line is an event of its own; pieces of a long line are put
together (up to the cap) so that a long JSON line parses.

After any end but a start judged by the joiner, the joiner starts afresh, as one does for a reader that
resumes at an event's first line: both make the same events from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch, PartialMeta
from logship.pipeline.processing.config import ProcessingConfig
from logship.pipeline.processing.jsonparse import Fields, parse, parse_lines
from logship.pipeline.processing.lines import Records
from logship.pipeline.processing.multiline import CONTINUE, MAYBE, Joiner, StartJoiner, joiner_for
from logship.pipeline.spool import MARK_FLUSH, MARK_RESUME
from logship.pipeline.stats import ProcessingStats


@dataclass
class _Event:
    parts: list[bytes]
    nbytes: int
    ts: int  # its first line's read time
    last_ts: int  # its last line's read time
    first_line: int  # source line number of its first line
    restart: Checkpoint  # a clean restart point before its first line
    lines: int
    end: int  # source line number after its last line


@dataclass
class _Long:
    """A line arriving in pieces."""

    ts: int
    first_line: int
    restart: Checkpoint
    pieces: list[tuple[bytes, PartialMeta]] = field(default_factory=list)
    nbytes: int = 0
    end: int = 0  # source line number after its last piece so far
    passing: bool = False  # longer than the cap: its pieces go on as they are


@dataclass
class Emitted:
    """Records ready for a driver: one batch (one time), and the source line after each record."""

    batch: Batch
    ends: list[int]


class _Out:
    """Records as they are made, grouped into batches by time."""

    def __init__(self, stream: str, parse_json: bool, cap: int, stats: ProcessingStats) -> None:
        self.stream = stream
        self.parse_json = parse_json
        self.cap = cap
        self.stats = stats
        self.done: list[Emitted] = []
        self._ts = -1
        self._lines: list[bytes] = []
        self._partials: dict[int, PartialMeta] = {}
        self._fields: list[Fields | None] = []
        self._parsed = False
        self._ends: list[int] = []

    def _at(self, ts: int) -> None:
        if ts != self._ts:
            self.close()
            self._ts = ts

    def record(self, data: bytes, ts: int, end: int) -> None:
        self._at(ts)
        self._lines.append(data)
        self._ends.append(end)
        if self.parse_json:
            fields = parse(data) if len(data) <= self.cap else None
            if fields is None:
                self.stats.lines_not_parsed += 1
            else:
                self.stats.lines_parsed += 1
                self._parsed = True
            self._fields.append(fields)

    def piece(self, data: bytes, meta: PartialMeta, ts: int, end: int) -> None:
        self._at(ts)
        self._partials[len(self._lines)] = meta
        self._lines.append(data)
        self._ends.append(end)
        if self.parse_json:
            self._fields.append(None)

    def last_end(self, end: int) -> None:
        """The last record handed on completes source lines up to `end`."""
        self._ends[-1] = end

    def block(self, text: bytes, ts: int, first_line: int) -> int:
        """Whole lines (`text`, joined by newlines), each a record of its own; how many."""
        self._at(ts)
        lines = text.split(b"\n")
        self._lines.extend(lines)
        self._ends.extend(range(first_line + 1, first_line + len(lines) + 1))
        if self.parse_json:
            parsed = parse_lines(text, lines, self.cap)
            misses = parsed.count(None)
            self.stats.lines_not_parsed += misses
            self.stats.lines_parsed += len(parsed) - misses
            self._parsed = self._parsed or misses < len(parsed)
            self._fields.extend(parsed)
        return len(lines)

    def close(self) -> None:
        if self._lines:
            batch = Batch(self.stream, self._ts, self._lines, self._partials)
            if self._parsed:
                batch.fields = self._fields
            self.done.append(Emitted(batch, self._ends))
            self._lines, self._partials, self._fields, self._ends = [], {}, [], []
            self._parsed = False


class EventStage:
    def __init__(self, config: ProcessingConfig, stream: str, stats: ProcessingStats) -> None:
        self.stream = stream
        self.stats = stats
        self.parse_json = config.parse_json
        self.timeout_ns = config.timeout_ns
        self.cap = config.max_bytes
        self.joiner: Joiner | None = joiner_for(config.multiline, config.multiline_start) if config.joins else None
        self._event: _Event | None = None
        self._maybe: list[tuple[bytes, int, int, int, Checkpoint]] = []  # (line, ts, first, end, restart)
        self._long: _Long | None = None
        self._resumed = False  # the next line was read by a restarted daemon: no timeout before it
        self._out = _Out(stream, config.parse_json, config.max_bytes, stats)

    # -- what is held --

    def holding(self) -> tuple[Checkpoint, int] | None:
        """(restart point, first source line) of what is held (an open event, a long line), None if none."""
        if self._event is not None:
            return self._event.restart, self._event.first_line
        if self._long is not None:
            return self._long.restart, self._long.first_line
        return None

    def deadline(self) -> int:
        """The wall-clock time (ns) past which an open event is flushed if no more lines come; 0: none."""
        if self._event is None or self._long is not None:
            return 0  # a line in pieces waits for its end, as the splitter does
        last = self._maybe[-1][1] if self._maybe else self._event.last_ts
        return last + self.timeout_ns

    # -- input --

    def apply(self, records: Records, first_line: int, restart: Checkpoint) -> list[Emitted]:
        batch = records.batch
        if len(batch):
            text = batch.text
            if text is not None and records.ends is None and self._long is None:
                self._text(text, len(batch), batch.timestamp_ns, first_line, restart)
            else:
                self._list(records, first_line, restart)
            self._resumed = False
        return self._take()

    def marked(self, marks: int) -> list[Emitted]:
        """The spool's marks before the next lines (see logship.pipeline.spool)."""
        if marks & MARK_RESUME:
            self._resumed = True
        if marks & MARK_FLUSH and self._long is None:
            self._close(reset=True)
        return self._take()

    def flush(self, end_of_run: bool) -> list[Emitted]:
        """No more lines come (a wall-clock timeout), or a run of the container ended (then a line in pieces
        ends too)."""
        if self._long is not None:
            if not end_of_run:
                return self._take()
            long, self._long = self._long, None
            if long.passing:
                self._end_passing()
            else:
                self._whole(b"".join(data for data, _ in long.pieces), long.ts, long.first_line, long.end, long.restart)
        self._close(reset=True)
        return self._take()

    def _take(self) -> list[Emitted]:
        self._out.close()
        done, self._out.done = self._out.done, []
        return done

    # -- a block of whole lines --

    def _text(self, text: bytes, count: int, ts: int, first_line: int, restart: Checkpoint) -> None:
        joiner = self.joiner
        if joiner is None:  # parse=json alone: each line is an event
            self._out.block(text, ts, first_line)
            return
        if isinstance(joiner, StartJoiner):
            self._text_starts(joiner, text, count, ts, first_line, restart)
            return
        # python, go: from the idle state, every line up to the next that opens a trace is an event of its own
        position = 0
        line = first_line
        size = len(text)
        while position <= size:
            if joiner.state == joiner.IDLE and self._event is None:
                trigger = joiner.next_trigger(text, position)
                stop = size + 1 if trigger < 0 else trigger
                if stop > position:
                    line += self._out.block(text[position : stop - 1], ts, line)
                    position = stop
                    continue
            end = text.find(b"\n", position)
            if end < 0:
                end = size
            self._whole(text[position:end], ts, line, line + 1, restart)
            line += 1
            position = end + 1

    def _text_starts(
        self, joiner: StartJoiner, text: bytes, count: int, ts: int, first_line: int, restart: Checkpoint
    ) -> None:
        """The block's event starts in one scan; the events between them are complete (the last stays open)."""
        newline = text.find(b"\n")
        if newline < 0:
            self._whole(text, ts, first_line, first_line + 1, restart)
            return
        self._whole(text[:newline], ts, first_line, first_line + 1, restart)
        starts = joiner.starts(text)
        starts.append(len(text) + 1)
        position, line = newline + 1, first_line + 1
        for index, start in enumerate(starts):
            lines = text.count(b"\n", position, start - 1) + 1 if start > position else 0
            if lines:
                event = self._event
                size = start - 1 - position
                if index == 0:  # lines that continue the open event
                    if event is not None and event.nbytes + 1 + size <= self.cap and not self._maybe:
                        event.parts.append(b"\n")
                        event.parts.append(text[position : start - 1])
                        event.nbytes += 1 + size
                        event.lines += lines
                        event.last_ts = ts
                        event.end = line + lines
                    else:
                        self._lines_one_by_one(text, position, start - 1, ts, line, restart)
                elif size <= self.cap:  # a whole event (the last one stays open)
                    self._close(reset=False)
                    self._event = _Event([text[position : start - 1]], size, ts, ts, line, restart, lines, line + lines)
                else:
                    self._lines_one_by_one(text, position, start - 1, ts, line, restart)
            position, line = start, line + lines

    def _lines_one_by_one(self, text: bytes, position: int, stop: int, ts: int, line: int, restart: Checkpoint) -> None:
        for data in text[position:stop].split(b"\n"):
            self._whole(data, ts, line, line + 1, restart)
            line += 1

    # -- records one by one --

    def _list(self, records: Records, first_line: int, restart: Checkpoint) -> None:
        batch = records.batch
        ts = batch.timestamp_ns
        partials = batch.partials
        ends = records.ends
        restart = records.restart or restart
        for index, data in enumerate(batch.lines):
            meta = partials.get(index) if partials else None
            if ends is None:
                first, end = first_line + index, first_line + index + 1
            else:  # the lines stage: a non-last piece's end is its line's first piece (not delivered yet)
                end = ends[index]
                first = end if meta is not None and not meta.last else end - 1
            if meta is None and self._long is None:
                self._whole(data, ts, first, end, restart)
                continue
            self._piece(data, meta, ts, first, end, restart)

    def _piece(self, data: bytes, meta: PartialMeta | None, ts: int, first: int, end: int, restart: Checkpoint) -> None:
        long = self._long
        if long is None:
            long = self._long = _Long(ts, first, restart)
        long.end = end
        if long.passing:
            self._out.piece(data, meta or PartialMeta("", 0, True), long.ts, end)
            if meta is None or meta.last:
                self._long = None
                self._end_passing()
            return
        long.pieces.append((data, meta or PartialMeta("", 0, True)))
        long.nbytes += len(data)
        if long.nbytes > self.cap:  # never joined nor parsed: it goes on in its pieces
            self._close(reset=True)
            long.passing = True
            for piece, piece_meta in long.pieces:
                self._out.piece(piece, piece_meta, long.ts, long.first_line)
            if self.parse_json:
                self.stats.lines_not_parsed += 1
            long.pieces = []
            if meta is None or meta.last:
                self._out.last_end(end)
                self._long = None
                self._end_passing()
            return
        if meta is None or meta.last:
            self._long = None
            self._whole(b"".join(piece for piece, _ in long.pieces), long.ts, long.first_line, end, long.restart)

    def _end_passing(self) -> None:
        """A line longer than the cap went by: what follows starts afresh."""
        if self.joiner is not None:
            self.joiner.reset()

    def _whole(self, line: bytes, ts: int, first: int, end: int, restart: Checkpoint) -> None:
        """A whole line (a long one put together)."""
        joiner = self.joiner
        if joiner is None:
            self._out.record(line, ts, end)
            return
        if len(line) > self.cap:  # never joined (nor parsed, see _Out): it ends the event before it
            self._close(reset=True)
            self._out.record(line, ts, end)
            return
        event = self._event
        if event is not None and not self._resumed:
            last = self._maybe[-1][1] if self._maybe else event.last_ts
            if ts - last >= self.timeout_ns:
                self._close(reset=True)
                event = None
        self._resumed = False
        verdict = joiner.judge(line)
        if event is not None and verdict == MAYBE:
            self._maybe.append((line, ts, first, end, restart))
            return
        if event is not None and verdict == CONTINUE:
            extra = sum(len(maybe[0]) + 1 for maybe in self._maybe)
            if event.nbytes + extra + 1 + len(line) <= self.cap:
                for maybe in self._maybe:
                    event.parts.append(b"\n")
                    event.parts.append(maybe[0])
                event.parts.append(b"\n")
                event.parts.append(line)
                event.nbytes += extra + 1 + len(line)
                event.lines += len(self._maybe) + 1
                event.last_ts = ts
                event.end = end
                self._maybe.clear()
                self._after(joiner)
                return
            self.stats.events_capped += 1
            self._close(reset=True)
            joiner.judge(line)  # judged again from the start, as a reader resuming here would
        elif event is not None:
            self._close(reset=False)
        self._event = _Event([line], len(line), ts, ts, first, restart, 1, end)
        self._after(joiner)

    def _after(self, joiner: Joiner) -> None:
        if not joiner.open_ended:  # nothing can join it any more
            self._close(reset=False)

    def _close(self, reset: bool) -> None:
        """The open event is complete; blank lines waiting to be judged (MAYBE) become events of their own."""
        event, self._event = self._event, None
        if event is not None:
            data = event.parts[0] if len(event.parts) == 1 else b"".join(event.parts)
            self._out.record(data, event.ts, event.end)
            if event.lines > 1:
                self.stats.events_joined += 1
                self.stats.lines_joined += event.lines
        for line, ts, _, end, _ in self._maybe:
            self._out.record(line, ts, end)
        self._maybe.clear()
        if reset and self.joiner is not None:
            self.joiner.reset()
