"""One reader's processing of one stream, and what it means for the reader's ledger.

A reader's ledger counts the stream's lines (`Checkpoint`: a clean restart point, and the lines delivered).
Processing makes records that are not lines (an event of many lines; no record for a filtered line), and
holds some lines back (an open event, a long line not yet whole). So each processed batch comes with:

- `checkpoint`: where the reader is once it has delivered the batch and everything before. While an event
  (or a long line) is held, it is the held thing's restart point and first line: a reader that resumes
  re-splits from there, skips what was delivered, and starts processing afresh at the held line, which
  makes the same events (see `events`: every way an event ends leaves the stage as a fresh one would be).
  Filtered lines need no record: the checkpoint moves past them.
- `ends`: the source line after each record, so a driver that confirms part of a batch (the disk buffer)
  moves the ledger to exactly the records it confirmed.

Edge cases accepted (at least once, never a loss): a reader that resumes inside a line longer than the cap
or longer than the redaction hold sends that line's pieces again (with a new partial id).
"""

from __future__ import annotations

from dataclasses import dataclass

from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch
from logship.pipeline.processing.config import ProcessingConfig
from logship.pipeline.processing.events import Emitted, EventStage
from logship.pipeline.processing.lines import LineStage, Records
from logship.pipeline.stats import ProcessingStats


@dataclass
class Processed:
    batch: Batch  # the records for the driver (none: only progress)
    checkpoint: Checkpoint  # where the reader is once it has delivered this batch
    restart: Checkpoint  # a clean restart point before every record of the batch
    ends: list[int] | None  # the source line after each record (None: first_line + 1 + its index)
    first_line: int
    lines: int  # source lines the reader is done with once it has delivered this batch

    def delivered_after(self, records: int) -> int:
        """The source line after the first `records` records (one at least)."""
        return delivered_after(self.ends, self.first_line, records)


def delivered_after(ends: list[int] | None, first_line: int, records: int) -> int:
    """The source line after the first `records` (one at least) of a batch's records (`ends`: see Processed)."""
    return ends[records - 1] if ends is not None else first_line + records


class StreamProcessor:
    def __init__(
        self, config: ProcessingConfig, stream: str, max_line: int, stats: ProcessingStats, start: Checkpoint
    ) -> None:
        self.stream = stream
        self.lines = LineStage(config, max_line, stats) if config.filters_lines else None
        self.events = EventStage(config, stream, stats) if config.joins or config.parse_json else None
        self._restart = Checkpoint(start.offset, start.line)  # before the next source batch
        self._last = start  # the last source checkpoint
        self._at = start  # where the reader is once it has everything handed out so far

    def feed(self, batch: Batch, first_line: int, checkpoint: Checkpoint) -> list[Processed]:
        restart = self._restart
        self._restart = Checkpoint(checkpoint.offset, checkpoint.line)
        self._last = checkpoint
        records = self.lines.apply(batch, first_line, restart) if self.lines is not None else Records(batch, None)
        if self.events is not None:
            emitted = self.events.marked(batch.marks) if batch.marks else []
            return self._package(emitted + self.events.apply(records, first_line, restart), first_line)
        if records.ends is None:  # every line went on (redacted, maybe): record i is line first_line + i
            return self._package([Emitted(records.batch, [])], first_line, identity=True)
        return self._package([Emitted(records.batch, records.ends)] if records.ends else [], first_line)

    def end_run(self) -> list[Processed]:
        """A run of the container ended: nothing is held past it."""
        emitted: list[Emitted] = []
        if self.lines is not None:
            records = self.lines.finish()
            if records is not None:
                if self.events is not None:
                    emitted += self.events.apply(records, records.ends[0] if records.ends else 0, self._restart)
                else:
                    emitted.append(Emitted(records.batch, records.ends or []))
        if self.events is not None:
            emitted += self.events.flush(end_of_run=True)
        return self._package(emitted, 0)

    def deadline(self) -> int:
        """When an open event is to be flushed if no more lines come (wall clock, ns); 0: nothing to flush."""
        if self.events is None or (self.lines is not None and self.lines.holding() is not None):
            return 0
        return self.events.deadline()

    def flush(self) -> list[Processed]:
        """No more lines came by the deadline: the open event goes."""
        assert self.events is not None
        return self._package(self.events.flush(end_of_run=False), 0)

    def held(self) -> tuple[Checkpoint, int] | None:
        if self.events is not None:
            holding = self.events.holding()
            if holding is not None:
                return holding
        return self.lines.holding() if self.lines is not None else None

    def _package(self, emitted: list[Emitted], first_line: int, identity: bool = False) -> list[Processed]:
        """Each batch with the checkpoint a reader reaches once it has delivered it (see the module docstring)."""
        before = self._at
        restart = Checkpoint(before.offset, before.line)
        out = []
        for item in emitted:
            ends = None if identity else item.ends
            delivered = first_line + len(item.batch) if identity else item.ends[-1]
            at = Checkpoint(before.offset, before.line, max(delivered, before.delivered))
            out.append(Processed(item.batch, at, restart, ends, first_line, at.delivered - self._at.delivered))
            self._at = at
        held = self.held()
        final = self._last if held is None else Checkpoint(held[0].offset, held[0].line, held[1])
        if final.delivered < self._at.delivered:  # never backwards (a held line is after what went out)
            final = Checkpoint(self._at.offset, self._at.line, self._at.delivered)
        if out:
            last = out[-1]
            last.lines += final.delivered - last.checkpoint.delivered
            last.checkpoint = final
        else:
            lines = final.delivered - before.delivered
            out.append(Processed(Batch(self.stream, 0, []), final, restart, [], first_line, lines))
        self._at = final
        return out
