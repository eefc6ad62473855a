"""Strict decoding of Fluentd Forward Protocol v1 requests, for logship's fluentd tests.

The spec is https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1. A connection carries
msgpack values back to back; each one is a request:

    Message                  [tag, time, record(, option)]
    Forward                  [tag, [[time, record], ...](, option)]
    PackedForward            [tag, bin|str holding msgpack [time, record] entries back to back(, option)]
    CompressedPackedForward  the same with a gzipped bin (several gzip members allowed), option compressed="gzip"
    nil                      a heartbeat: no events, no reply

`time` is an integer number of seconds, or an EventTime: msgpack ext type 0 with 8 bytes (uint32 big-endian
seconds, uint32 big-endian nanoseconds). Option keys: `size` (the number of events, checked when present),
`chunk` (the Base64 of a 128-bit id; the server answers {"ack": chunk}), `compressed`. Other option keys are
allowed, as the spec lets servers ignore them.

`decode_request` checks all of that and raises ForwardProtocolError naming what is wrong. `count_request`
only counts events, for benchmarks.

Msgpack str values are read as UTF-8. Docker's Go client puts raw log bytes in msgpack str whether or not they
are UTF-8, so record values that are not valid UTF-8 are kept as `RawStr` (their exact bytes) instead of
failing; keys and tags are kept as `str` with the invalid bytes as surrogate escapes (PEP 383).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import msgpack

Mode = Literal["message", "forward", "packed", "compressed"]

EVENT_TIME_EXT_TYPE = 0
NANOSECONDS = 1_000_000_000

# The spec's own names, for error messages.
MODE_NAMES: dict[str, str] = {
    "message": "Message mode",
    "forward": "Forward mode",
    "packed": "PackedForward mode",
    "compressed": "CompressedPackedForward mode",
}


class ForwardProtocolError(ValueError):
    """A request that breaks the Forward Protocol v1 spec; the message says what and where."""


class RawStr(bytes):
    """A msgpack str whose bytes are not valid UTF-8, kept exactly as sent.

    It compares equal to its bytes (`RawStr(b"\\xff") == b"\\xff"`). A msgpack bin value comes back as plain
    `bytes`, so `type(value)` still tells a str that held raw bytes from a bin.
    """

    def __repr__(self) -> str:
        return f"RawStr({bytes(self)!r})"


@dataclass(frozen=True)
class Event:
    """One event as received.

    `record` maps str keys to decoded msgpack values: a str value is `str` when it is valid UTF-8 and `RawStr`
    otherwise, a bin value is `bytes`, ints, floats, bools, nil, arrays and maps are the Python equivalents.
    """

    tag: str
    time_ns: int  # seconds * 10**9 for an integer time, exact for an EventTime
    event_time: bool  # True when the time was an EventTime (ext type 0), False for an integer
    record: dict[str, Any]
    mode: Mode
    chunk: str | None  # the request's `chunk` option, if any

    def raw(self, key: str) -> bytes:
        """The exact bytes of the str or bin value at `key` (UTF-8 for valid text)."""
        value = self.record[key]
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        if isinstance(value, bytes):
            return bytes(value)
        raise TypeError(f"record[{key!r}] is {kind_of(value)}, not a str or bin value")


class Request(NamedTuple):  # a NamedTuple: a frozen dataclass costs a microsecond per request to build
    """One decoded request: `events` is empty when only counting (`count_request`)."""

    mode: Mode
    event_count: int
    chunk: str | None
    events: tuple[Event, ...] = ()


def new_unpacker(max_buffer_size: int = 0) -> msgpack.Unpacker:
    """An Unpacker that reads str as UTF-8 without failing on invalid bytes, and lets the decoder judge map keys.

    `max_buffer_size` 0 is msgpack's default (100 MiB): the most a single request may hold.
    """
    return msgpack.Unpacker(
        raw=False,
        unicode_errors="surrogateescape",
        strict_map_key=False,
        max_buffer_size=max_buffer_size,
    )


def event_time(seconds: int, nanoseconds: int = 0) -> msgpack.ExtType:
    """The EventTime ext value for a time, to build requests by hand."""
    return msgpack.ExtType(EVENT_TIME_EXT_TYPE, struct.pack(">II", seconds, nanoseconds))


def encode_ack(chunk: str) -> bytes:
    """The server's answer to a request that carried `chunk`."""
    return bytes(msgpack.packb({"ack": chunk}))


def kind_of(value: object) -> str:
    """The msgpack name of a decoded value's type, for error messages."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, list):
        return f"array of {len(value)}"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, msgpack.Timestamp):
        return "msgpack Timestamp (ext type -1)"
    if isinstance(value, msgpack.ExtType):
        return f"ext type {value.code} of {len(value.data)} bytes"
    return type(value).__name__


# ---- strict decoding ----


def decode_request(message: object) -> Request:
    """Check one non-nil request against the spec and decode its events.

    Raises ForwardProtocolError for anything the spec does not allow.
    """
    message, tag, mode = _shape(message)
    if mode == "message":
        option = _option(message, option_index=3, mode=mode)
        time_ns, is_event_time = _decode_time(message[1], "the time")
        record = _decode_record(message[2], "the record")
        _check_size(option, 1, mode)
        return Request(mode, 1, option.chunk, (Event(tag, time_ns, is_event_time, record, mode, option.chunk),))

    option = _option(message, option_index=2, mode=mode)
    if option.gzip:
        mode = "compressed"
    entries = message[1] if isinstance(message[1], list) else _split_stream(_stream_bytes(message[1], mode), mode)
    events = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, list) or len(entry) != 2:
            raise ForwardProtocolError(
                f"{MODE_NAMES[mode]}: entry {index} must be an array [time, record], got {kind_of(entry)}"
            )
        time_ns, is_event_time = _decode_time(entry[0], f"entry {index}'s time")
        record = _decode_record(entry[1], f"entry {index}'s record")
        events.append(Event(tag, time_ns, is_event_time, record, mode, option.chunk))
    _check_size(option, len(events), mode)
    return Request(mode, len(events), option.chunk, tuple(events))


def _shape(message: object) -> tuple[list[Any], str, Mode]:
    """The request as an array, its tag, and the carrier mode that its second element selects."""
    if not isinstance(message, list):
        raise ForwardProtocolError(f"a request must be a msgpack array [tag, ...] or nil, got {kind_of(message)}")
    if len(message) < 2:
        raise ForwardProtocolError(f"a request must have at least [tag, time or entries], got {kind_of(message)}")
    tag, second = message[0], message[1]
    if not isinstance(tag, str):
        raise ForwardProtocolError(f"the tag (first element) must be a msgpack str, got {kind_of(tag)}")
    mode: Mode
    if isinstance(second, list):
        mode = "forward"
    elif isinstance(second, (bytes, str)):
        mode = "packed"
    elif isinstance(second, _TIME_TYPES) and not isinstance(second, bool):
        mode = "message"  # a time: _decode_time says what is wrong with a float or a foreign ext
    else:
        raise ForwardProtocolError(
            "the second element must be a time (Message mode), an array of entries (Forward mode) "
            f"or a bin/str stream of entries (PackedForward mode), got {kind_of(second)}"
        )
    longest = 4 if mode == "message" else 3
    if len(message) > longest:
        shape = "[tag, time, record, option]" if mode == "message" else "[tag, entries, option]"
        raise ForwardProtocolError(f"{MODE_NAMES[mode]} is {shape} at most, got an array of {len(message)}")
    if mode == "message" and len(message) < 3:
        raise ForwardProtocolError("Message mode is [tag, time, record(, option)], but the record is missing")
    return message, tag, mode


class _Option(NamedTuple):
    chunk: str | None = None
    size: int | None = None
    gzip: bool = False


_NO_OPTION = _Option()
_TIME_TYPES = (int, float, msgpack.ExtType, msgpack.Timestamp)


def _option(message: list[Any], option_index: int, mode: Mode) -> _Option:
    if len(message) <= option_index:
        return _NO_OPTION
    option = message[option_index]
    if not isinstance(option, dict):
        raise ForwardProtocolError(f"{MODE_NAMES[mode]}: the option must be a msgpack map, got {kind_of(option)}")
    if not option:
        return _NO_OPTION  # Docker sends {} with every request
    for key in option:
        if not isinstance(key, str):
            raise ForwardProtocolError(f"{MODE_NAMES[mode]}: option keys must be str, got {kind_of(key)} {key!r}")

    size = option.get("size")
    if "size" in option and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ForwardProtocolError(
            f"{MODE_NAMES[mode]}: option size must be a non-negative int, got {kind_of(size)} {size!r}"
        )

    chunk = option.get("chunk")
    if "chunk" in option and not _is_chunk_id(chunk):
        raise ForwardProtocolError(
            f"{MODE_NAMES[mode]}: option chunk must be a str holding the Base64 of a 128-bit id, got {chunk!r}"
        )

    compressed = option.get("compressed") == "gzip"  # the spec ignores other values
    if compressed and mode != "packed":
        raise ForwardProtocolError(
            f'option compressed="gzip" marks CompressedPackedForward (a bin stream), but this is {MODE_NAMES[mode]}'
        )
    return _Option(chunk=chunk, size=size, gzip=compressed)


def _is_chunk_id(value: object) -> bool:
    if not isinstance(value, str) or not value.isascii():
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 16
    except binascii.Error:
        return False


def _check_size(option: _Option, count: int, mode: Mode) -> None:
    if option.size is not None and option.size != count:
        raise ForwardProtocolError(
            f"{MODE_NAMES[mode]}: option size is {option.size} but the request holds {count} events"
        )


def _stream_bytes(entries: bytes | str, mode: Mode) -> bytes:
    """The uncompressed MessagePackEventStream of a (Compressed)PackedForward request."""
    if mode == "compressed":
        if not isinstance(entries, bytes):
            raise ForwardProtocolError("CompressedPackedForward mode: the gzipped entries must be msgpack bin, got str")
        try:
            return gzip.decompress(entries)  # several concatenated gzip members are read one after the other
        except (OSError, EOFError, zlib.error) as error:
            raise ForwardProtocolError(
                f"CompressedPackedForward mode: the entries are not valid gzip: {error}"
            ) from None
    if isinstance(entries, str):
        # The spec lets a client send the stream as str; the surrogate escapes give its exact bytes back.
        return entries.encode("utf-8", "surrogateescape")
    return entries


def _split_stream(stream: bytes, mode: Mode) -> list[Any]:
    """The msgpack values of a MessagePackEventStream; leftover bytes are an error."""
    unpacker = new_unpacker(max(len(stream), 1024))
    unpacker.feed(stream)
    values = []
    consumed = 0  # Unpacker.tell() is only exact after a complete value
    try:
        for value in unpacker:
            values.append(value)
            consumed = unpacker.tell()
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise ForwardProtocolError(
            f"{MODE_NAMES[mode]}: the entries are not valid msgpack at byte {consumed}: {error}"
        ) from None
    if consumed != len(stream):
        raise ForwardProtocolError(
            f"{MODE_NAMES[mode]}: the entries end with {len(stream) - consumed} bytes that are not a complete "
            f"msgpack value (after {len(values)} entries)"
        )
    return values


def _decode_time(value: object, where: str) -> tuple[int, bool]:
    """(nanoseconds since the epoch, whether it was an EventTime)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value * NANOSECONDS, False
    if isinstance(value, msgpack.ExtType):
        if value.code != EVENT_TIME_EXT_TYPE:
            raise ForwardProtocolError(f"{where} is msgpack ext type {value.code}; an EventTime is ext type 0")
        if len(value.data) != 8:
            raise ForwardProtocolError(
                f"{where} is an EventTime of {len(value.data)} bytes; it must be 8 "
                "(uint32 seconds and uint32 nanoseconds, big-endian)"
            )
        seconds, nanoseconds = struct.unpack(">II", value.data)
        if nanoseconds >= NANOSECONDS:
            raise ForwardProtocolError(f"{where} is an EventTime with {nanoseconds} nanoseconds; must be below 10^9")
        return seconds * NANOSECONDS + nanoseconds, True
    if isinstance(value, msgpack.Timestamp):
        raise ForwardProtocolError(f"{where} is a msgpack Timestamp (ext type -1); an EventTime is ext type 0")
    raise ForwardProtocolError(f"{where} must be an int (seconds) or an EventTime (ext type 0), got {kind_of(value)}")


def _decode_record(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ForwardProtocolError(f"{where} must be a msgpack map, got {kind_of(value)}")
    record = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ForwardProtocolError(f"{where} has a key that is {kind_of(key)} ({key!r}); keys must be str")
        record[key] = _keep_raw_bytes(item)
    return record


def _keep_raw_bytes(value: Any) -> Any:
    """Turn str values that were not valid UTF-8 into RawStr, through arrays and maps."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")  # fails exactly when the decoder had to escape invalid bytes
        except UnicodeEncodeError:
            return RawStr(value.encode("utf-8", "surrogateescape"))
        return value
    if isinstance(value, list):
        return [_keep_raw_bytes(item) for item in value]
    if isinstance(value, dict):
        return {key: _keep_raw_bytes(item) for key, item in value.items()}
    return value


# ---- counting only ----


def count_request(message: object) -> Request:
    """The number of events in a request and its chunk, without building events.

    It checks the shape, the option and the `size`, and walks a packed stream with Unpacker.skip() so no record
    is built; it does not look inside times and records.
    """
    message, _, mode = _shape(message)
    if mode == "message":
        option = _option(message, option_index=3, mode=mode)
        count = 1
    else:
        option = _option(message, option_index=2, mode=mode)
        if option.gzip:
            mode = "compressed"
        entries = message[1]
        count = len(entries) if isinstance(entries, list) else _count_stream(_stream_bytes(entries, mode), mode)
    _check_size(option, count, mode)
    return Request(mode, count, option.chunk)


def _count_stream(stream: bytes, mode: Mode) -> int:
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(stream), 1024))
    unpacker.feed(stream)
    count = 0
    consumed = 0
    try:
        while True:
            unpacker.skip()
            count += 1
            consumed = unpacker.tell()
    except msgpack.OutOfData:
        pass
    except (ValueError, msgpack.UnpackException) as error:
        raise ForwardProtocolError(
            f"{MODE_NAMES[mode]}: the entries are not valid msgpack at byte {consumed}: {error}"
        ) from None
    if consumed != len(stream):
        raise ForwardProtocolError(
            f"{MODE_NAMES[mode]}: the entries end with {len(stream) - consumed} bytes that are not a complete "
            f"msgpack value (after {count} entries)"
        )
    return count
