"""A user's regex judged line by line, but found in a block of lines (a batch's text, lines joined by
newlines) with a few C-level scans instead of a Python call per line.

A line matches when the regex matches anywhere in it (search, as Go's `Match`). Scanning the whole block
with the regex in MULTILINE mode finds the same lines, because `^`, `$` and `\\b` mean the same at a line's
edges in the block as in the line alone, with two exceptions handled exactly:

- a match that runs over a newline (`\\s+`, `[^x]`, `(?s).`): its line is checked on its own, and the scan
  goes on from the next line, so a match that a line really has is never hidden by it;
- regexes whose meaning depends on what lies beyond the line (lookarounds, `\\A`, `\\Z`) are judged line by
  line (slower, exact).

Redaction works the same way: a substitution over the block, kept only if it removed no newline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Lookarounds and string anchors: a line's neighbours could change the answer.
_CAREFUL = re.compile(rb"\(\?<?[=!]|\\[AZz]")


def _careful(source: bytes) -> bool:
    """Whether `source` uses lookarounds or string anchors (backslash pairs skipped: `\\\\A` is not `\\A`)."""
    plain = re.sub(rb"\\\\", b"", source)
    return _CAREFUL.search(plain) is not None


class LinePattern:
    def __init__(self, source: bytes) -> None:
        self.source = source
        self.line = re.compile(source)
        self.block = re.compile(source, re.MULTILINE)
        self.careful = _careful(source)

    def search(self, line: bytes) -> bool:
        return self.line.search(line) is not None

    def lines(self, text: bytes, position: int = 0) -> Iterator[tuple[int, int]]:
        """(start, end) of each line of `text` that matches, in order (end: its newline or the text's end),
        from the line that begins at `position`."""
        if self.careful:
            yield from self._line_by_line(text, position)
            return
        search = self.block.search
        size = len(text)
        while position <= size:
            match = search(text, position)
            if match is None:
                return
            found = match.start()
            start = text.rfind(b"\n", position, found) + 1 or position
            end = text.find(b"\n", found)
            if end < 0:
                end = size
            if match.end() <= end or self.block.search(text, start, end) is not None:
                yield start, end
            position = end + 1

    def _line_by_line(self, text: bytes, position: int) -> Iterator[tuple[int, int]]:
        search = self.line.search
        start = position
        for line in text[position:].split(b"\n"):
            end = start + len(line)
            if search(line) is not None:
                yield start, end
            start = end + 1


_GLOBAL_FLAGS = re.compile(rb"\(\?([aiLmsux]+)\)")


def combined(sources: tuple[bytes, ...]) -> bytes:
    """The regexes as one alternation (leading global flags such as `(?i)` scoped to their own regex)."""
    parts = []
    for source in sources:
        flags = _GLOBAL_FLAGS.match(source)
        if flags is not None:
            source = b"(?" + flags.group(1) + b":" + source[flags.end() :] + b")"
        parts.append(b"(?:" + source + b")")
    return b"|".join(parts)


class Redactor:
    """Matches of the redact regexes replaced, line by line, in one pass (the regexes as alternatives: where
    two would match at one place, the first listed wins); counts the matches."""

    def __init__(self, sources: tuple[bytes, ...], replacement: bytes) -> None:
        self.pattern = LinePattern(combined(sources))
        self.replacement = replacement
        self._literal = replacement.replace(b"\\", b"\\\\")  # re.sub reads backslashes in a template

    def text(self, text: bytes) -> tuple[bytes, int]:
        """A block of lines redacted, and the number of matches."""
        pattern = self.pattern
        if not pattern.careful:
            redacted, found = pattern.block.subn(self._literal, text)
            if not found:
                return text, 0
            if redacted.count(b"\n") == text.count(b"\n"):
                return redacted, found
        count = 0
        lines = text.split(b"\n")
        for index, line in enumerate(lines):
            redacted, found = pattern.line.subn(self._literal, line)
            if found:
                lines[index] = redacted
                count += found
        return b"\n".join(lines), count

    def line(self, line: bytes) -> tuple[bytes, int]:
        return self.pattern.line.subn(self._literal, line)

    def stream(self, data: bytes, start: int, final: bool, overlap: int) -> tuple[bytes, int, int]:
        """Part of one very long line: `data[start:]` redacted up to a border that no match may still grow
        past (all of it when `final`), with `data[:start]` as context; (redacted, matches, border). A match
        of up to `overlap` bytes is always found whole: what follows the border is judged again with the
        line's next bytes."""
        end = len(data)
        border = end if final else max(start, end - overlap)
        out = []
        count = 0
        position = start
        for match in self.pattern.block.finditer(data, start):
            if match.start() >= border:
                break
            if not final and match.end() >= end:  # may grow with the next bytes: judged again then
                border = match.start()
                break
            out.append(data[position : match.start()])
            out.append(self.replacement)
            count += 1
            position = match.end()
            border = max(border, position)
        out.append(data[position:border])
        return b"".join(out), count, border
