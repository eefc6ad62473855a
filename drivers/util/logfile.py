"""A container's log file that rotates and compresses the way Docker's `loggerutils.LogFile` does.

The format of the records is not known here: callers hand over blobs of whole records plus a function
that finds record boundaries, so json-file and local share the rotation rules:

- Before each record, if the file has reached `max_size`, rotate (so a file exceeds max-size by at
  most one record). A blob is written with as few `write()` calls as those rotations allow.
- Rotation with max_files >= 2: delete `.N-1[.gz]`, rename `.i-1` to `.i`, the current file to `.1`;
  with max_files == 1 the current file is unlinked (readers that hold it keep the old inode). Either
  way a fresh file is opened at the same name and the rotation *generation* goes up by one.
- compress: `.1` is gzipped to `.1.gz` in a background thread, with `{"lastTime": ...}` in the gzip
  header; the next rotation waits until that has finished.

Readers (`logreader`) open files through `open_history` / `open_since` so a rotation never renames
files between their look-up and their open. A follower is registered with its snapshot: before max-file
deletes a file that a follower has not reached, the writer opens it for the follower, within a bound
(see `followers`), so following loses nothing however far behind the follower is or however many
rotations one write makes. All methods but the notifier are thread-safe and block:
drivers call them from a worker thread, except `write_if_quick`, made for the event loop: a small append
to the page cache (or a rotation: a few renames) takes microseconds, far less than the hop to a thread, so
it is done on the spot unless it would wait for a compression or another writer, or the disk has lately
been slow.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from logship.drivers.util import gzipextra
from logship.drivers.util.followers import DEFAULT_FOLLOW_BACKLOG, Follower, FollowLoss, RotatedFile
from logship.drivers.util.notify import ChangeNotifier
from logship.drivers.util.timestamps import format_rfc3339nano
from logship.errors import SystemError_

# next_record(blob, index): where the first record starting at or after `index` begins (len(blob) if none).
NextRecord = Callable[[bytes, int], int]
# count_messages(blob, start, end): how many messages the whole records in blob[start:end] hold.
CountMessages = Callable[[bytes, int, int], int]

FILE_MODE = 0o640
# Drivers encode batches up to this many bytes of lines on the event loop (json-file: about 1 ms per MiB)
# and append them with write_if_quick; bigger ones are encoded and written in a thread.
INLINE_BATCH_BYTES = 256 << 10
# write_if_quick: SLOW_WRITES_IN_A_ROW writes that each took longer than SLOW_WRITE_S (the kernel throttles
# dirty pages, the disk is slow) send the following writes to a thread for SLOW_DISK_BACKOFF_S, so the event
# loop is not held up again. In a row, because on a busy machine one quick write can be preempted for tens
# of ms; a slow disk is slow every time.
SLOW_WRITE_S = 0.02
SLOW_WRITES_IN_A_ROW = 3
SLOW_DISK_BACKOFF_S = 5.0
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class LogFileError(SystemError_):
    """A write that did not happen; the message is Docker's (`error writing log entry: ...`)."""

    written = 0  # bytes of the blob (whole records) that are in the file despite the error


@dataclass(frozen=True)
class Rotation:
    max_size: int = -1  # bytes; -1: never rotate
    max_files: int = 1  # the current file plus max_files-1 rotated ones
    compress: bool = False
    # zlib level of rotated files: 6 is Go's gzip default, which Docker uses. The writer waits for one
    # compression to end before the next rotation, so at high rates the level bounds the write rate.
    compress_level: int = 6
    # Bytes of deleted files one follower may be handed (`followers`); the log-opt `follow-backlog`.
    follow_backlog: int = DEFAULT_FOLLOW_BACKLOG


@dataclass(frozen=True)
class Position:
    """Where the writer is: the rotation generation of the current file and its size in whole records."""

    generation: int
    size: int


@dataclass
class Snapshot:
    """Files opened together, consistent with `position`: rotated ones oldest first, then the current one."""

    position: Position
    current: BinaryIO
    rotated: list[RotatedFile]
    follower: Follower | None = None  # registered with the writer, for a reader that follows
    # What the follower lost among the rotated files: (k, loss) stands before rotated[k] (k = len: after all).
    gaps: list[tuple[int, FollowLoss]] = field(default_factory=list)


class LogFile:
    def __init__(
        self,
        path: str,
        rotation: Rotation,
        next_record: NextRecord,
        count_messages: CountMessages,
        logger: logging.Logger,
    ) -> None:
        self.path = path
        self.rotation = rotation
        self._next_record = next_record
        self._count_messages = count_messages
        self._log = logger
        self._fd = os.open(path, _OPEN_FLAGS, FILE_MODE)
        self._size = os.fstat(self._fd).st_size
        self._generation = 0
        self._last_time_ns: int | None = None  # time of the last record written by this instance
        self._position = Position(0, self._size)
        self._closed = False
        self._write_lock = threading.Lock()  # one writer at a time, rotation included
        self._fsop_lock = threading.Lock()  # renames vs. readers opening files by name
        self._compression: threading.Thread | None = None
        # Rotation and reading touch only the rotated files that can exist: a huge max-file must not
        # cost one rename (or open) per possible name on every rotation.
        self._rotated_files = _highest_rotated_index(path, rotation.max_files - 1)
        self._slow_until = 0.0  # monotonic time until which write_if_quick declines
        self._slow_writes = 0  # write_if_quick's writes in a row that were slow
        self.changed = ChangeNotifier()  # the owner announces writes on it, from the event loop
        # Weak: a reader that was created but never iterated (so never closed) must not stay registered.
        self._followers: weakref.WeakSet[Follower] = weakref.WeakSet()
        # Messages written to each generation's file while someone follows, so a loss can be told in lines.
        self._messages: dict[int, int] = {}

    @property
    def position(self) -> Position:
        return self._position

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, blob: bytes, timestamp_ns: int) -> None:
        """Append whole records (all stamped `timestamp_ns`), rotating between records as needed."""
        with self._write_lock:
            self._write_locked(blob, timestamp_ns)

    def write_if_quick(self, blob: bytes, timestamp_ns: int) -> bool:
        """`write` on the spot if it cannot take long; False (nothing written) if it should go to a thread:
        it would rotate while the previous rotation's compression is still running (rotating waits for it),
        another write holds the file, or recent writes were slow. Errors are `write`'s."""
        max_size = self.rotation.max_size
        if max_size > 0 and self._size + len(blob) >= max_size and self._compressing():
            return False
        if time.monotonic() < self._slow_until or not self._write_lock.acquire(blocking=False):
            return False
        try:
            started = time.monotonic()
            self._write_locked(blob, timestamp_ns)
            finished = time.monotonic()
            if finished - started <= SLOW_WRITE_S:
                self._slow_writes = 0
            else:
                self._slow_writes += 1
                if self._slow_writes >= SLOW_WRITES_IN_A_ROW:
                    self._slow_until = finished + SLOW_DISK_BACKOFF_S
        finally:
            self._write_lock.release()
        return True

    def _write_locked(self, blob: bytes, timestamp_ns: int) -> None:
        if self._closed:
            raise LogFileError("cannot write because the output file was closed")
        max_size = self.rotation.max_size
        view = memoryview(blob)
        start = 0
        while start < len(blob):
            if max_size > 0 and self._size >= max_size:
                try:
                    self._rotate()
                except OSError as err:
                    raise LogFileError(f"error rotating log file: {err}") from err
            if self._fd < 0:  # an earlier rotation could not reopen the file
                raise LogFileError("error writing log entry: the log file could not be reopened")
            end = len(blob) if max_size <= 0 else self._next_record(blob, start + max_size - self._size)
            try:
                self._append(view[start:end])
            except LogFileError as err:
                err.written = start  # the records before `start` are in the file: a retry must skip them
                raise
            if self._followers:
                counted = self._messages.get(self._generation, 0)
                self._messages[self._generation] = counted + self._count_messages(blob, start, end)
            self._last_time_ns = timestamp_ns
            start = end

    def _compressing(self) -> bool:
        return self._compression is not None and self._compression.is_alive()

    def _append(self, data: memoryview) -> None:
        """Write all of `data` or, on failure, none of it: a torn record would break every reader."""
        before = self._size
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as err:
            if written:
                try:
                    os.ftruncate(self._fd, before)
                except OSError:
                    self._size = os.fstat(self._fd).st_size
                    self._position = Position(self._generation, self._size)
            raise LogFileError(f"error writing log entry: {err}") from err
        self._size = before + written
        self._position = Position(self._generation, self._size)

    def _rotate(self) -> None:
        self._wait_for_compression()
        last_time_ns = self._last_time_ns
        if self._fd >= 0:
            if last_time_ns is None:  # nothing written since a restart: the file's mtime bounds its records
                last_time_ns = os.fstat(self._fd).st_mtime_ns
            fd, self._fd = self._fd, -1
            os.close(fd)
        keep_rotated = self.rotation.max_files >= 2
        with self._fsop_lock:
            try:
                self._shift_rotated_files()
            except OSError as err:
                self._log.warning("Error rotating log file, log data may have been lost: %s", err)
            else:
                try:
                    if keep_rotated:
                        os.rename(self.path, self.path + ".1")
                    else:
                        self._hand_over(self._generation, self.path)
                        os.unlink(self.path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    what = "renaming" if keep_rotated else "unlinking"
                    self._log.error("Error %s current log file: %s", what, err)
            # Truncate as Docker does, in case the rename above did not happen.
            self._fd = os.open(self.path, _OPEN_FLAGS | os.O_TRUNC, FILE_MODE)
            self._generation += 1
            self._size = 0
            self._last_time_ns = None
            self._position = Position(self._generation, 0)
        if keep_rotated and self.rotation.compress:
            stamp = last_time_ns if last_time_ns is not None else 0
            self._compression = threading.Thread(
                target=self._compress, args=(self.path + ".1", stamp), name="logship-compress", daemon=True
            )
            self._compression.start()

    def _shift_rotated_files(self) -> None:
        """Make room for a new `.1`: drop the oldest file, move every other one up by one."""
        last = self.rotation.max_files - 1
        if last < 1:
            return
        # Both variants move: a `.k` left plain by a failed compression is still worth keeping.
        if self._rotated_files >= last:
            self._hand_over(self._generation - last, f"{self.path}.{last}")
        for suffix in ("", ".gz"):
            try:
                os.unlink(f"{self.path}.{last}{suffix}")
            except FileNotFoundError:
                pass
        top = min(last, self._rotated_files + 1)
        self._rotated_files = top
        for index in range(top, 1, -1):
            for suffix in ("", ".gz"):
                try:
                    os.rename(f"{self.path}.{index - 1}{suffix}", f"{self.path}.{index}{suffix}")
                except FileNotFoundError:
                    pass

    def _hand_over(self, generation: int, path: str) -> None:
        """The file of `generation` (at `path`, plain or gzipped) is about to be deleted: open it for each
        follower that has not read it yet, within that follower's bound; count it as lost for the others.
        Called with the file-operation lock held; compression never runs on this file (rotation waits)."""
        lines = self._messages.pop(generation, 0)
        behind = [follower for follower in list(self._followers) if follower.needs(generation)]
        if not behind:
            return
        for suffix, compressed in (("", False), (".gz", True)):
            try:
                size = os.stat(path + suffix).st_size
            except FileNotFoundError:
                continue
            for follower in behind:
                if not follower.takes(size):
                    follower.lose(generation, lines, size)
                    continue
                try:
                    file = open(path + suffix, "rb")  # noqa: SIM115 - the follower owns it and closes it
                except OSError as err:  # out of descriptors, most likely
                    self._log.error("Error keeping rotated log file %s open for a follower: %s", path + suffix, err)
                    follower.lose(generation, lines, size)
                    continue
                follower.hand(generation, RotatedFile(path + suffix, file, compressed), size)
            return

    def _compress(self, path: str, last_time_ns: int) -> None:
        extra = b'{"lastTime":"' + format_rfc3339nano(last_time_ns).encode() + b'"}'
        target_path = path + ".gz"
        try:
            with open(path, "rb") as source:
                fd = os.open(target_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
                try:
                    with os.fdopen(fd, "wb") as target:
                        gzipextra.compress(source, target, extra, self.rotation.compress_level)
                except BaseException:
                    os.unlink(target_path)
                    raise
            os.unlink(path)
        except FileNotFoundError:
            pass  # the rotated file is already gone: nothing to compress
        except (OSError, ValueError) as err:
            self._log.error("Error compressing log file after rotation: %s", err)

    def _wait_for_compression(self) -> None:
        if self._compression is not None:
            self._compression.join()
            self._compression = None

    def close(self) -> None:
        """Stop writing; waits for a compression in progress. Readers may still open the files."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._wait_for_compression()

    # Readers.

    def open_history(self, include_rotated: bool = True, follow: bool = False) -> Snapshot:
        """The current file and, oldest first, the rotated files that exist, with the writer's position.
        With `follow`, the snapshot's follower is registered from that position on: `open_since` gives it
        what comes next, and `unfollow` must be called when it goes."""
        with self._fsop_lock:
            position = self._position
            current = open(self.path, "rb")  # noqa: SIM115 - the reader owns it and closes it
            rotated: list[RotatedFile] = []
            if include_rotated:
                for index in range(self._rotated_files, 0, -1):
                    found = self._open_rotated(index)
                    if found is not None:
                        rotated.append(found)
            follower = None
            if follow:
                follower = Follower(position.generation, self.rotation.follow_backlog)
                self._followers.add(follower)
        return Snapshot(position, current, rotated, follower)

    def open_since(self, follower: Follower) -> Snapshot:
        """For a follower whose newest file was current at `follower.generation`: the files that were
        current after it, rotated since (oldest first: those still there and those handed to it before
        they were deleted), the file that is current now, and where it lost files in between."""
        with self._fsop_lock:
            position = self._position
            current = open(self.path, "rb")  # noqa: SIM115 - the reader owns it and closes it
            rotated: list[RotatedFile] = []
            gaps: list[tuple[int, FollowLoss]] = []
            gap = FollowLoss()
            for later in range(follower.generation + 1, position.generation):
                found = follower.handed.pop(later, None)
                if found is None:
                    # The file that was current at generation `later` is now `.k`, k rotations ago.
                    index = position.generation - later
                    found = self._open_rotated(index) if index < self.rotation.max_files else None
                if found is None:
                    gap += FollowLoss(uncounted_files=1)
                elif isinstance(found, FollowLoss):  # deleted past the follower's bound
                    gap += found
                else:
                    if gap:
                        gaps.append((len(rotated), gap))
                        gap = FollowLoss()
                    rotated.append(found)
            if gap:
                gaps.append((len(rotated), gap))
            follower.generation = position.generation
        return Snapshot(position, current, rotated, follower, gaps)

    def release(self, follower: Follower, found: RotatedFile) -> None:
        """The follower is done with a file it was handed: it no longer counts against its backlog."""
        with self._fsop_lock:
            follower.release(found)

    def unfollow(self, follower: Follower) -> None:
        """The follower went away: close what it was handed and forget it."""
        with self._fsop_lock:
            self._followers.discard(follower)
            follower.close()

    def _open_rotated(self, index: int) -> RotatedFile | None:
        # Prefer the plain file: while `.1` is being compressed its `.gz` is still incomplete.
        for suffix, compressed in (("", False), (".gz", True)):
            path = f"{self.path}.{index}{suffix}"
            try:
                return RotatedFile(path, open(path, "rb"), compressed)
            except FileNotFoundError:
                continue
        return None


def _highest_rotated_index(path: str, last: int) -> int:
    """The highest k <= `last` for which `path.k` or `path.k.gz` exists (0 if none): one directory scan."""
    directory, name = os.path.split(path)
    highest = 0
    try:
        entries = os.listdir(directory or ".")
    except FileNotFoundError:
        return 0
    prefix = name + "."
    for entry in entries:
        if entry.startswith(prefix):
            index = entry[len(prefix) :].removesuffix(".gz")
            if index.isdigit() and int(index) <= last:
                highest = max(highest, int(index))
    return highest
