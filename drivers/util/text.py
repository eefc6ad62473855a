"""Bytes to text as Go does it: each byte that is not part of valid UTF-8 becomes one U+FFFD.

Python's "replace" handler replaces a maximal invalid subsequence with one U+FFFD (b"\\xf0\\x9f\\x98x" gives one);
Go's decoder, and so Docker's drivers and CloudWatch's accounting, give one per byte (three there).
"""

from __future__ import annotations

import codecs

_PER_BYTE = "logship.go-ufffd"


def _replace_one_byte(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\ufffd", error.start + 1


codecs.register_error(_PER_BYTE, _replace_one_byte)


def decode_go(data: bytes) -> str:
    return data.decode("utf-8", _PER_BYTE)
