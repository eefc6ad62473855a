"""`logship logs` for click: the command built from logship.logscommand's OPTIONS, doing that module's work.

A plain `logship logs ...` does not come here (logship.console runs it without click); this command
answers everything else: --help, mistakes, the `logship` group's options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from logship.cli.common import get_client
from logship.logscommand import OPTIONS, InvalidTime, LogsCommand, Option
from logship.logscommand import copy_multiplexed as copy_multiplexed  # where tests/test_fast_read.py finds it

F = TypeVar("F", bound=Callable[..., Any])


def _click_option(option: Option) -> Callable[[F], F]:
    if option.takes_value:
        return click.option(
            *option.flags, option.name, default=option.default, show_default=option.show_default, help=option.help
        )
    return click.option(*option.flags, option.name, is_flag=True, help=option.help)


def _with_options(function: F) -> F:
    for option in reversed(OPTIONS):  # decorators apply from the last: the options keep their order in --help
        function = _click_option(option)(function)
    return function


@click.command()
@_with_options
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True)
def logs(containers: tuple[str, ...], **options: Any) -> None:
    """Fetch the logs of a container, or of several merged by time, each line prefixed with its name."""
    try:
        command = LogsCommand(containers, **options)
    except InvalidTime as err:
        raise click.UsageError(str(err)) from None
    command.run(get_client())


COMMANDS = [logs]
