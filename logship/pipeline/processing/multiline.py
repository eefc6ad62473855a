"""Which lines start a multiline event.

- `multiline-start=<regex>`: a line that matches starts an event; the others join the event before them.
- `multiline=java`: the lines of a Java stack trace join the line before them: frames (`\\tat ...`),
  `\\t... N more`, `... N common frames omitted` (logback), `Caused by: ...` and `Suppressed: ...`.
  Anything else starts an event: the exception line (`Exception in thread "main" java.lang.X: ...`, or a
  logger's message line printed before the trace) begins it.
- `multiline=python`: a traceback, from `Traceback (most recent call last):` (or an exception group's
  `  + Exception Group Traceback ...`) through its indented frames to the exception line, chained
  exceptions included (`During handling of the above exception...`, `The above exception was the direct
  cause...`, with their blank lines).
- `multiline=go`: a panic or fatal error (`panic: ...`, `fatal error: ...`), its `[signal ...]` line, and
  every goroutine's stack (`goroutine N [state]:`, function lines, tab-indented file lines, `created by`,
  the blank lines between goroutines).

A joiner judges each line that begins (the first piece of a long line) as START, CONTINUE, or MAYBE: a
line that belongs to the event only if the next line continues it (the blank line before "During handling
of the above exception" or before the next goroutine). Whatever a joiner decides depends only on the lines
since the start of the event, and a START puts it where a fresh joiner would be after that line, so a
reader that resumes at an event's first line with a fresh joiner makes the same events.

Scanning is done on a batch's text where it can be: the java preset and `multiline-start` find the event
starts of a whole block with one regex scan; python and go skip, with one scan, to the next line that
opens a trace (every line before it is an event of its own).
"""

from __future__ import annotations

import re
from typing import ClassVar

from logship.pipeline.processing.patterns import LinePattern

START, CONTINUE, MAYBE = 0, 1, 2


class StartJoiner:
    """Stateless: a line starts an event when `start` matches it, or when `continuation` does not. Every
    event stays open for the lines that may follow."""

    stateful = False
    open_ended = True

    def __init__(self, start: bytes = b"", continuation: bytes = b"") -> None:
        self.start = LinePattern(start) if start else None
        self.continuation = re.compile(continuation) if continuation else None
        # Line starts (after a newline) that begin an event, for a whole block at once.
        self._boundary = re.compile(b"\n(?!" + continuation + b")") if continuation else None

    def judge(self, line: bytes) -> int:
        if self.continuation is not None:
            return CONTINUE if self.continuation.match(line) else START
        assert self.start is not None
        return START if self.start.search(line) else CONTINUE

    def reset(self) -> None:
        pass

    def starts(self, text: bytes) -> list[int]:
        """Offsets of the lines of `text` after its first that start an event."""
        if self._boundary is not None:
            return [match.start() + 1 for match in self._boundary.finditer(text)]
        assert self.start is not None
        return [start for start, _ in self.start.lines(text) if start]


# The java preset: what a stack trace's lines after the first look like.
JAVA_CONTINUATION = (
    rb"[ \t]+at |[ \t]+\.\.\. \d+ (?:more|common frames omitted)|[ \t]*Caused by: |[ \t]+Suppressed: "
    rb"|[ \t]*--- End of "
)


class _Machine:
    """A preset that follows a trace's parts: `rules[state]` lists (regex, verdict, next state); a line no
    rule of its state takes starts an event (and is judged from the idle state)."""

    stateful = True
    IDLE = "idle"
    rules: ClassVar[dict[str, list[tuple[re.Pattern[bytes], int, str]]]] = {}
    trigger: ClassVar[bytes] = b""  # what opens a trace, from the idle state

    def __init__(self) -> None:
        self.state = self.IDLE
        self._trigger = LinePattern(self.trigger)

    @property
    def open_ended(self) -> bool:
        return self.state != self.IDLE

    def reset(self) -> None:
        self.state = self.IDLE

    def judge(self, line: bytes) -> int:
        if self.state != self.IDLE:
            for pattern, verdict, state in self.rules[self.state]:
                if pattern.match(line):
                    self.state = state
                    return verdict
        self.state = self.IDLE
        for pattern, _, state in self.rules[self.IDLE]:
            if pattern.match(line):
                self.state = state
                break
        return START

    def next_trigger(self, text: bytes, position: int) -> int:
        """From the idle state: the offset of the next line at or after `position` that opens a trace, -1."""
        for start, _ in self._trigger.lines(text, position):
            return start
        return -1


def _rules(*items: tuple[bytes, int, str]) -> list[tuple[re.Pattern[bytes], int, str]]:
    return [(re.compile(pattern), verdict, state) for pattern, verdict, state in items]


_PY_TRACEBACK = rb"(?:  \+ Exception Group )?Traceback \(most recent call last\):$"
_PY_CHAIN = (
    rb"(?:During handling of the above exception, another exception occurred:"
    rb"|The above exception was the direct cause of the following exception:)$"
)


class PythonJoiner(_Machine):
    trigger = b"^" + _PY_TRACEBACK
    rules: ClassVar[dict[str, list[tuple[re.Pattern[bytes], int, str]]]] = {
        _Machine.IDLE: _rules((_PY_TRACEBACK, START, "trace")),
        "trace": _rules(
            (rb"[ \t]", CONTINUE, "trace"),  # frames, source lines, carets, exception group boxes
            (rb"\S", CONTINUE, "exception"),  # the exception line: ValueError: ...
        ),
        "exception": _rules((rb"$", MAYBE, "blank")),
        "blank": _rules((_PY_CHAIN, CONTINUE, "chain")),
        "chain": _rules((rb"$", CONTINUE, "chain"), (_PY_TRACEBACK, CONTINUE, "trace")),
    }


_GO_GOROUTINE = rb"(?:goroutine \d+ .*\[.*\]:|runtime stack:)$"


class GoJoiner(_Machine):
    trigger = rb"^(?:panic: |fatal error: )"
    rules: ClassVar[dict[str, list[tuple[re.Pattern[bytes], int, str]]]] = {
        _Machine.IDLE: _rules((rb"panic: |fatal error: ", START, "panic")),
        "panic": _rules(
            (rb"\[signal |\tpanic: |panic: ", CONTINUE, "panic"),
            (_GO_GOROUTINE, CONTINUE, "stack"),
            (rb"$", MAYBE, "panic-blank"),
        ),
        "panic-blank": _rules((_GO_GOROUTINE, CONTINUE, "stack"), (rb"$", MAYBE, "panic-blank")),
        "stack": _rules(
            (rb"\t|created by |\.\.\.additional frames elided\.\.\.$", CONTINUE, "stack"),
            (rb"[^\s(]+\(.*\)$", CONTINUE, "stack"),  # main.main(), main.(*T).m(0xc0000, ...)
            (_GO_GOROUTINE, CONTINUE, "stack"),
            (rb"$", MAYBE, "stack-blank"),
        ),
        "stack-blank": _rules((_GO_GOROUTINE, CONTINUE, "stack")),
    }


Joiner = StartJoiner | PythonJoiner | GoJoiner


def joiner_for(preset: str, start: bytes) -> Joiner:
    if preset == "java":
        return StartJoiner(continuation=JAVA_CONTINUATION)
    if preset == "python":
        return PythonJoiner()
    if preset == "go":
        return GoJoiner()
    return StartJoiner(start=start)
