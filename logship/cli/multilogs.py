"""`logship logs web db worker`: several containers' logs as one, ordered by time, each line prefixed with
its container's name as `docker compose logs` prints a project.

Everything happens on the client, over the ordinary `GET /containers/{id}/logs`:

- Each container's log is read in a thread of its own, always with `timestamps=1`. Docker's stamp
  (`2006-01-02T15:04:05.000000000Z`, UTC, always nine digits) sorts as bytes exactly as the times do, so
  lines of different containers are ordered by comparing stamps, with no date parsing. The stamp is cut
  off again unless the user asked for `-t`.
- A reader turns the response into whole lines (`StampedLines`): pieces of a line longer than 16 KiB are
  joined again, and a line without a newline (the end of a log) gets one, so it is never glued to the
  next container's line.
- The main thread merges (`Merge`). A line goes out once no other container can still deliver an older
  one: every other container has a line waiting that is at least as new, or has ended.
- With `-f` a container that writes nothing would hold every other container back forever, so live
  lines only wait for an idle container `HOLD_BACK_S`, then go. History never goes out of order that
  way: before following, each reader asks for the newest line the container's log has (`tail=1`), its
  history mark. Until a container's stream has delivered a line at least that new, the others wait for
  it however long it takes.
"""

from __future__ import annotations

import bisect
import queue
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from logship.client import STREAM_HEADER, STREAM_NOTICE, APIError, Client, DaemonUnreachable, multiplexed
from logship.pipeline.message import MAX_LINE_SIZE

STDOUT = 1  # Docker's stream types in multiplexed frames
STDERR = 2
SYSTEMERR = 3

STAMP_SIZE = len("2006-01-02T15:04:05.000000000Z")
STAMPED = STAMP_SIZE + 1  # the stamp and the space after it
_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")

HOLD_BACK_S = 0.2  # how long a live line waits for idle containers to catch up
READ_SIZE = 1 << 20
CHUNKS_AHEAD = 4  # reads a container may have waiting in the merge: bounds memory on big logs

# docker compose's rotation of prefix colours: cyan, yellow, green, magenta, blue, then their bold forms.
COMPOSE_COLOURS = ("36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1")


@dataclass(frozen=True)
class Display:
    """How lines are shown: `timestamps` keeps each line's stamp (`-t`), `prefix` puts the container's
    name before each line (error lines always have it), `colour` allows a colour per container (each
    stream still only gets it on a terminal)."""

    timestamps: bool = False
    prefix: bool = True
    colour: bool = True


def name_prefixes(names: Sequence[str], colour_out: bool, colour_err: bool) -> list[dict[int, bytes]]:
    """Each container's prefix for stdout and for stderr: `name | ` with the name padded to the longest
    one plus one, in compose's colour for the container's position when that stream is coloured."""
    width = max(map(len, names)) + 1
    prefixes = []
    for position, name in enumerate(names):
        plain = f"{name:<{width}} | "
        coloured = f"\033[{COMPOSE_COLOURS[position % len(COMPOSE_COLOURS)]}m{plain}\033[0m"
        prefixes.append(
            {
                STDOUT: (coloured if colour_out else plain).encode(),
                STDERR: (coloured if colour_err else plain).encode(),
            }
        )
    return prefixes


# ---- what readers tell the merge ----------------------------------------------------------------


@dataclass(frozen=True)
class HistoryMark:
    """The newest stamp a followed container's log had before following began (None: no history)."""

    source: int
    stamp: bytes | None


@dataclass
class Lines:
    """Whole lines of one container from one read, in the order its log gave them. `texts` are ready to
    write (prefix, maybe stamp, the line, "\\n"); `streams` says where each goes."""

    source: int
    stamps: list[bytes] = field(default_factory=list)
    streams: list[int] = field(default_factory=list)
    texts: list[bytes] = field(default_factory=list)
    arrived: float = 0.0  # time.monotonic() when read, for the hold-back


@dataclass(frozen=True)
class Ended:
    """A container's stream is over; `error` is what to tell the user when it did not end well."""

    source: int
    error: str | None = None


Event = HistoryMark | Lines | Ended


# ---- one container's response as lines ----------------------------------------------------------


class StampedLines:
    """Turns the bytes of a `logs?timestamps=1` response into `Lines`.

    Non-tty responses are framed, one frame per log message, so each message's stamp is cut off on its
    own and the pieces of a long line (frames without a newline) are joined again. Tty responses are
    raw bytes: they are split on "\\n", and the stamps Docker puts in front of each 16 KiB piece of a long
    line are found at the pieces' boundaries (when `--details` is off, which makes those lengths known).
    """

    def __init__(
        self,
        source: int,
        tty: bool,
        keep_stamps: bool,
        details: bool,
        prefixes: dict[int, bytes],
        notice_prefix: bytes = b"",
    ) -> None:
        self.source = source
        self.tty = tty  # the response is raw bytes (a tty container's, unframed)
        self.keep_stamps = keep_stamps
        self.details = details
        self.prefixes = prefixes
        self.notice_prefix = notice_prefix  # names the container, even when lines go without a prefix
        self.error: str | None = None  # an error the daemon sent in the stream; reading stops there
        self.lost = False  # the daemon said lines were lost while following (a STREAM_NOTICE)
        self._last_stamp = b""  # a notice sorts with the line before it
        self._buffer = b""
        self._pieces: dict[int, tuple[bytes, list[bytes]]] = {}  # stream -> (first stamp, pieces so far)

    def feed(self, chunk: bytes) -> Lines:
        lines = Lines(self.source, arrived=time.monotonic())
        data = self._buffer + chunk if self._buffer else chunk
        if self.tty:
            self._buffer = self._raw(data, lines)
        else:
            self._buffer = self._frames(data, lines)
        return lines

    def finish(self) -> Lines:
        """The end of the response: a line still without its newline gets one."""
        lines = Lines(self.source, arrived=time.monotonic())
        if self.tty and self._buffer:
            self._add_raw(self._buffer, lines)
        self._buffer = b""
        for stream, (stamp, pieces) in sorted(self._pieces.items(), key=lambda item: item[1][0]):
            self._add(lines, stamp, stream, b"".join(pieces) + b"\n")
        self._pieces.clear()
        return lines

    def _add(self, lines: Lines, stamp: bytes, stream: int, text: bytes) -> None:
        self._last_stamp = stamp
        lines.stamps.append(stamp)
        lines.streams.append(stream)
        lines.texts.append(self.prefixes[stream] + text)

    def _frames(self, data: bytes, lines: Lines) -> bytes:
        position, end = 0, len(data)
        keep = self.keep_stamps
        while end - position >= 8 and self.error is None:
            stream, size = STREAM_HEADER.unpack_from(data, position)
            if end - position - 8 < size:
                break
            payload = data[position + 8 : position + 8 + size]
            position += 8 + size
            if stream == SYSTEMERR:
                self.error = "error from daemon in stream: " + payload.decode(errors="replace").strip()
                return b""
            if stream == STREAM_NOTICE:  # lines lost here: a warning where they would have been
                self.lost = True
                lines.stamps.append(self._last_stamp)
                lines.streams.append(STDERR)
                lines.texts.append(self.notice_prefix + b"WARNING: " + payload)
                continue
            if stream != STDERR:
                stream = STDOUT  # Docker's client prints stdin frames (type 0) on stdout too
            stamp = payload[:STAMP_SIZE]
            body = payload if keep else payload[STAMPED:]
            started = self._pieces.get(stream)
            if not payload.endswith(b"\n"):  # a piece of a long line, or the last bytes of the log
                if started is None:
                    self._pieces[stream] = (stamp, [body])
                else:
                    started[1].append(body)
                continue
            if started is not None:
                del self._pieces[stream]
                stamp = started[0]
                body = b"".join(started[1]) + body
            self._add(lines, stamp, stream, body)
        return data[position:]

    def _raw(self, data: bytes, lines: Lines) -> bytes:
        pieces = data.split(b"\n")
        rest = pieces.pop()
        for piece in pieces:
            self._add_raw(piece, lines)
        return rest

    def _add_raw(self, piece: bytes, lines: Lines) -> None:
        body = piece if self.keep_stamps else self._unstamped(piece)
        self._add(lines, piece[:STAMP_SIZE], STDOUT, body + b"\n")

    def _unstamped(self, piece: bytes) -> bytes:
        body = piece[STAMPED:]
        if self.details or len(body) <= MAX_LINE_SIZE:
            return body
        kept: list[bytes] = []
        start = 0
        while len(body) - start > MAX_LINE_SIZE and _STAMP.match(body, start + MAX_LINE_SIZE):
            kept.append(body[start : start + MAX_LINE_SIZE])
            start += MAX_LINE_SIZE + STAMPED
        kept.append(body[start:])
        return b"".join(kept)


# ---- reading a container in a thread -------------------------------------------------------------


class Feed(threading.Thread):
    """Reads one container's log and puts what it finds on the merge's queue, always ending with `Ended`."""

    def __init__(
        self,
        source: int,
        client: Client,
        container: Mapping[str, Any],
        query: Mapping[str, str | None],
        keep_stamps: bool,
        prefixes: dict[int, bytes],
        notice_prefix: bytes,
        events: queue.Queue[Event],
    ) -> None:
        # A daemon thread: a follow that never ends must not keep the CLI alive after Ctrl-C or a closed pipe.
        super().__init__(name=f"logs-{source}", daemon=True)
        self.source = source
        self.client = client
        self.container_id: str = container["Id"]
        self.tty = bool(container["Config"].get("Tty"))
        self.query = {**query, "timestamps": "1"}
        self.keep_stamps = keep_stamps
        self.prefixes = prefixes
        self.notice_prefix = notice_prefix
        self.lost = False  # the daemon said lines of this container were lost while following
        self.events = events
        self.slots = threading.Semaphore(CHUNKS_AHEAD)  # released by the merge once a read is written out

    def run(self) -> None:
        error: str | None
        try:
            error = self._read()
        except APIError as err:
            error = f"Error response from daemon: {err}"
        except DaemonUnreachable as err:
            error = str(err)
        except OSError as err:  # the client's protocol errors are ConnectionErrors too
            error = f"error reading the logs: {err}"
        except Exception as err:  # a bug here must end this container's stream, never hang the whole command
            error = f"error reading the logs: {err!r}"
        self.events.put(Ended(self.source, error))

    def _read(self) -> str | None:
        path = f"/containers/{self.container_id}/logs"
        if self.query.get("follow"):
            self.events.put(HistoryMark(self.source, self._history_mark(path)))
        response = self.client.request("GET", path, self.query)
        raw = not multiplexed(response, self.tty)
        details = bool(self.query.get("details"))
        lines = StampedLines(self.source, raw, self.keep_stamps, details, self.prefixes, self.notice_prefix)
        read = getattr(response, "read1", response.read)
        while lines.error is None and (chunk := read(READ_SIZE)):
            self._deliver(lines.feed(chunk))
        self._deliver(lines.finish())
        response.close()
        self.lost = lines.lost
        return lines.error

    def _history_mark(self, path: str) -> bytes | None:
        """The stamp of the newest line the log has now, within --since/--until (None when there is none)."""
        if self.query.get("tail") == "0":
            return None
        probe = {**self.query, "follow": None, "details": None, "notices": None, "tail": "1"}
        body = self.client.request("GET", path, probe).read()
        stamp = body[:STAMP_SIZE] if self.tty else body[8 : 8 + STAMP_SIZE]
        return stamp or None

    def _deliver(self, lines: Lines) -> None:
        if lines.stamps:
            self.slots.acquire()
            self.events.put(lines)


# ---- the merge ---------------------------------------------------------------------------------


class Output:
    """stdout and stderr, written in merge order: switching streams flushes the other one first, so a
    terminal that shows both shows the lines in the order they were merged."""

    def __init__(self, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.files = {STDOUT: stdout, STDERR: stderr}
        self._last = STDOUT

    def write(self, stream: int, data: bytes) -> None:
        if stream != self._last:
            self.files[self._last].flush()
            self._last = stream
        self.files[stream].write(data)

    def flush(self) -> None:
        for file in self.files.values():
            file.flush()


NO_LIMIT = (b"\xff", sys.maxsize)  # after every stamp (stamps are ASCII)


@dataclass
class _Source:
    """What the merge knows about one container's stream."""

    index: int
    error_prefix: bytes
    waiting: deque[Lines] = field(default_factory=deque)
    position: int = 0  # lines of waiting[0] already written
    open: bool = True
    newest: bytes = b""  # the newest stamp delivered so far
    history_mark: bytes | None = None
    history_done: bool = False  # only ever set when following: then idle streams hold others back briefly
    error: str | None = None
    error_shown: bool = False

    def head(self) -> tuple[bytes, int]:
        return self.waiting[0].stamps[self.position], self.index


class Merge:
    """Orders the lines of several containers by stamp (ties: the container named first), keeping each
    container's own order, and writes them out. Time is passed in, so the rules can be tested exactly."""

    def __init__(self, error_prefixes: Sequence[bytes], output: Output, written: Callable[[int], None]) -> None:
        self._sources = [_Source(index, prefix) for index, prefix in enumerate(error_prefixes)]
        self._output = output
        self._written = written  # called with a source's index each time one of its `Lines` is fully written

    @property
    def finished(self) -> bool:
        return all(not s.open and not s.waiting and (s.error is None or s.error_shown) for s in self._sources)

    @property
    def failed(self) -> bool:
        return any(s.error is not None for s in self._sources)

    def take(self, event: Event) -> None:
        source = self._sources[event.source]
        if isinstance(event, HistoryMark):
            source.history_mark = event.stamp
            source.history_done = event.stamp is None or source.newest >= event.stamp
        elif isinstance(event, Lines):
            source.waiting.append(event)
            source.newest = max(source.newest, max(event.stamps))
            if source.history_mark is not None and source.newest >= source.history_mark:
                source.history_done = True
        else:
            source.open = False
            source.error = event.error

    def write_ready(self, now: float) -> float | None:
        """Write every line that may go at `now`. Returns when to call again if a line is only waiting for
        its hold-back to pass; None when only news from a reader can let more lines go."""
        while True:
            self._show_errors()
            ready = [s for s in self._sources if s.waiting]
            if not ready:
                return None
            first = min(ready, key=_Source.head)
            lines = first.waiting[0]
            firm, loose = self._limits(first)
            end = _lines_until(lines.stamps, first.position, min(firm, loose), first.index)
            if end == first.position and loose < firm:
                deadline = lines.arrived + HOLD_BACK_S
                if now < deadline:
                    return deadline
                end = _lines_until(lines.stamps, first.position, firm, first.index)
            if end == first.position:
                return None
            self._write(first, lines, end)

    def _limits(self, first: _Source) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
        """How far `first` may go: `firm` is set by containers that will surely deliver something at least
        that old (a waiting line, or history still coming), `loose` by idle followed containers."""
        firm = loose = NO_LIMIT
        for other in self._sources:
            if other is first:
                continue
            if other.waiting:
                firm = min(firm, other.head())
            elif not other.open:
                continue
            elif not other.history_done:
                firm = min(firm, (other.newest, other.index))
            else:
                loose = min(loose, (other.newest, other.index))
        return firm, loose

    def _write(self, source: _Source, lines: Lines, end: int) -> None:
        streams, texts = lines.streams, lines.texts
        start = source.position
        while start < end:  # one write per run of lines going to the same stream
            stream = streams[start]
            stop = start + 1
            while stop < end and streams[stop] == stream:
                stop += 1
            self._output.write(stream, b"".join(texts[start:stop]))
            start = stop
        if end == len(texts):
            source.waiting.popleft()
            source.position = 0
            self._written(source.index)
        else:
            source.position = end

    def _show_errors(self) -> None:
        for source in self._sources:
            if source.error is not None and not source.open and not source.waiting and not source.error_shown:
                source.error_shown = True
                self._output.write(STDERR, source.error_prefix + source.error.encode() + b"\n")


def _lines_until(stamps: list[bytes], start: int, limit: tuple[bytes, int], index: int) -> int:
    """Where the lines that sort before `limit` end, from `start` (equal stamps: the lower index first)."""
    stamp, other = limit
    if index < other:
        return bisect.bisect_right(stamps, stamp, start)
    return bisect.bisect_left(stamps, stamp, start)


# ---- the command's entry point ------------------------------------------------------------------


def show_logs(
    client: Client,
    containers: Sequence[Mapping[str, Any]],
    query: Mapping[str, str | None],
    display: Display,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> int:
    """Print the logs of `containers` (inspected, in the order named) merged by time; `query` is the logs
    request of one container. Returns the exit code: 1 when any container's log could not be shown, or lost
    lines while following."""
    stdout = stdout if stdout is not None else sys.stdout.buffer
    stderr = stderr if stderr is not None else sys.stderr.buffer
    names = [str(container["Name"]).lstrip("/") for container in containers]
    named = name_prefixes(names, display.colour and stdout.isatty(), display.colour and stderr.isatty())
    # Errors always name their container, even when lines go without a prefix.
    prefixes = named if display.prefix else [{STDOUT: b"", STDERR: b""} for _ in names]
    events: queue.Queue[Event] = queue.Queue()
    feeds = [
        Feed(index, client, container, query, display.timestamps, prefixes[index], named[index][STDERR], events)
        for index, container in enumerate(containers)
    ]
    output = Output(stdout, stderr)
    merge = Merge([p[STDERR] for p in named], output, lambda index: feeds[index].slots.release())
    for feed in feeds:
        feed.start()
    while True:
        deadline = merge.write_ready(time.monotonic())
        output.flush()
        if merge.finished:
            return 1 if merge.failed or any(feed.lost for feed in feeds) else 0
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            merge.take(events.get(timeout=timeout))
        except queue.Empty:
            continue
        while True:  # take everything already there before writing: fewer, larger writes
            try:
                merge.take(events.get_nowait())
            except queue.Empty:
                break
