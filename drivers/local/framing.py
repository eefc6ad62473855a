"""How the local format delimits its records on disk, checks them, and finds them again after damage.

Every record (`record.py` says what is inside) is written as one frame:

    magic "\\xffLSF" | length u32 | payload (length bytes) | CRC-32 of payload u32 | length u32

(integers little-endian; 16 bytes of overhead). The leading length lets a reader walk forward, the
trailing one lets `--tail` walk backwards from the end of a file without scanning it, the CRC tells a
damaged payload from a good one, and the magic (0xff never occurs in UTF-8 text) lets a reader find
the next frame after damage.

A frame is *intact* when the magic is there, both lengths agree and are at most MAX_PAYLOAD, and the
CRC matches. Readers treat everything else as damage, count it and go on:

- a frame whose lengths agree but whose CRC does not is skipped on its own: its lengths still say
  where the next frame starts;
- bytes that are not a frame (or a frame whose length was damaged) are skipped up to the next magic
  that starts a frame whose lengths agree (resynchronisation, with `bytes.find`). What a container
  prints never holds the magic on disk (`record` escapes the rare lines that do), so a frame found
  this way was written as one, never made up by a container that prints a local log.
- a frame cut short by the end of the file is *torn*: the last write before a crash. The driver cuts it
  away (`intact_length`) when it opens the file, before it appends anything, so a torn frame never
  ends up in the middle of a file. A reader that meets one anyway (the end of what it was asked to
  read is not a frame boundary) counts it as damage and resynchronises inside it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from zlib import crc32

from logship.drivers.util.logreader import ReadAt

MAGIC = b"\xffLSF"
HEAD = struct.Struct("<4sI")  # magic, payload length
FOOT = struct.Struct("<II")  # CRC-32 of the payload, payload length again
OVERHEAD = HEAD.size + FOOT.size
# Far above what the writer makes (about 1 MiB of lines per record, or one longer line): a larger
# length is damage, and the bound keeps a damaged length from making a reader buffer gigabytes.
MAX_PAYLOAD = 16 * 1024 * 1024

_SCAN_CHUNK = 1 << 20


class RecordTooLarge(ValueError):
    pass


def frame(parts: list[bytes]) -> list[bytes]:
    """The pieces of one frame whose payload is the concatenation of `parts` (join them to write)."""
    length = sum(map(len, parts))
    if length > MAX_PAYLOAD:
        raise RecordTooLarge(f"a record of {length} bytes is larger than the local format allows ({MAX_PAYLOAD})")
    checksum = 0
    for part in parts:
        checksum = crc32(part, checksum)
    return [HEAD.pack(MAGIC, length), *parts, FOOT.pack(checksum, length)]


def next_frame(blob: bytes, index: int) -> int:
    """Where the first frame starting at or after `index` begins in a blob of whole frames (len(blob) if
    none): `LogFile` rotates only there."""
    if index <= 0:
        return 0
    position = 0
    while position < index and position < len(blob):
        position += HEAD.unpack_from(blob, position)[1] + OVERHEAD
    return min(position, len(blob))


@dataclass
class Scan:
    """What a forward walk over a buffer found."""

    payloads: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each intact payload
    damaged: int = 0  # damaged stretches skipped (a count of places, not of records)
    complete: int = 0  # bytes dealt with; the rest is the beginning of a frame not yet whole


def scan(data: bytes, at_end: bool, verify: bool = True) -> Scan:
    """Walk the frames of `data`, which starts at a frame boundary (or in damage).

    `at_end`: nothing follows `data`, so an unfinished frame at its end is damage (torn); otherwise the
    walk stops before it. `verify=False` skips the CRCs: enough to find where frames end, as a frame
    whose lengths agree ends at the same place whether or not its CRC matches.
    """
    view = memoryview(data)
    size = len(data)
    found = Scan()
    position = 0
    while position < size:
        if size - position >= HEAD.size:
            magic, length = HEAD.unpack_from(data, position)
            if magic == MAGIC and length <= MAX_PAYLOAD:
                end = position + length + OVERHEAD
                if end <= size:
                    checksum, trailing_length = FOOT.unpack_from(data, end - FOOT.size)
                    if trailing_length == length:
                        start = position + HEAD.size
                        if not verify or crc32(view[start : start + length]) == checksum:
                            found.payloads.append((start, start + length))
                        else:
                            found.damaged += 1
                        position = end
                        continue
                elif not at_end:
                    break  # the rest of this frame has not been read yet
        elif not at_end:
            break
        # No frame starts here: resynchronise at the next magic.
        found.damaged += 1
        resume = data.find(MAGIC, position + 1)
        if resume >= 0:
            position = resume
        elif at_end:
            position = size
        else:
            # The last bytes may be the first bytes of a magic: keep them for the next buffer.
            position = max(position + 1, size - len(MAGIC) + 1)
            break
    found.complete = position
    return found


def intact_frames(read_at: ReadAt, end: int) -> Iterator[tuple[int, int]]:
    """(payload start, payload end) of every intact frame in [0, end), in file offsets, reading a chunk
    at a time (more only while one frame is longer than what was read)."""
    offset = 0
    pending = b""
    while offset + len(pending) < end:
        more = read_at(offset + len(pending), min(_SCAN_CHUNK, end - offset - len(pending)))
        data = pending + more
        at_end = not more or offset + len(data) >= end
        found = scan(data, at_end)
        for start, stop in found.payloads:
            yield offset + start, offset + stop
        offset += found.complete
        pending = data[found.complete :]
        if at_end:
            return


def frame_before(read_at: ReadAt, end: int) -> int | None:
    """Start of the frame that ends at `end`, if its magic and both lengths agree (CRC not checked)."""
    if end < OVERHEAD:
        return None
    footer = read_at(end - FOOT.size, FOOT.size)
    if len(footer) != FOOT.size:
        return None
    length: int = FOOT.unpack(footer)[1]
    start = end - OVERHEAD - length
    if length > MAX_PAYLOAD or start < 0:
        return None
    header = read_at(start, HEAD.size)
    if len(header) != HEAD.size or HEAD.unpack(header) != (MAGIC, length):
        return None
    return start


def intact_length(read_at: ReadAt, size: int) -> int:
    """How much of a file of `size` bytes to keep so that it ends with a whole frame: `size` when its
    last frame is intact (the usual case, checked from the end), else the end of the last intact frame
    a forward walk finds: nothing a reader would show lies beyond it."""
    start = frame_before(read_at, size)
    if start is not None and len(scan(read_at(start, size - start), at_end=True).payloads) == 1:
        return size
    last_end = 0
    for _, payload_end in intact_frames(read_at, size):
        last_end = payload_end + FOOT.size
    return last_end
