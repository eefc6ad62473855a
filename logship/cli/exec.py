"""`logship exec` and `logship top`: run a command in a running container, and list its processes.

`exec` follows the docker CLI: create the exec, start it attached (or `-d`), copy the streams (a real
terminal in raw mode with `-it`, its size passed on as it changes), then exit with the command's exit code,
126 or 127 when it could not be started, and 1 when the daemon refused (for example a stopped container).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from logship.cli import attach as attaching
from logship.cli.common import get_client, print_table
from logship.cli.containers import parse_env
from logship.client import APIError, path_quote

_EXEC_CONTEXT = {"ignore_unknown_options": False, "allow_interspersed_args": False}


@click.command("exec", context_settings=_EXEC_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and send ours to the command.")
@click.option("-t", "--tty", is_flag=True, help="Give the command a terminal.")
@click.option("-e", "--env", "env", multiple=True, help="Set an environment variable (KEY=value, or KEY).")
@click.option("-w", "--workdir", help="Working directory inside the container (absolute).")
@click.option("-u", "--user", help="User: name|uid[:group|gid], as in the container's /etc/passwd.")
@click.option("--privileged", is_flag=True, help="Give the command every capability.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True)
def exec_(
    detach: bool,
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    workdir: str | None,
    user: str | None,
    privileged: bool,
    container: str,
    command: tuple[str, ...],
) -> None:
    """Run a command in a running container: CONTAINER COMMAND [ARG...]."""
    client = get_client()
    body: dict[str, Any] = {
        "AttachStdin": interactive and not detach,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "Tty": tty,
        "Cmd": list(command),
        "Env": parse_env(env),
        "WorkingDir": workdir or "",
        "User": user or "",
        "Privileged": privileged,
    }
    try:
        exec_id = client.json("POST", f"/containers/{path_quote(container)}/exec", body=body)["Id"]
        if detach:
            client.json("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": tty})
            return
        sock, first = client.hijack(f"/exec/{exec_id}/start", {}, {"Detach": False, "Tty": tty})
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    if tty:
        resize = f"/exec/{exec_id}/resize"
        attaching.send_resize(client, resize)
        attaching.on_resize(lambda: attaching.send_resize(client, resize))
    with attaching.raw_terminal(tty and interactive):
        attaching.stream(sock, first, tty, send_stdin=interactive)
    try:
        code = client.json("GET", f"/exec/{exec_id}/json")["ExitCode"]
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    sys.exit(125 if code is None else int(code))


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_options", nargs=-1, type=click.UNPROCESSED)
def top(container: str, ps_options: tuple[str, ...]) -> None:
    """The processes of a running container: CONTAINER [ps OPTIONS] (default -ef)."""
    client = get_client()
    query = {"ps_args": " ".join(ps_options)} if ps_options else {}
    try:
        listing = client.json("GET", f"/containers/{path_quote(container)}/top", query)
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    print_table(listing["Titles"], listing["Processes"])


COMMANDS = [exec_, top]
