"""Docker's stream framing and `logs` line decoration, byte for byte.

Non-tty streams are multiplexed: every payload is preceded by an 8-byte header
`[stream type, 0, 0, 0, size as uint32 big-endian]` with type 1 stdout, 2 stderr, 3 a daemon error.
Tty streams are raw bytes. `logs -t` prefixes `2006-01-02T15:04:05.000000000Z ` (always nine digits)
and `--details` then prefixes `k=v,k=v ` (attrs sorted, URL query escaped; a lone space when none).

dockerd sends one frame per message, and clients that read a frame at a time (docker-py's
`logs(stream=True)`) rely on it: so does `encode_runs`, framing the readers' runs of lines in C. A client
that demultiplexes by stream and size only, as logship's own CLI, may ask for a frame per run (the
query parameter `runs=1`, a logship extension dockerd ignores): far fewer headers to write and parse.

Lines lost while following (a follower that fell behind by more than its `follow-backlog`: the readers
yield a LOST notice where they were) are never written as lines of output. A client that asks for
notices (`notices=1`, a logship extension; logship's CLI does) gets each one where it happened, as a
frame of type 4 (STREAM_NOTICE) holding the words to show, and then framing even for a tty container.
Any other client (the docker CLI, docker-py) gets the total once the follow ends, the way dockerd
reports a failed read: a type 3 frame, `Error grabbing logs: ...` (the docker CLI prints it on stderr
as `error from daemon in stream: ...` and exits 1; docker-py yields it as the last item). A tty
container's raw stream has no place for it: there the daemon log alone says it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from urllib.parse import quote_plus

from logship.api._multiplex import frame_messages
from logship.drivers.base import LOST, Run
from logship.drivers.util.followers import FollowLoss
from logship.drivers.util.timestamps import LogsPrefix
from logship.pipeline.message import STDERR, STDOUT, Message

STREAM_STDIN = 0
STREAM_STDOUT = 1
STREAM_STDERR = 2
STREAM_SYSTEMERR = 3
STREAM_NOTICE = 4  # logship's: a notice for the person reading, only to clients that ask (`notices=1`)
STREAM_TYPES = {STDOUT: STREAM_STDOUT, STDERR: STREAM_STDERR}

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"

_HEADER = struct.Struct(">BxxxI")


def frame(stream_type: int, payload: bytes) -> bytes:
    return _HEADER.pack(stream_type, len(payload)) + payload


def error_frame(message: str, tty: bool) -> bytes:
    payload = f"Error grabbing logs: {message}\n".encode()
    return payload if tty else frame(STREAM_SYSTEMERR, payload)


def details_prefix(attrs: dict[str, str] | None) -> bytes:
    if not attrs:
        return b" "
    pairs = ",".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items()))
    return pairs.encode() + b" "


class LogEncoder:
    """Turns messages into the bytes of a `logs` response, for the streams the client asked for.

    `tty`: raw bytes, no frames (give False for a tty container whose client takes notices). `notices`:
    the client takes STREAM_NOTICE frames; otherwise what was lost is summed up in `lost` for `closing`.
    """

    def __init__(
        self,
        streams: frozenset[str],
        timestamps: bool,
        details: bool,
        tty: bool,
        frame_per_run: bool = False,
        notices: bool = False,
    ) -> None:
        self.streams = streams
        self.timestamps = timestamps
        self.details = details
        self.tty = tty
        self.frame_per_run = frame_per_run
        self.notices = notices
        self.lost = FollowLoss()
        self._clock = LogsPrefix()

    def encode(self, messages: Iterable[Message]) -> bytes:
        parts: list[bytes] = []
        decorate = self.timestamps or self.details
        for message in messages:
            if message.stream not in self.streams:
                if message.stream == LOST:
                    parts.append(self._notice(message.line))
                continue
            payload = message.line + b"\n" if message.ends_line else message.line
            if decorate:
                prefix = b""
                if self.timestamps:
                    prefix = self._clock.format(message.timestamp_ns)
                if self.details:
                    prefix += details_prefix(message.attrs)
                payload = prefix + payload
            if self.tty:
                parts.append(payload)
            else:
                parts.append(_HEADER.pack(STREAM_TYPES[message.stream], len(payload)))
                parts.append(payload)
        return b"".join(parts)

    def encode_runs(self, runs: Sequence[Run]) -> bytes:
        """Runs (read with the request's timestamps already in them; the fast path is for requests without
        details) as a frame per message, or raw bytes on a tty. A client that asked for a frame per run
        gets neighbouring runs of one stream in one frame (a reader's chunks can end anywhere)."""
        if self.details:
            raise ValueError("runs carry no attributes: decorate messages instead")
        wanted = [(stream, text) for stream, text in runs if stream in self.streams and text]
        if len(wanted) != len(runs) and any(stream == LOST for stream, _ in runs):  # rare: split at the notices
            return b"".join(
                self._notice(text) if stream == LOST else self.encode_runs([(stream, text)]) for stream, text in runs
            )
        if self.tty:
            return b"".join(text for _, text in wanted)
        if self.frame_per_run:
            return b"".join(
                frame(STREAM_TYPES[stream], b"".join(text for _, text in group))
                for stream, group in groupby(wanted, key=itemgetter(0))
            )
        return b"".join(frame_messages(STREAM_TYPES[stream], text) for stream, text in wanted)

    def _notice(self, encoded: bytes) -> bytes:
        loss = FollowLoss.decode(encoded)
        self.lost += loss
        return frame(STREAM_NOTICE, loss.describe().encode() + b"\n") if self.notices else b""

    def closing(self) -> bytes:
        """What ends a response that was read to its end: for a client that takes no notices, what was lost
        in all, as dockerd reports a failed read (nothing on a tty, whose output is raw)."""
        if not self.lost or self.notices or self.tty:
            return b""
        return error_frame(self.lost.describe(), tty=False)
