"""json-file's line format, byte for byte as Docker writes it (`jsonlog/jsonlogbytes.go`):

    {"log":"<line>\\n","stream":"stdout","attrs":{...},"time":"<RFC3339Nano>"}

Keys in that fixed order; `log` keeps the newline unless the message is a non-last piece of a long line,
and is left out when empty; `attrs` only when the container has extra attributes.

Escaping of `log` (ffjson's): `"` and `\\` backslashed, `\\n` and `\\r` short, every other byte below
0x20 and `<`, `>`, `&` as `\\u00xx` (so a tab is `\\u0009`), each byte of invalid UTF-8 as `\\ufffd`
(Go decodes one byte at a time, so a truncated 4-byte sequence gives three), U+2028/U+2029 escaped,
everything else (DEL, valid UTF-8) raw.

Speed: a batch shares one stream and one timestamp, so in the usual case (nothing to escape anywhere in
the batch) a whole batch is one `replace` on its text (or one `join` of its lines); only lines that need
escaping take the slower path.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping

import orjson

from logship.drivers.util.timestamps import format_rfc3339nano
from logship.pipeline.message import Batch

_LOG_PREFIX = b'{"log":"'

# Delete tables for bytes.translate, the fastest way to ask "does this hold any byte of a set?":
# what survives the deletion is the set's members.
_ASCII_SPECIAL = frozenset(range(0x20)) | frozenset(b'"\\<>&')
_NOT_ASCII_SPECIAL = bytes(byte for byte in range(256) if byte not in _ASCII_SPECIAL)
# Non-ASCII bytes are kept too: they need a check for valid UTF-8.
_NEVER_ESCAPED = bytes(byte for byte in range(0x80) if byte not in _ASCII_SPECIAL)


def _ascii_escapes(short_tab: bool) -> dict[int, bytes]:
    table = {byte: b"\\u%04x" % byte for byte in _ASCII_SPECIAL}
    table.update({ord("\n"): b"\\n", ord("\r"): b"\\r", ord('"'): b'\\"', ord("\\"): b"\\\\"})
    if short_tab:
        table[ord("\t")] = b"\\t"
    return table


_LOG_ESCAPES = _ascii_escapes(short_tab=False)  # ffjson, for `log`
_ATTR_ESCAPES = _ascii_escapes(short_tab=True)  # Go's encoding/json, for `attrs`

_BACKSLASH = ord("\\")
_SINGLE_BYTES = [bytes([byte]) for byte in range(256)]
_REPLACE_ERRORS = "logship.json-ufffd"


def _escaped_replacement(error: UnicodeError) -> tuple[str, int]:
    # One `\ufffd` escape per bad byte, then carry on at the next byte, as Go's utf8.DecodeRune does.
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\\ufffd", error.start + 1


codecs.register_error(_REPLACE_ERRORS, _escaped_replacement)


def _escape(data: bytes, ascii_escapes: dict[int, bytes]) -> bytes:
    present = set(data.translate(None, _NOT_ASCII_SPECIAL))
    if present:
        # One pass per distinct special byte; the backslash first, as the other escapes add some.
        if _BACKSLASH in present:
            data = data.replace(b"\\", b"\\\\")
            present.discard(_BACKSLASH)
        for byte in present:
            data = data.replace(_SINGLE_BYTES[byte], ascii_escapes[byte])
    if not data.isascii():
        # The ASCII escapes above cannot change which non-ASCII bytes are valid UTF-8.
        text = data.decode("utf-8", _REPLACE_ERRORS)
        if "\u2028" in text or "\u2029" in text:
            text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        data = text.encode("utf-8")
    return data


def _is_plain(text: bytes, newlines: int) -> bool:
    """Whether `text`, holding exactly `newlines` newlines, has nothing else json-file escapes.

    orjson (SIMD) escapes exactly the bytes below 0x20, `"` and `\\`, each into two or more characters, so
    on ASCII its output is 2 (the quotes) + `newlines` bytes longer only if nothing else needed escaping;
    `<`, `>` and `&` are found by memchr. About 4x faster than `translate` on clean text.
    """
    if not text.isascii() or b"<" in text or b">" in text or b"&" in text:
        return False
    return len(orjson.dumps(text.decode("ascii"))) == len(text) + 2 + newlines


def escape_log(line: bytes) -> bytes:
    """The line as it appears between the quotes of `"log":"..."`."""
    return _escape(line, _LOG_ESCAPES)


def json_string(text: str) -> bytes:
    """A JSON string as Go's encoding/json writes it (HTML-safe), quotes included."""
    try:
        raw = text.encode("utf-8", "surrogateescape")  # bytes that came from the OS stay bytes
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return b'"' + _escape(raw, _ATTR_ESCAPES) + b'"'


def marshal_attrs(attrs: Mapping[str, str]) -> bytes:
    """`json.Marshal(map[string]string)`: keys sorted, no spaces."""
    items = (json_string(key) + b":" + json_string(value) for key, value in sorted(attrs.items()))
    return b"{" + b",".join(items) + b"}"


class BatchEncoder:
    """Encodes batches for one container: its attributes are marshalled once, here."""

    def __init__(self, attrs: Mapping[str, str]) -> None:
        self._attrs = b'"attrs":' + marshal_attrs(attrs) + b"," if attrs else b""

    def encode(self, batch: Batch) -> bytes:
        """The batch's lines as json-file records, each ending in a newline."""
        if not len(batch):
            return b""
        stream = b'"stream":' + json_string(batch.stream) + b"," if batch.stream else b""
        # Everything after the log text: `","stream":"stdout",` attrs `"time":"..."}` and the newline.
        after_log = stream + self._attrs + b'"time":"' + format_rfc3339nano(batch.timestamp_ns).encode() + b'"}\n'
        whole_line_end = b'\\n",' + after_log
        text = batch.text
        if text is not None and _is_plain(text, len(batch) - 1):
            # The usual batch: whole lines, nothing to escape; each newline becomes the end of one record
            # and the start of the next, without one object per line.
            return _LOG_PREFIX + text.replace(b"\n", whole_line_end + _LOG_PREFIX) + whole_line_end
        lines = batch.lines
        if b"".join(lines).translate(None, _NEVER_ESCAPED):
            lines = [escape_log(line) if line.translate(None, _NEVER_ESCAPED) else line for line in lines]
        if not batch.partials:
            return _LOG_PREFIX + (whole_line_end + _LOG_PREFIX).join(lines) + whole_line_end
        piece_end = b'",' + after_log
        parts: list[bytes] = []
        for index, line in enumerate(lines):
            if batch.ends_line(index):
                parts += (_LOG_PREFIX, line, whole_line_end)
            elif line:
                parts += (_LOG_PREFIX, line, piece_end)
            else:  # an empty piece: Docker leaves `log` out altogether
                parts += (b"{", after_log)
        return b"".join(parts)
