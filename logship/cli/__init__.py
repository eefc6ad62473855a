"""The `logship` command line: thin click commands over the daemon's API (docker's habits, logship's daemon).

Commands live in small modules by topic; each talks to the daemon through `logship.client`. A command's
module is imported only when that command runs (or `--help` lists them all), so `logship logs` does not
pay for the imports of `run`, `load` or `daemon`: the CLI's start-up is part of every command's latency.
"""

from __future__ import annotations

import importlib
import sys

import click

from logship import __version__
from logship.cli.common import CliState
from logship.client import resolve_tls
from logship.console import run_reporting_errors

# Every command, and the module in logship/cli/ that defines it (in that module's COMMANDS); a command
# missing here does not exist for the CLI (tests/test_cli_startup.py checks the table against the modules).
COMMAND_MODULES = {
    "container": "disk",
    "cp": "copy",
    "create": "containers",
    "inspect": "containers",
    "events": "events",
    "exec": "exec",
    "kill": "containers",
    "ps": "containers",
    "rename": "containers",
    "restart": "containers",
    "rm": "containers",
    "run": "containers",
    "start": "containers",
    "stop": "containers",
    "top": "exec",
    "wait": "containers",
    "image": "disk",
    "images": "images",
    "import": "images",
    "load": "images",
    "rmi": "images",
    "tag": "images",
    "login": "registry",
    "logout": "registry",
    "pull": "registry",
    "push": "registry",
    "logs": "logs",
    "stats": "stats",
    "system": "disk",
    "buffer": "buffers",
    "daemon": "system",
    "info": "system",
    "version": "system",
    "volume": "volumes",
    "network": "networks",
    "port": "networks",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module when the command is looked up, not at start-up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        commands: list[click.Command] = importlib.import_module(f"logship.cli.{module_name}").COMMANDS
        return next(command for command in commands if command.name == cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["--help"], "max_content_width": 110})
@click.option(
    "-H",
    "--host",
    metavar="URL",
    help="Daemon to connect to: unix:///PATH or tcp://HOST:PORT (default: $LOGSHIP_HOST, else "
    "/run/logship.sock as root).",
)
@click.option("--tls", is_flag=True, help="Use TLS with a tcp:// daemon, without checking its certificate.")
@click.option(
    "--tlsverify",
    is_flag=True,
    help="Use TLS and check the daemon's certificate against --tlscacert (default: $LOGSHIP_TLS_VERIFY set).",
)
@click.option("--tlscacert", metavar="PATH", help="CA the daemon's certificate must be signed by [CERTS/ca.pem].")
@click.option("--tlscert", metavar="PATH", help="Our client certificate [CERTS/cert.pem].")
@click.option("--tlskey", metavar="PATH", help="Our client certificate's key [CERTS/key.pem].")
# The version `logship version` prints too; asking the installed metadata for it would import email & co.
@click.version_option(version=__version__, prog_name="logship")
@click.pass_context
def cli(
    ctx: click.Context,
    host: str | None,
    tls: bool,
    tlsverify: bool,
    tlscacert: str | None,
    tlscert: str | None,
    tlskey: str | None,
) -> None:
    """Run containers and ship their logs, the way Docker's logging works.

    CERTS is $LOGSHIP_CERT_PATH, else ~/.logship. TLS options apply to tcp:// daemons only.
    """
    ctx.obj = CliState(host, resolve_tls(tls, tlsverify, tlscacert, tlscert, tlskey))


def main() -> None:
    run_reporting_errors(run_click)


def run_click() -> None:
    """The CLI as click reads it, click's errors reported as click does."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
