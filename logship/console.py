"""Where the `logship` command starts: the console script and `python -m logship` both call `main()`.

Start-up time is part of every command's latency (`logship logs --tail 10` is one short request), and most
of it goes to loading modules: click and the client create many long-lived objects, which the garbage
collector would scan again and again while they load, and once more as the process exits, never finding
anything to free (about a fifth of the CPU time of `logship logs --tail 10`). So collection is paused while
the CLI loads, and what loading created is frozen (`gc.freeze`: left out of every later collection); the
command itself runs with the collector working as usual.

A plain `logship logs ...`, the command run most often, runs without click at all (see
logship.logscommand); every other command line goes to click.

This module imports nothing else first, so the pause covers click's import too.
"""

from __future__ import annotations

import gc
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms); type checkers know the name
if TYPE_CHECKING:
    from collections.abc import Callable


def main() -> None:
    gc.disable()
    try:
        command = _command(sys.argv[1:])
        gc.freeze()
    finally:
        gc.enable()
    run_reporting_errors(command)


def _command(args: list[str]) -> Callable[[], None]:
    if args[:1] == ["logs"]:
        from logship.logscommand import plain_command

        plain = plain_command(args[1:])
        if plain is not None:
            return plain
    from logship.cli import run_click

    return run_click


def run_reporting_errors(command: Callable[[], None]) -> None:
    """Run a command, reporting as docker's CLI does the errors any command can meet (click's own errors
    are logship.cli.run_click's business)."""
    import signal

    from logship.client import APIError, DaemonUnreachable, UnusableTLSFiles
    from logship.http1 import ProtocolError

    # Like cat: when the reader of our output goes away (`logship logs x | head`), end quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        command()
    except APIError as err:
        print(f"Error response from daemon: {err}", file=sys.stderr)
        sys.exit(1)
    except (DaemonUnreachable, UnusableTLSFiles) as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    except ProtocolError as err:  # the daemon went away in the middle of a stream (it was stopped, say)
        print(f"error reading the daemon's answer: {err}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:
        sys.stderr.close()  # `logship logs ... | head`: the reader left, nothing to report
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
