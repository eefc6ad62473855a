"""Exactly once for the drivers that write in step with the copier: every driver in blocking mode is
wrapped in an `Acknowledging` driver that records each batch's checkpoint in the driver's ledger once the
driver has written it.

- Network drivers without a disk buffer save it at once (a restarted daemon resends from there: at least
  once).
- Drivers that append to a file (json-file, local, the dual-logging cache) save their progress with an
  intent before a write, once per INTENT_EVERY_BYTES under load, and when idle: the checkpoints so far plus
  the file's inode and size. A restarted daemon cuts such a file back to that size (`repair_log_files`,
  which also finds the file again after a rotation) and writes the batches since again: exactly once, even
  when the kill landed mid-write.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from logship.drivers.base import LogDriver, copy_abilities
from logship.pipeline.ledger import Checkpoint, FileIntent, Ledger, read_ledger
from logship.pipeline.message import Batch
from logship.pipeline.processing.instep import DriverProcessing, FlushBatch, Processing
from logship.pipeline.spool import HANDOFF, LEDGER_PREFIX, SPOOL_DIR, Spool

Sink = Callable[[Batch], Awaitable[None]]

log = logging.getLogger("logship.spool")

INTENT_EVERY_BYTES = 1 << 20  # a file driver's progress is saved at least once per this many bytes of lines
IDLE_SAVE_S = 0.2  # a file driver's last acknowledgement is saved once it has had nothing to write this long
# Drivers that append whole records to one file through `LogFile` (json-file, local and the local-format
# dual-logging cache): the ones a torn write can be undone for.
FILE_DRIVERS = frozenset({"json-file", "local", "cache"})


@dataclass
class Mark:
    """What the copier tells each acknowledging driver about a batch before delivering it."""

    batch: Batch
    first_line: int  # number of the batch's first line in its stream
    checkpoint: Checkpoint  # where the driver is once the batch is written


class Acknowledging:
    """A driver whose progress is recorded in its ledger after every batch it writes.

    The wrapped driver's optional abilities are copied onto the instance (not looked up dynamically), so
    `isinstance(wrapper, LogReader)` and the like answer as they would for the driver itself.
    """

    def __init__(self, driver: LogDriver, ledger: Ledger, processing: DriverProcessing | None = None) -> None:
        self.driver = driver
        self.ledger = ledger
        self.name = driver.name
        self.processing = processing  # the container's processing for this driver, None when off
        self._marks: dict[str, deque[Mark]] = {}
        copy_abilities(self, driver)
        path = getattr(driver, "path", None)
        self._file = path if driver.name in FILE_DRIVERS and isinstance(path, str) else None
        self._writing = False
        self._unsaved_bytes = 0  # line bytes written since the intent in the ledger
        self._idle_save: asyncio.TimerHandle | None = None

    def expect(self, mark: Mark) -> None:
        self._marks.setdefault(mark.batch.stream, deque()).append(mark)

    async def log(self, batch: Batch) -> None:
        marks = self._marks.get(batch.stream)
        mark = marks.popleft() if marks else None
        if mark is None or mark.batch is not batch:  # cannot happen in blocking mode; never guess
            log.error("driver %s got a batch the spool did not announce; its progress is not recorded", self.name)
            if not isinstance(batch, FlushBatch):
                await self.driver.log(batch)
            return
        if self.processing is not None:
            await self._processed(batch, mark)
            return
        if isinstance(batch, FlushBatch):
            return
        done = self.ledger.checkpoint(batch.stream).delivered
        if mark.checkpoint.delivered <= done:
            return  # replayed after a restart: this driver already has every line of it
        if mark.first_line < done:
            batch = batch.take(done - mark.first_line)[1]
        await self._write(batch, mark.checkpoint)

    async def _processed(self, batch: Batch, mark: Mark) -> None:
        """The lines this driver has not written yet, processed, each result written and acknowledged."""
        assert self.processing is not None
        first_line = mark.first_line
        if not isinstance(batch, FlushBatch):
            done = self.ledger.checkpoint(batch.stream).delivered
            if mark.checkpoint.delivered <= done:
                return  # replayed after a restart: processing starts afresh at `done`, past these lines
            if first_line < done:
                batch = batch.take(done - first_line)[1]
                first_line = done
        for processed in self.processing.feed(batch, first_line, mark.checkpoint):
            if len(processed.batch):
                await self._write(processed.batch, processed.checkpoint)
            elif processed.checkpoint != self.ledger.checkpoint(batch.stream):  # filtered lines: only progress
                self.ledger.acknowledge(batch.stream, processed.checkpoint, save=self._file is None)
                if self._file is not None and self._idle_save is None:
                    self._idle_save = asyncio.get_running_loop().call_later(IDLE_SAVE_S, self._save_when_idle)

    async def _write(self, batch: Batch, checkpoint: Checkpoint) -> None:
        if self._file is None:
            await self.driver.log(batch)  # raises: lost for this driver, counted by the router; move on too
            self.ledger.acknowledge(batch.stream, checkpoint)
            return
        # An intent saves the acknowledgements so far and the file's size now. Until the next one (after
        # INTENT_EVERY_BYTES, a moment of idleness, or close), a restarted daemon cuts the file back to that
        # size and writes the batches since again: still exactly once, for a fraction of the writes.
        if self.ledger.state.intent is None or self._unsaved_bytes >= INTENT_EVERY_BYTES:
            self.ledger.intend(_file_state(self._file))
            self._unsaved_bytes = 0
        self._unsaved_bytes += batch.nbytes
        self._writing = True
        try:
            await self.driver.log(batch)
        except asyncio.CancelledError:
            raise  # not acknowledged: a restarted daemon undoes whatever part was written and writes it again
        except Exception:
            # Lost for this driver (the router counts and reports it); LogFile has already cut a partial
            # write back, so the intent no longer applies.
            self.ledger.acknowledge(batch.stream, checkpoint)
            raise
        finally:
            self._writing = False
        self.ledger.acknowledge(batch.stream, checkpoint, save=False)
        if self._idle_save is None:
            self._idle_save = asyncio.get_running_loop().call_later(IDLE_SAVE_S, self._save_when_idle)

    def _save_when_idle(self) -> None:
        self._idle_save = None
        self.save_progress()

    def save_progress(self) -> None:
        """Save what was acknowledged but kept back, unless a write is under way (its intent is still
        needed; its acknowledgement saves later)."""
        if not self._writing:
            self.ledger.flush()

    async def close(self) -> None:
        if self._idle_save is not None:
            self._idle_save.cancel()
            self._idle_save = None
        try:
            await self.driver.close()
        finally:
            if not self._writing:
                self.ledger.flush()
            self.ledger.close()


class InStep:
    """The drivers of a container that write in step with the copier (all of them but the disk-buffered
    ones), and the ledgers the copier resumes from after a restart.

    - Blocking mode: each driver acknowledges to its own ledger (`Acknowledging`).
    - Non-blocking mode, or no in-step driver at all: the copier's own ledger (HANDOFF) records what it
      handed on, once handed: the drivers' ring buffers are lossy by design, so what sat in them at the
      moment of a kill is lost (at most max-buffer-size bytes per driver), never what was still in the pipe
      or the spool. (So is a multiline event a driver held open then.)

    `processing`: each driver's processing (None for a driver that gets the lines as they are), when the
    container has processing options; None when it has none (nothing is wrapped for it).
    """

    def __init__(
        self,
        spool: Spool,
        drivers: Sequence[LogDriver],
        blocking: bool,
        processing: Sequence[DriverProcessing | None] | None = None,
    ) -> None:
        self.spool = spool
        self._acknowledging: list[Acknowledging] = []
        each = list(processing) if processing is not None else [None] * len(drivers)
        if blocking:
            self._acknowledging = [
                Acknowledging(driver, spool.ledger(driver.name), own) for driver, own in zip(drivers, each, strict=True)
            ]
            self.drivers: list[LogDriver] = list(self._acknowledging)
        elif processing is not None:
            self.drivers = [Processing(driver, own) for driver, own in zip(drivers, each, strict=True)]
        else:
            self.drivers = list(drivers)
        self._handoff = spool.ledger(HANDOFF) if not blocking or not drivers else None
        spool.resume_from([a.ledger for a in self._acknowledging] + ([self._handoff] if self._handoff else []))

    def to(self, sink: Sink) -> Callable[[Batch, int, Checkpoint], Awaitable[None]]:
        """What the copier hands each batch to: `sink` (the router), with the drivers told its checkpoint."""

        async def deliver(batch: Batch, first_line: int, checkpoint: Checkpoint) -> None:
            mark = Mark(batch, first_line, checkpoint)
            for driver in self._acknowledging:
                driver.expect(mark)
            await sink(batch)
            if self._handoff is not None:
                self._handoff.acknowledge(batch.stream, checkpoint)
            self.spool.trim(batch.stream)

        return deliver

    def tokens(self, sink: Sink) -> Sink:
        """What a processing flush (a batch without lines) goes through: `sink`, the drivers told first."""

        async def send(batch: Batch) -> None:
            mark = Mark(batch, 0, Checkpoint())
            for driver in self._acknowledging:
                driver.expect(mark)
            await sink(batch)

        return send

    def save_progress(self) -> None:
        """Bring the saved restart points up to date (before a restart policy's next run resumes from them)."""
        for driver in self._acknowledging:
            driver.save_progress()


def _file_state(path: str) -> FileIntent:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return FileIntent(path, 0, 0)
    return FileIntent(path, info.st_ino, info.st_size)


def repair_log_files(container_dir: Path) -> list[str]:
    """Before a restarted daemon opens the drivers of a container: undo every log-file write that was not
    acknowledged (it is written again from the spool). Returns what was done, for the daemon log."""
    done: list[str] = []
    directory = container_dir / SPOOL_DIR
    for path in sorted(directory.glob(f"{LEDGER_PREFIX}*")):
        state, _ = read_ledger(path)
        if state.intent is None:
            continue
        note = _undo_write(state.intent)
        if note:
            done.append(note)
        ledger = Ledger(path)
        try:
            ledger.forget_intent()
        finally:
            ledger.close()
    return done


def _undo_write(intent: FileIntent) -> str:
    """Cut the file the interrupted write went to back to its size before; with a rotation in between,
    the older file is found by its inode and the files the write started are emptied."""
    path = intent.path
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return ""
    if current.st_ino == intent.inode or intent.inode == 0:
        if current.st_size > intent.size and intent.inode != 0:
            os.truncate(path, intent.size)
            return f"{path}: cut {current.st_size - intent.size} bytes of an unfinished write"
        if intent.inode == 0 and current.st_size:
            os.truncate(path, 0)
            return f"{path}: emptied a file created by an unfinished write"
        return ""
    # The write rotated the file: its records are after `size` in the old file and in every newer file.
    newer = [path]
    for index in range(1, 100):
        rotated = f"{path}.{index}"
        try:
            info = os.stat(rotated)
        except FileNotFoundError:
            if not os.path.exists(rotated + ".gz"):
                break
            newer.append(rotated + ".gz")
            continue
        if info.st_ino == intent.inode:
            os.truncate(rotated, intent.size)
            for other in newer[1:]:
                os.unlink(other)
            os.truncate(path, 0)
            return f"{path}: undid an unfinished write across a rotation"
        newer.append(rotated)
    # The old file is gone (max-file=1) or compressed: keep its part; the current file holds only the rest.
    os.truncate(path, 0)
    return f"{path}: undid the part of an unfinished write after a rotation (the part before it is kept)"
