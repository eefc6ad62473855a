"""Where the `logship` command starts: the console script and `python -m logship` both call `main()`.

Start-up time is part of every command's latency (`logship logs --tail 10` is one short request), and most
of it goes to loading modules: click and the client create many long-lived objects, which the garbage
collector would scan again and again while they load, and once more as the process exits, never finding
anything to free (about a fifth of the CPU time of `logship logs --tail 10`). So collection is paused while
the CLI loads, and what loading created is frozen (`gc.freeze`: left out of every later collection); the
command itself runs with the collector working as usual.

This module imports nothing else first, so the pause covers click's import too.
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    try:
        from logship.cli import main as run_command

        gc.freeze()
    finally:
        gc.enable()
    run_command()
