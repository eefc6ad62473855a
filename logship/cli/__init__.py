"""The `logship` command line: thin click commands over the daemon's API (docker's habits, logship's daemon).

Commands live in small modules by topic; each talks to the daemon through `logship.client`.
"""

from __future__ import annotations

import sys

import click

from logship.cli import containers, images, logs, stats, system
from logship.cli.common import CliState
from logship.client import APIError, DaemonUnreachable


@click.group(context_settings={"help_option_names": ["--help"], "max_content_width": 110})
@click.option(
    "-H",
    "--host",
    metavar="unix:///PATH",
    help="Daemon socket to connect to (default: $LOGSHIP_HOST or /run/logship.sock as root).",
)
@click.version_option(package_name="logship", prog_name="logship")
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """Run containers and ship their logs, the way Docker's logging works."""
    ctx.obj = CliState(host)


for module in (containers, logs, images, stats, system):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except APIError as err:
        print(f"Error response from daemon: {err}", file=sys.stderr)
        sys.exit(1)
    except DaemonUnreachable as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:
        sys.stderr.close()  # `logship logs ... | head`: the reader left, nothing to report
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
