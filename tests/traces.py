"""Stack traces for the multiline tests: a Python traceback made here by a real Python process (a chained
exception, so the "During handling..." joint is in it), Java and Go traces kept as fixtures (see
tests/fixtures/traces/README.md), and a container script that prints one a line at a time on stderr while
stdout goes on, as a program that crashes does."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "traces"

_RAISE = """
def load(orders):
    return orders["42"]

def ship():
    try:
        load({})
    except KeyError:
        raise RuntimeError("order 42 could not be shipped")

ship()
"""


@cache
def python_traceback() -> str:
    """What an uncaught exception (raised while handling another) prints, from a real interpreter."""
    done = subprocess.run([sys.executable, "-c", _RAISE], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "During handling of the above exception" in done.stderr, done.stderr
    return done.stderr.rstrip("\n")


def java_trace() -> str:
    return (FIXTURES / "java.txt").read_text().rstrip("\n")


def go_trace() -> str:
    return (FIXTURES / "go.txt").read_text().rstrip("\n")


TRACES = {"python": python_traceback, "java": java_trace, "go": go_trace}

# $TRACE a line at a time on stderr (one write each, as runtimes print them), a stdout line between
# every few: stdout never joins a stderr event. Before and after it, plain lines on stderr.
PRINT_TRACE = (
    'echo "starting" >&2; echo "out 0"; n=0; '
    'printf "%s\\n" "$TRACE" | while IFS= read -r line; do printf "%s\\n" "$line" >&2; '
    'n=$((n+1)); [ $((n % 4)) -eq 0 ] && echo "out $n"; done; '
    'echo "after the trace" >&2; echo "out end"'
)
