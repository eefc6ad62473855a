"""Batches of lines → GELF 1.1 messages, byte for byte as Docker's driver (go-gelf v2) makes them, before
compression:

    {"version":"1.1","host":HOST,"short_message":LINE,"timestamp":T,"level":L,<extras>}

`timestamp` is seconds with millisecond decimals, printed as Go prints a float64 (shortest form, no
`.0`); `level` is 6 for stdout and 3 for stderr; the extras are `_command`, `_container_id`,
`_container_name`, `_created`, `_image_id`, `_image_name`, `_tag` and the labels/env selections under
`_`-prefixed names, sorted by key (Go marshals a map sorted). Strings are escaped as Go's encoding/json
does (`<` as `\\u003c`, each invalid UTF-8 byte as `\\ufffd`). Empty lines are not sent; a piece of a long
line is a message of its own.

UDP: each message compressed on its own (gzip, the default, or zlib, or none) and, when longer than 1,420
bytes, cut into chunks of 1,408 bytes behind a 12-byte header (magic 0x1e 0x0f, an 8-byte message id,
the chunk's number and the count), at most 128. TCP: each message uncompressed and ended by a NUL byte.

A batch shares one stream and one time, so everything but the line is made once per batch, and a batch
of plain lines (nothing to escape, no empty line) becomes messages with one `replace` and one `split`.

parse=json (logship.pipeline.processing): a line that was a JSON object keeps it as `short_message` and
gets its keys as additional fields after Docker's (see `ParsedFields`).
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from logship.drivers.util.gojson import NEVER_ESCAPED, escape_go, is_plain, json_string, marshal_attrs
from logship.drivers.util.timestamps import format_rfc3339nano
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, Batch
from logship.pipeline.processing.jsonparse import flatten, scalar_text

LOG_INFO = 6
LOG_ERR = 3
CHUNK_SIZE = 1420  # go-gelf's ChunkSize: a message longer than this is chunked
CHUNK_HEADER = 12
CHUNK_DATA = CHUNK_SIZE - CHUNK_HEADER
MAX_CHUNKS = 128
MAGIC = b"\x1e\x0f"
_WBITS = {"gzip": 31, "zlib": 15}  # 15-bit window; +16: a gzip wrapper
_MEM_LEVEL = 4


class TooLarge(ValueError):
    """A message that would need more than 128 chunks (Docker drops it with an error too)."""


def extras(info: ContainerInfo, tag: str) -> dict[str, str]:
    """Docker's extra fields, attributes added under `_`-prefixed names (a later one wins)."""
    fields = {
        "_container_id": info.full_id(),
        "_container_name": info.name(),
        "_image_id": info.image_id,
        "_image_name": info.image_name,
        "_command": info.command(),
        "_tag": tag,
        "_created": format_rfc3339nano(info.created_ns),
    }
    fields.update(info.extra_attributes(lambda key: key if key.startswith("_") else "_" + key))
    return fields


def gelf_timestamp(timestamp_ns: int) -> bytes:
    """Seconds with millisecond decimals, as Go's encoding/json prints the float64 (shortest round trip)."""
    milliseconds = timestamp_ns // 1_000_000
    if milliseconds % 1000 == 0:
        return b"%d" % (milliseconds // 1000)
    return repr(milliseconds / 1000).encode()


_NOT_IN_NAME = re.compile(r"[^\w.\-]", re.ASCII)  # GELF 1.1: an additional field's name is ^[\w\.\-]*$
_NAMES_CACHED = 4096


class ParsedFields:
    """parse=json's keys as GELF additional fields: nested keys joined by `_` ({"http": {"status": 200}} gives
    `_http_status`), after parse-key's prefix if set, each character GELF does not allow in a name as `_`. A
    name that would replace one the driver sets (Docker's extras such as `_container_id`, or `_id`, which
    GELF reserves) is kept as `_json_<key>`; of two keys that come out alike, the first wins. Numbers stay
    numbers and strings strings; anything else (true, null, an array) is its JSON text, as GELF's additional
    fields hold only strings and numbers. At most 256 fields of one record (`flatten`)."""

    def __init__(self, reserved: Iterable[str], prefix: str = "") -> None:
        self.reserved = frozenset(reserved) | {"_id"}
        self.prefix = _NOT_IN_NAME.sub("_", prefix)
        self._names: dict[str, bytes] = {}

    def name(self, key: str) -> bytes:
        """The field's name, quoted."""
        name = self._names.get(key)
        if name is None:
            text = "_" + (f"{self.prefix}_" if self.prefix else "") + _NOT_IN_NAME.sub("_", key)
            if text in self.reserved:
                text = "_json" + text
            name = json_string(text)
            if len(self._names) < _NAMES_CACHED:
                self._names[key] = name
        return name

    def pairs(self, fields: dict[str, Any]) -> bytes:
        """`,"_key":value` for each field."""
        out: list[bytes] = []
        seen: set[bytes] = set()
        for key, value in flatten(fields):
            name = self.name(key)
            if name in seen:
                continue
            seen.add(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                text = scalar_text(value).encode()
            else:
                text = json_string(scalar_text(value))
            out.append(b"," + name + b":" + text)
        return b"".join(out)


class GelfEncoder:
    def __init__(self, host: str, fields: Mapping[str, str], parse_key: str = "") -> None:
        self._head = b'{"version":"1.1","host":' + json_string(host) + b',"short_message":"'
        self._extras = marshal_attrs(fields)[1:]  # `"_command":...}`, the closing brace included
        self._cache: tuple[str, int, bytes] = ("", -1, b"")
        self.parsed = ParsedFields(fields, parse_key)

    def tail(self, stream: str, timestamp_ns: int) -> bytes:
        """Everything of a message after its line."""
        cached_stream, cached_ms, cached = self._cache
        milliseconds = timestamp_ns // 1_000_000
        if cached_stream == stream and cached_ms == milliseconds:
            return cached
        level = LOG_ERR if stream == STDERR else LOG_INFO
        tail = b'","timestamp":' + gelf_timestamp(timestamp_ns) + b',"level":%d,' % level + self._extras
        self._cache = (stream, milliseconds, tail)
        return tail

    def messages(self, batch: Batch) -> list[bytes]:
        """The batch's messages, uncompressed and unframed."""
        head, tail = self._head, self.tail(batch.stream, batch.timestamp_ns)
        if batch.fields is not None:
            return self._with_fields(batch, head, tail)
        text = batch.text
        if text and text[:1] != b"\n" and text[-1:] != b"\n" and b"\n\n" not in text and is_plain(text, len(batch) - 1):
            # No line holds a byte to escape, so no message holds a newline: join, then split at them.
            return (head + text.replace(b"\n", tail + b"\n" + head) + tail).split(b"\n")
        return [
            head + (escape_go(line) if line.translate(None, NEVER_ESCAPED) else line) + tail
            for line in batch.lines
            if line
        ]

    def _with_fields(self, batch: Batch, head: bytes, tail: bytes) -> list[bytes]:
        """Messages of a batch parse=json went over: a parsed line's keys after the extras."""
        assert batch.fields is not None
        before_brace = tail[:-1]
        out = []
        for line, fields in zip(batch.lines, batch.fields, strict=True):
            if not line:
                continue
            message = head + (escape_go(line) if line.translate(None, NEVER_ESCAPED) else line)
            out.append(message + (tail if fields is None else before_brace + self.parsed.pairs(fields) + b"}"))
        return out


def tcp_frames(messages: list[bytes]) -> bytes:
    """GELF over TCP: each message followed by a NUL byte, uncompressed."""
    return b"\x00".join(messages) + b"\x00" if messages else b""


class Datagrams:
    """GELF over UDP: compression and chunking of one container's messages."""

    def __init__(self, compression: str, level: int) -> None:
        self._wbits = _WBITS.get(compression)
        self._level = level
        self.too_large: list[str] = []  # messages left out since the driver last looked, and why

    def compress(self, message: bytes) -> bytes:
        """The message compressed on its own with a smaller hash table than zlib's default and, for gzip,
        a window just large enough for it: setting up zlib's full 256 KiB of state for each 500-byte
        message cost 8x the time here (224 us against 27), for output 0-1% smaller."""
        if self._wbits is None:
            return message
        window = 15  # zlib's header says its window: a GELF server knows zlib by 0x78, a 32 KiB window
        if self._wbits > 15:  # gzip's header does not
            window = max(9, min(15, len(message).bit_length()))
        packer = zlib.compressobj(self._level, zlib.DEFLATED, self._wbits - 15 + window, _MEM_LEVEL)
        return packer.compress(message) + packer.flush()

    def datagrams(self, messages: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for message in messages:
            data = self.compress(message)
            if len(data) <= CHUNK_SIZE:
                out.append(data)
                continue
            try:
                out.extend(chunks(data))
            except TooLarge as err:
                self.too_large.append(str(err))
        return out


def chunks(data: bytes, message_id: bytes | None = None) -> list[bytes]:
    """go-gelf's chunking, its count included: len // 1408 + 1 chunks (so a length that is a multiple of
    1,408 ends with an empty chunk, as Docker sends it)."""
    count = len(data) // CHUNK_DATA + 1
    if count > MAX_CHUNKS:
        raise TooLarge(f"a GELF message of {len(data)} bytes would need {count} chunks (at most {MAX_CHUNKS})")
    ident = message_id if message_id is not None else os.urandom(8)
    return [
        MAGIC + ident + bytes((number, count)) + data[number * CHUNK_DATA : (number + 1) * CHUNK_DATA]
        for number in range(count)
    ]
