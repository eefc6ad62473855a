"""`logship cp`: copy files between a container and this machine, with docker cp's rules.

    logship cp CONTAINER:SRC DEST       DEST "-" writes the tar to stdout
    logship cp SRC CONTAINER:DEST       SRC "-" reads a tar from stdin

What is copied takes the name of DEST when DEST does not exist, and lands inside DEST when it is a
directory; "SRC/." copies a directory's content rather than the directory. Tars stream both ways (a file
of any size is never held in memory): out of the container, what arrives is extracted here with the same
safe rules the daemon applies to what comes in (no absolute paths, no "..", no writing through links),
owned by whoever runs the command.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from logship.cli.common import get_client
from logship.client import APIError, Client, path_quote

CHUNK = 1 << 20
STAT_HEADER = "X-Docker-Container-Path-Stat"
MODE_DIR = 1 << 31


def _split(argument: str) -> tuple[str | None, str]:
    """("container", "path") for CONTAINER:PATH, (None, path) for a local path (one with a "/" before any
    ":" is local, as for docker)."""
    if argument.startswith(("/", ".")) or ":" not in argument:
        return None, argument
    container, _, path = argument.partition(":")
    return container, path


def _stat(client: Client, container: str, path: str) -> dict[str, Any] | None:
    try:
        response = client.request("HEAD", f"/containers/{path_quote(container)}/archive", {"path": path})
    except APIError as err:
        if err.status == 404:
            return None
        raise
    response.read()
    header = response.getheader(STAT_HEADER)
    return json.loads(base64.b64decode(header)) if header else None


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-a", "--archive", is_flag=True, help="Keep the files' uid and gid (copying in).")
@click.option("-L", "--follow-link", is_flag=True, help="Follow a symbolic link given as SRC.")
@click.argument("source")
@click.argument("destination")
def cp(archive: bool, follow_link: bool, source: str, destination: str) -> None:
    """Copy files between a container and the local filesystem."""
    client = get_client()
    source_container, source_path = _split(source)
    dest_container, dest_path = _split(destination)
    try:
        if source_container and dest_container:
            raise click.UsageError("copying between containers is not supported (one side must be local)")
        if source_container:
            _copy_out(client, source_container, source_path, dest_path, follow_link)
        elif dest_container:
            _copy_in(client, source_path, dest_container, dest_path, archive, follow_link)
        else:
            raise click.UsageError("must specify at least one container source (CONTAINER:PATH)")
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)
    except CopyError as err:
        click.echo(f"logship cp: {err}", err=True)
        sys.exit(1)


class CopyError(Exception):
    pass


# ---- out of the container -----------------------------------------------------------------------------


def _copy_out(client: Client, container: str, path: str, dest: str, follow_link: bool) -> None:
    if follow_link:
        info = _stat(client, container, path)
        if info and info.get("linkTarget"):
            path = info["linkTarget"]
    response = client.request("GET", f"/containers/{path_quote(container)}/archive", {"path": path})
    if dest == "-":
        while chunk := response.read1(CHUNK):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    header = response.getheader(STAT_HEADER)
    info = json.loads(base64.b64decode(header)) if header else {}
    source_is_dir = bool(info.get("mode", 0) & MODE_DIR)
    target = Path(dest)
    contents_only = path.endswith("/.")
    from logship.runtime.tarsafe import apply_archive  # only here: cp is the CLI's one extractor

    owner = (os.getuid(), os.getgid())
    if target.is_dir() and not contents_only:
        apply_archive(response, target, owner)  # lands in DEST under its own name
        return
    if target.exists() and source_is_dir and not target.is_dir():
        raise CopyError(f"cannot copy a directory to a file: {dest}")
    if dest.endswith("/") and not target.exists():
        raise CopyError(f"destination directory {dest} does not exist")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CopyError(f"destination directory {parent} does not exist")
    if contents_only:
        target.mkdir(exist_ok=True)
        apply_archive(response, target, owner)
        return
    staging = Path(tempfile.mkdtemp(prefix=".logship-cp-", dir=parent))
    try:
        apply_archive(response, staging, owner)
        entries = os.listdir(staging)
        if len(entries) != 1:
            raise CopyError(f"the container sent {len(entries)} top entries instead of one")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staging / entries[0], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---- into the container -------------------------------------------------------------------------------


def _copy_in(client: Client, source: str, container: str, dest: str, keep_owner: bool, follow_link: bool) -> None:
    query = {"copyUIDGID": "1" if keep_owner else None, "noOverwriteDirNonDir": "1"}
    url = f"/containers/{path_quote(container)}/archive"
    if source == "-":
        client.request("PUT", url, {**query, "path": dest}, body=_chunks(sys.stdin.buffer)).read()
        return
    local = Path(source)
    if not os.path.lexists(local):
        raise CopyError(f"could not find the file {source} locally")
    if follow_link:
        local = local.resolve()
    source_is_dir = local.is_dir() and not local.is_symlink()
    info = _stat(client, container, dest)
    if info is not None and info["mode"] & MODE_DIR:
        extract_into, name = dest, (None if source.endswith("/.") else local.name)
    else:
        if info is not None and source_is_dir:
            raise CopyError(f"cannot copy a directory to a file: {container}:{dest}")
        if dest.endswith("/"):
            raise CopyError(f"destination directory {container}:{dest} does not exist")
        extract_into, name = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(dest.rstrip("/"))
    client.request("PUT", url, {**query, "path": extract_into}, body=_tar(local, name)).read()


def _tar(local: Path, dest_name: str | None) -> Iterator[bytes]:
    """A tar of `local` named `dest_name` (None: its content, under "."), made by a thread into a pipe and
    read a chunk at a time, so the upload streams."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            out = os.fdopen(write_fd, "wb")
            with out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(str(local), arcname=dest_name or ".", recursive=True)
        except BaseException as err:  # reported by the reader
            failure.append(err)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as pipe:
        while chunk := pipe.read(CHUNK):
            yield chunk
    thread.join()
    if failure:
        raise CopyError(f"reading {local} failed: {failure[0]}")


def _chunks(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


COMMANDS = [cp]
