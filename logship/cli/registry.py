"""Registry commands: pull, push, login, logout, as the docker CLI has them.

Progress is the daemon's stream of Docker JSON messages. On a terminal it is drawn as docker draws it:
a line per layer, rewritten in place with its bar (`a1b2c3d4e5f6: Downloading [==>   ] 1.2MB/10MB`); to
a pipe or file, each layer's changes of status only, one per line, without bars.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterable
from typing import IO, Any, NoReturn

import click

from logship.cli import credentials
from logship.cli.common import get_client
from logship.client import APIError, Client, path_quote


def registry_of(name: str) -> str:
    """The registry part of an image name, as reference parsing decides it ("docker.io" by default)."""
    first, slash, _ = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def auth_header(name: str) -> dict[str, str]:
    try:
        return {"X-Registry-Auth": credentials.registry_auth_header(registry_of(name))}
    except credentials.CredentialsError as err:
        _fail(str(err))


def split_tag(name: str) -> tuple[str, str]:
    """("busybox", "1.36") of "busybox:1.36", ("app@sha256:..", "") of a digest reference."""
    if "@" in name:
        return name, ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
        return repository, tag
    return name, ""


def pull_image(client: Client, name: str, platform: str | None, quiet: bool, out: IO[str]) -> None:
    """Pull, drawing the daemon's progress on `out`; APIError when the daemon refuses at once, SystemExit(1)
    with the message when the pull fails midway."""
    repository, tag = split_tag(name)
    if "@" in repository:
        repository, _, tag = repository.partition("@")
    query = {"fromImage": repository, "tag": tag or ("latest" if "@" not in name else None), "platform": platform}
    response = client.request("POST", "/images/create", query, b"", auth_header(name))
    error = show_progress(response, out, quiet)
    if error is not None:
        _fail(error)


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--platform", help="Set platform if server is multi-platform capable (os/arch[/variant]).")
@click.option("-a", "--all-tags", is_flag=True, hidden=True)
@click.argument("name")
def pull(quiet: bool, platform: str | None, all_tags: bool, name: str) -> None:
    """Download an image from a registry."""
    if all_tags:
        _fail("--all-tags is not supported by logship: pull each tag by name")
    client = get_client()
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1] and not quiet:
        click.echo("Using default tag: latest")
    try:
        pull_image(client, name, platform, quiet, sys.stdout)
    except APIError as err:
        _fail(f"Error response from daemon: {err}")
    if quiet:
        click.echo(name if "@" in name or ":" in name.rsplit("/", 1)[-1] else f"{name}:latest")


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of the repository.")
@click.argument("name")
def push(quiet: bool, all_tags: bool, name: str) -> None:
    """Upload an image to a registry."""
    repository, tag = split_tag(name)
    if all_tags and tag:
        _fail("tag can't be used with --all-tags/-a")
    if not tag and not all_tags:
        tag = "latest"
        if not quiet:
            click.echo("Using default tag: latest")
    client = get_client()
    try:
        response = client.request(
            "POST", f"/images/{path_quote(repository)}/push", {"tag": tag or None}, b"", auth_header(name)
        )
    except APIError as err:
        _fail(f"Error response from daemon: {err}")
    error = show_progress(response, sys.stdout, quiet)
    if error is not None:
        _fail(error)


@click.command()
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.argument("server", required=False)
def login(username: str | None, password: str | None, password_stdin: bool, server: str | None) -> None:
    """Log in to a registry (Docker Hub when no server is given)."""
    if password and password_stdin:
        _fail("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            _fail("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if not username:
        username = (
            input("Username: ")
            if sys.stdin.isatty()
            else _fail("Cannot perform an interactive login from a non TTY device")
        )
    if not password:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else _fail("Error: Password Required")
    address = server or credentials.DOCKER_HUB_KEY
    try:
        get_client().json("POST", "/auth", body={"username": username, "password": password, "serveraddress": address})
    except APIError as err:
        _fail(f"Error response from daemon: {err}")
    try:
        path = credentials.store(address, username, password)
    except credentials.CredentialsError as err:
        _fail(str(err))
    click.echo(f"WARNING! Your password will be stored unencrypted in {path}.", err=True)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry (forget its stored credentials)."""
    key = credentials.registry_key(server or "")
    try:
        removed = credentials.remove(server or "")
    except credentials.CredentialsError as err:
        _fail(str(err))
    if removed:
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")


# ---------------------------------------------------------------------------------------------------------
# Progress, as the docker CLI shows it (jsonmessage.DisplayJSONMessagesStream).
# ---------------------------------------------------------------------------------------------------------


def show_progress(lines: Iterable[bytes], out: IO[str], quiet: bool) -> str | None:
    """Show a stream of Docker JSON messages; the error it ended with, if any."""
    display = TerminalProgress(out) if out.isatty() and not quiet else PlainProgress(out, quiet)
    for line in lines:
        if not line.strip():
            continue
        message = json.loads(line)
        if "errorDetail" in message or "error" in message:
            display.close()
            return str((message.get("errorDetail") or {}).get("message") or message.get("error"))
        display.show(message)
    display.close()
    return None


class PlainProgress:
    """One line per change of status (no bars), as docker prints to a pipe."""

    def __init__(self, out: IO[str], quiet: bool) -> None:
        self._out = out
        self._quiet = quiet
        self._last: dict[str, str] = {}

    def show(self, message: dict[str, Any]) -> None:
        if self._quiet or "status" not in message:
            return
        status, layer = message["status"], message.get("id")
        if layer:
            if self._last.get(layer) == status:
                return  # "Downloading" again, with more bytes: no bar to draw here
            self._last[layer] = status
            self._out.write(f"{layer}: {status}\n")
        else:
            self._out.write(f"{status}\n")
        self._out.flush()

    def close(self) -> None:
        pass


class TerminalProgress:
    """A line per layer, redrawn in place with ANSI cursor moves, as docker does on a terminal."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lines: dict[str, int] = {}

    def show(self, message: dict[str, Any]) -> None:
        if "status" not in message:
            return
        layer = message.get("id")
        text = message["status"] if not layer else f"{layer}: {message['status']}"
        if message.get("progress"):
            text += " " + message["progress"]
        if not layer or layer not in self._lines:
            if layer:
                self._lines[layer] = len(self._lines)
            else:
                self._lines = {}  # a plain line ends the block of layer lines above it
            self._out.write(text + "\n")
        else:
            up = len(self._lines) - self._lines[layer]
            self._out.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
        self._out.flush()

    def close(self) -> None:
        self._out.flush()


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


COMMANDS = [pull, push, login, logout]
