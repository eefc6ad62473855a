"""How the file drivers (json-file, local) append a batch, and what they do when the disk is full: wait for
space, lose nothing.

A write that fails for lack of space (ENOSPC, EDQUOT) leaves no torn record behind (`LogFile` cuts a
partial write back) and tells how much of the blob did make it (`LogFileError.written`, whole records).
The driver then keeps the rest of the batch and tries again with backoff, off the event loop, until the
write succeeds: meanwhile the router's channel fills, so in blocking mode the container's writes block
(as on a full pipe) and nothing is lost; in non-blocking mode the router drops what does not fit in
max-buffer-size and counts it. The daemon log gets one error when a file first finds the disk full and one
warning, with the counts, when writing resumes, not one line per failed write. A container that ends
while the disk is still full is flushed for the router's bound (10 s); the lines still waiting are then
counted as failed (`LinesFailed` in `inspect`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable

from logship.drivers.util.logfile import INLINE_BATCH_BYTES, LogFile, LogFileError
from logship.pipeline.message import Batch

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


def out_of_space(err: BaseException) -> bool:
    """Whether a failed write failed because the file system is full (or over quota)."""
    cause = err.__cause__
    return isinstance(cause, OSError) and cause.errno in NO_SPACE


async def write_when_space(
    file: LogFile, blob: bytes, timestamp_ns: int, lines: int, failure: LogFileError, logger: logging.Logger
) -> None:
    """Finish a write of `blob` (`lines` lines) that `failure` cut short for lack of space: retry the
    unwritten records, off the event loop, until they are written. Raises LogFileError for any other
    failure, or when the file was closed meanwhile."""
    since = time.monotonic()
    logger.error(
        "no space left to write the log %s (%s); a batch of %d lines waits for free space (blocking mode: the "
        "container's writes block; non-blocking: lines beyond max-buffer-size are dropped and counted)",
        file.path,
        failure.__cause__,
        lines,
    )
    rest = blob[failure.written :]
    attempts = 1
    delay = RETRY_FIRST_S
    while True:
        await asyncio.sleep(delay)  # cancelled by the router's flush bound at close: then counted as failed
        delay = min(delay * 2, RETRY_MAX_S)
        if file.closed:
            raise LogFileError("error writing log entry: no space left on device, and the log was closed")
        attempts += 1
        try:
            await asyncio.to_thread(file.write, rest, timestamp_ns)
        except LogFileError as err:
            if not out_of_space(err):
                raise
            rest = rest[err.written :]
            continue
        break
    logger.warning(
        "space is available again for the log %s: writing resumed after %.1f s and %d attempts; the %d lines "
        "that waited were written, none lost",
        file.path,
        time.monotonic() - since,
        attempts,
        lines,
    )


async def append_batch(file: LogFile, batch: Batch, encode: Callable[[Batch], bytes], logger: logging.Logger) -> None:
    """How the file drivers (json-file, local) write a batch: encoded and appended on the spot when it is
    small (the usual batch, one pipe read of a few KiB, takes microseconds: less than the ~100 us hop to a
    thread), in a thread otherwise; on a full disk, waiting for space as described above. `encode` is pure,
    so a failed write can encode again. Followers are told about whatever made it to disk."""
    if file.closed:
        raise LogFileError("cannot write because the output file was closed")
    try:
        if batch.nbytes <= INLINE_BATCH_BYTES:
            blob = encode(batch)
            if blob and not file.write_if_quick(blob, batch.timestamp_ns):
                await asyncio.to_thread(file.write, blob, batch.timestamp_ns)
        else:
            await asyncio.to_thread(_encode_and_write, file, batch, encode)
    except LogFileError as err:
        if not out_of_space(err):
            raise
        await write_when_space(file, encode(batch), batch.timestamp_ns, len(batch), err, logger)
    finally:
        file.changed.notify()


def _encode_and_write(file: LogFile, batch: Batch, encode: Callable[[Batch], bytes]) -> None:
    blob = encode(batch)
    if blob:
        file.write(blob, batch.timestamp_ns)
