"""json-file's line format, byte for byte as Docker writes it (`jsonlog/jsonlogbytes.go`):

    {"log":"<line>\\n","stream":"stdout","attrs":{...},"time":"<RFC3339Nano>"}

Keys in that fixed order; `log` keeps the newline unless the message is a non-last piece of a long line,
and is left out when empty; `attrs` only when the container has extra attributes.

Escaping of `log` is ffjson's (a tab is `\\u0009`), of `attrs` Go's encoding/json (drivers/util/gojson.py).

Speed: a batch shares one stream and one timestamp, so in the usual case (nothing to escape anywhere in
the batch) a whole batch is one `replace` on its text (or one `join` of its lines); only lines that need
escaping take the slower path.
"""

from __future__ import annotations

from collections.abc import Mapping

from logship.drivers.util.gojson import NEVER_ESCAPED, escape_log, is_plain, json_string, marshal_attrs
from logship.drivers.util.timestamps import format_rfc3339nano
from logship.pipeline.message import Batch

_LOG_PREFIX = b'{"log":"'


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
        if text is not None and is_plain(text, len(batch) - 1):
            # The usual batch: whole lines, nothing to escape; each newline becomes the end of one record
            # and the start of the next, without one object per line.
            return _LOG_PREFIX + text.replace(b"\n", whole_line_end + _LOG_PREFIX) + whole_line_end
        lines = batch.lines
        if b"".join(lines).translate(None, NEVER_ESCAPED):
            lines = [escape_log(line) if line.translate(None, NEVER_ESCAPED) else line for line in lines]
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


__all__ = ["BatchEncoder", "escape_log", "marshal_attrs"]
