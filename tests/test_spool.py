"""The spool between a container's FIFO and its drivers: what a daemon killed at any point leaves behind is
enough for the next one to write every line exactly once (see logship.pipeline.spool)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest

from logship.pipeline import spool as spool_module
from logship.pipeline.acknowledging import InStep, repair_log_files
from logship.pipeline.copier import SpooledCopy
from logship.pipeline.cursor import StreamCursor
from logship.pipeline.ledger import Checkpoint, FileIntent, Ledger
from logship.pipeline.message import MAX_LINE_SIZE, Batch
from logship.pipeline.splicer import Splicer
from logship.pipeline.spool import Spool

F_SETPIPE_SZ = 1031


class Recorder:
    """A driver that keeps what it was given, as a log file would, and can hang like a daemon being killed."""

    def __init__(self, kept: list[tuple[bytes, bool]], hang_after: int | None = None) -> None:
        self.name = "recorder"
        self.kept = kept  # (line or piece, ends the line)
        self.hang_after = hang_after
        self.batches = 0
        self.hanging = asyncio.Event()

    async def log(self, batch: Batch) -> None:
        if self.hang_after is not None and self.batches == self.hang_after:
            self.hanging.set()
            await asyncio.Event().wait()  # never returns: the daemon dies here
        self.batches += 1
        self.kept.extend((line, batch.ends_line(i)) for i, line in enumerate(batch.lines))

    async def close(self) -> None:
        pass


def output() -> bytes:
    """Short lines, lines longer than 16 KiB (cut into pieces) and a last line without a newline."""
    parts = []
    for n in range(3000):
        parts.append(b"line %d\n" % n)
        if n % 1000 == 500:
            parts.append(b"L" * (MAX_LINE_SIZE * 6 + 123) + b"\n")
        if n == 2000:
            parts.append(b"x" * MAX_LINE_SIZE + b"\n")  # a full piece and an empty last piece
    parts.append(b"no newline at the end")
    return b"".join(parts)


def whole_lines(kept: list[tuple[bytes, bool]]) -> list[bytes]:
    lines, current = [], b""
    for piece, ends in kept:
        current += piece
        if ends:
            lines.append(current)
            current = b""
    return lines + ([current] if current else [])


def filled_pipe(data: bytes) -> int:
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    fcntl.fcntl(read_end, F_SETPIPE_SZ, 1 << 20)
    os.write(write_end, data)
    os.close(write_end)  # every writer gone: EOF after the data, as when the container has ended
    return read_end


async def run_daemon(
    directory: Path, fd: int, kept: list[tuple[bytes, bool]], hang_after: int | None, fresh: bool
) -> None:
    """One daemon's life for one stream: until the recorder hangs (then it is 'killed') or the stream ends."""
    spool = Spool.fresh(directory, blocking=True) if fresh else Spool(directory, blocking=True)
    recorder = Recorder(kept, hang_after)
    in_step = InStep(spool, [recorder], blocking=True)
    (driver,) = in_step.drivers
    spool.start_run(["stdout"])
    spooled = spool.stream("stdout")
    copier = SpooledCopy(
        spool, [StreamCursor(spooled, spool.restart_point("stdout"), MAX_LINE_SIZE)], in_step.to(driver.log)
    )
    splicer = Splicer({"stdout": spooled}, {"stdout": fd}, True, copier)
    copying = asyncio.ensure_future(asyncio.gather(splicer.run(), copier.run()))
    hung = asyncio.ensure_future(recorder.hanging.wait())
    await asyncio.wait({copying, hung}, return_when=asyncio.FIRST_COMPLETED)
    if not copying.done():
        copying.cancel()  # kill -9: nothing more is acknowledged
        with pytest.raises(asyncio.CancelledError):
            await copying
    else:
        copying.result()
    hung.cancel()
    spool.close()


@pytest.mark.parametrize("kills", [[1], [4], [2, 3, 9], [0, 0, 5], [1] * 100])  # the last: after every batch
@pytest.mark.parametrize("read_size", [7_777, 40_000])  # reads end in the middle of lines and of pieces
def test_a_daemon_killed_between_batches_leaves_every_line_for_the_next_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kills: list[int], read_size: int
) -> None:
    monkeypatch.setattr(spool_module, "READ_SIZE", read_size)
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 50_000)
    data = output()
    fd = filled_pipe(data)
    kept: list[tuple[bytes, bool]] = []

    async def lives() -> None:
        for index, hang_after in enumerate(kills):
            await run_daemon(tmp_path, fd, kept, hang_after, fresh=index == 0)
        await run_daemon(tmp_path, fd, kept, None, fresh=False)

    try:
        asyncio.run(lives())
    finally:
        os.close(fd)
    assert whole_lines(kept) == data.split(b"\n")
    assert kept[-1] == (b"no newline at the end", False)


def test_the_spool_keeps_only_what_a_driver_has_not_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "READ_SIZE", 5_000)
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 10_000)
    data = output()
    fd = filled_pipe(data)
    kept: list[tuple[bytes, bool]] = []

    async def life() -> list[str]:
        await run_daemon(tmp_path, fd, kept, None, fresh=True)
        await asyncio.get_running_loop().shutdown_default_executor()  # segments are deleted off the loop
        return sorted(p.name for p in (tmp_path / "spool").glob("stdout.*") if p.suffix[1:].isdigit())

    try:
        segments = asyncio.run(life())
    finally:
        os.close(fd)
    assert len(data) > 10 * 10_000
    assert len(segments) <= 2, segments
    assert whole_lines(kept) == data.split(b"\n")


def test_a_ledger_torn_by_a_kill_falls_back_to_its_previous_record(tmp_path: Path) -> None:
    path = tmp_path / "ledger-x"
    ledger = Ledger(path)
    ledger.acknowledge("stdout", Checkpoint(10, 2, 3))
    ledger.intend(FileIntent("/some/where/x-json.log", 1234, 99))
    ledger.close()
    assert Ledger(path).state.intent == FileIntent("/some/where/x-json.log", 1234, 99)
    # The newest record (the intent) is in the first slot; a kill in the middle of writing it:
    raw = path.read_bytes()
    where = raw.index(b"intent")
    assert where < 2048
    path.write_bytes(raw[:where] + b"intenT" + raw[where + 6 :])
    reread = Ledger(path)
    assert reread.state.intent is None
    assert reread.checkpoint("stdout") == Checkpoint(10, 2, 3)


def test_a_write_that_was_not_acknowledged_is_cut_back(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(b'{"log":"kept\\n"}\n{"log":"torn')
    (tmp_path / "spool").mkdir()
    ledger = Ledger(tmp_path / "spool" / "ledger-json-file")
    ledger.intend(FileIntent(str(log), log.stat().st_ino, len(b'{"log":"kept\\n"}\n')))
    ledger.close()
    notes = repair_log_files(tmp_path)
    assert log.read_bytes() == b'{"log":"kept\\n"}\n'
    assert len(notes) == 1 and "cut" in notes[0]
    assert Ledger(tmp_path / "spool" / "ledger-json-file").state.intent is None
    assert repair_log_files(tmp_path) == []  # done once


def test_a_write_that_rotated_the_file_is_undone_in_both_files(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(b"old record\n")
    inode, size = log.stat().st_ino, log.stat().st_size
    (tmp_path / "spool").mkdir()
    ledger = Ledger(tmp_path / "spool" / "ledger-json-file")
    ledger.intend(FileIntent(str(log), inode, size))
    ledger.close()
    with log.open("ab") as file:  # the write: one record, then a rotation, then more records
        file.write(b"new record 1\n")
    log.rename(tmp_path / "c-json.log.1")
    log.write_bytes(b"new record 2\n")
    repair_log_files(tmp_path)
    assert (tmp_path / "c-json.log.1").read_bytes() == b"old record\n"
    assert log.read_bytes() == b""
