"""Image commands: import, images, rmi."""

from __future__ import annotations

import io
import os
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from logship.cli.common import ago, get_client, print_table
from logship.client import APIError, path_quote
from logship.humanize import human_size

CHUNK = 1 << 20


def _file_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _directory_as_tar(path: Path) -> Iterator[bytes]:
    """Stream a directory as a tar without a temporary file: a thread writes the tar into a pipe."""
    read_fd, write_fd = os.pipe()

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as tar:
            for entry in sorted(path.iterdir()):
                tar.add(entry, arcname=entry.name)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with os.fdopen(read_fd, "rb") as source:
        yield from _file_chunks(source)
    producer.join()


@click.command(name="import")
@click.option(
    "-c", "--change", multiple=True, help="Apply a Dockerfile instruction (ENV, CMD, ENTRYPOINT, WORKDIR, LABEL)."
)
@click.option("-m", "--message", default="", help="Set a commit message for the imported image.")
@click.argument("source")
@click.argument("reference", required=False)
def import_(change: tuple[str, ...], message: str, source: str, reference: str | None) -> None:
    """Import a rootfs tarball (docker export format; gzip/bzip2/xz ok), a directory, or - for stdin."""
    query: dict[str, object] = {"fromSrc": "-", "message": message or None, "changes": list(change) or None}
    if reference:
        repo, _, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] else (reference, "", "")
        query["repo"], query["tag"] = repo, tag or None
    body: Iterator[bytes]
    if source == "-":
        body = _file_chunks(sys.stdin.buffer)
    else:
        path = Path(source)
        if path.is_dir():
            body = _directory_as_tar(path)
        elif path.is_file():
            body = _file_chunks(path.open("rb"))
        else:
            raise click.BadParameter(f"{source}: no such file or directory", param_hint="SOURCE")
    response = get_client().request("POST", "/images/create", query, body, {"Content-Type": "application/x-tar"})
    import json

    for line in io.TextIOWrapper(response, encoding="utf-8"):
        if line.strip():
            status = json.loads(line).get("status", "")
            if status.startswith("sha256:"):
                click.echo(status)


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
def images(quiet: bool, no_trunc: bool) -> None:
    """List images."""
    listed = get_client().json("GET", "/images/json")
    rows = []
    for image in listed:
        short = image["Id"] if no_trunc else image["Id"].removeprefix("sha256:")[:12]
        if quiet:
            click.echo(short)
            continue
        for repo_tag in image["RepoTags"] or ["<none>:<none>"]:
            repo, _, tag = repo_tag.rpartition(":")
            rows.append([repo, tag, short, ago(image["Created"]), human_size(image["Size"])])
    if not quiet:
        print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.argument("image_refs", nargs=-1, required=True)
def rmi(force: bool, image_refs: tuple[str, ...]) -> None:
    """Remove one or more images."""
    client = get_client()
    failed = False
    for ref in image_refs:
        try:
            for item in client.json("DELETE", f"/images/{path_quote(ref)}", {"force": "1" if force else None}):
                for key, value in item.items():
                    click.echo(f"{key}: {value}")
        except APIError as err:
            click.echo(f"Error response from daemon: {err}", err=True)
            failed = True
    if failed:
        sys.exit(1)


COMMANDS = [import_, images, rmi]
