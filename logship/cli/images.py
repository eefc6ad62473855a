"""Image commands: import, load, images, rmi, tag."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NoReturn

import click

from logship.cli.common import ago, get_client, print_table
from logship.client import APIError, path_quote
from logship.http1 import Response
from logship.humanize import human_size

CHUNK = 1 << 20
UPLOAD_BAR_WIDTH = 40


def _file_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _directory_as_tar(path: Path) -> Iterator[bytes]:
    """Stream a directory as a tar without a temporary file: a thread writes the tar into a pipe.

    An ordinary user's own files are recorded as root's (0:0): that is what they are to a rootless
    daemon, whose user namespace maps the user to 0, so an imported tree belongs to root in its containers."""
    read_fd, write_fd = os.pipe()
    uid, gid = os.getuid(), os.getgid()

    def as_seen_by_a_rootless_daemon(member: tarfile.TarInfo) -> tarfile.TarInfo:
        if member.uid == uid:
            member.uid, member.uname = 0, "root"
        if member.gid == gid:
            member.gid, member.gname = 0, "root"
        return member

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as tar:
            for entry in sorted(path.iterdir()):
                tar.add(entry, arcname=entry.name, filter=as_seen_by_a_rootless_daemon if uid else None)

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
@click.option("-i", "--input", "source", metavar="FILE", help="Read from a tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output (the upload progress bar).")
def load(source: str | None, quiet: bool) -> None:
    """Load images from a `docker save` tarball or an OCI image layout in a tar (gzip, bzip2, xz ok)."""
    if source is None:
        if sys.stdin.isatty():  # as docker: waiting for a terminal to type a tarball helps nobody
            _fail("requested load from stdin, but stdin is empty")
        stream: IO[bytes] = sys.stdin.buffer
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below, after the upload
        except OSError as err:
            _fail(f"open {source}: {(err.strerror or str(err)).lower()}")
    with stream:
        size = _regular_file_size(stream)
        bar = UploadBar(size) if size and not quiet and sys.stderr.isatty() else None
        body = _file_chunks(stream) if bar is None else bar.track(_file_chunks(stream))
        try:
            # Always quiet for the daemon: the bar here shows the upload, which is most of a long load.
            response = get_client().request(
                "POST", "/images/load", {"quiet": "1"}, body, {"Content-Type": "application/x-tar"}
            )
        finally:
            if bar is not None:
                bar.close()
    error = _print_load_messages(response)
    if error is not None:
        _fail(error)


def _fail(message: str) -> NoReturn:
    """Print as the docker CLI prints load errors (the message alone) and exit 1."""
    click.echo(message, err=True)
    sys.exit(1)


def _regular_file_size(stream: IO[bytes]) -> int | None:
    """The size of what `stream` will give, when it is a regular file (not a pipe) and so known."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _print_load_messages(response: Response) -> str | None:
    """Print the daemon's `Loaded image: ...` lines as they come; the error it ended with, if any."""
    for line in response:
        if not line.strip():
            continue
        message = json.loads(line)
        if "errorDetail" in message or "error" in message:
            return str((message.get("errorDetail") or {}).get("message") or message.get("error"))
        if "stream" in message:
            sys.stdout.write(message["stream"])
            sys.stdout.flush()
    return None


class UploadBar:
    """`Loading [=========>          ]  12.3MB/45.6MB` on stderr, redrawn in place (carriage return) as bytes go
    out, at each whole percent so a big upload does not flood the terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self._drawn_percent = -1

    def track(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk
            self.sent += len(chunk)
            self._draw()

    def close(self) -> None:
        if self._drawn_percent >= 0:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def _draw(self) -> None:
        percent = min(self.sent * 100 // self.total, 100)
        if percent == self._drawn_percent:
            return
        self._drawn_percent = percent
        sys.stderr.write("\r" + render_upload_bar(self.sent, self.total))
        sys.stderr.flush()


def render_upload_bar(sent: int, total: int) -> str:
    filled = min(sent * UPLOAD_BAR_WIDTH // total, UPLOAD_BAR_WIDTH) if total > 0 else 0
    arrow = ">" if filled < UPLOAD_BAR_WIDTH else ""
    bar = ("=" * filled + arrow).ljust(UPLOAD_BAR_WIDTH)
    return f"Loading [{bar}] {human_size(sent):>8}/{human_size(total)}"


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


@click.command()
@click.argument("source")
@click.argument("target")
def tag(source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE (name[:tag], ID or ID prefix)."""
    last = target.rsplit("/", 1)[-1]
    repo, tag_name = (target.rpartition(":")[0], target.rpartition(":")[2]) if ":" in last else (target, "latest")
    try:
        get_client().request("POST", f"/images/{path_quote(source)}/tag", {"repo": repo, "tag": tag_name}).read()
    except APIError as err:
        _fail(f"Error response from daemon: {err}")


COMMANDS = [import_, load, images, rmi, tag]
