"""`/images/...`: import (`POST /images/create?fromSrc=-`), load (`POST /images/load`), list, inspect, tag,
remove. `POST /images/create?fromImage=` is a pull, served by `distribution` with push and login.

Uploads (import, load) are spooled to a temporary file under `<data-root>/tmp` as they arrive, never held
in memory; the image store then reads that file in a worker thread.

`load` answers as dockerd does: once the archive is known to be loadable, a 200 `application/json` stream
of Docker's JSON messages, one per line ending "\r\n" (`{"stream":"Loaded image: busybox:latest\n"}`,
`Loading layer` progress unless quiet, and a failure as `{"errorDetail":{"message":...},"error":...}`,
which the docker CLI prints as is). An archive refused before the stream starts (not a tar, no manifest,
a bad manifest, a digest mismatch in a config) is a plain 400 `{"message": ...}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from aiohttp import web

from logship.api.app import Backend, add_route, backend, json_response, query_bool
from logship.daemon import inspectshape
from logship.errors import InvalidParameter, LogshipError
from logship.humanize import human_size
from logship.runtime.imagearchive import ArchivedImage, ImageArchive, open_archive
from logship.runtime.imageload import archive_images, load_images
from logship.runtime.images import Image

CHUNK = 1 << 20
# Docker ends each JSON message of a progress stream with CRLF (streamformatter's streamNewline).
STREAM_NEWLINE = b"\r\n"
LOADING_LAYER = "Loading layer"
# Go's encoding/json escapes these inside strings; Python's json leaves them as they are.
_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Docker draws a 50-character bar in the `progress` text of its progress messages.
_BAR_WIDTH = 50

log = logging.getLogger("logship.api")


ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: what dockerd reports for "never"


def image_summary(image: Image) -> dict[str, Any]:
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": image.repo_tags,
        "RepoDigests": image.repo_digests,
        "Created": _epoch(image.created),
        "Size": image.size,
        "SharedSize": -1,
        "VirtualSize": image.size,
        "Labels": (image.config.get("config") or {}).get("Labels"),
        "Containers": -1,
    }


def _epoch(created: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(created.replace("Z", "+00:00")[:26] + "+00:00").timestamp())
    except ValueError:
        return 0


async def create(request: web.Request) -> web.StreamResponse:
    if request.query.get("fromImage"):
        from logship.api import distribution  # it imports this module's message helpers

        return await distribution.pull(request)
    if request.query.get("fromSrc") != "-":
        raise InvalidParameter(
            "creating an image needs fromImage= (pull from a registry) or fromSrc=- (import the request body)"
        )
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    reference = f"{repo}:{tag}" if repo and tag else (repo or None)
    changes = request.query.getall("changes", [])
    message = request.query.get("message", "")
    store = backend(request).images
    with await _spool_body(request, _scratch_dir(backend(request))) as body:
        image = await asyncio.to_thread(store.import_tarball, body, reference, changes, message)
    return web.Response(body=orjson.dumps({"status": image.id}) + b"\n", content_type="application/json")


async def load(request: web.Request) -> web.StreamResponse:
    quiet = query_bool(request, "quiet", default=True)  # dockerd's default when the parameter is absent
    backend_ = backend(request)
    archive, images = await _read_archive(request, backend_)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        await response.prepare(request)
    except BaseException:
        archive.close()
        raise
    await _load_streaming(response, backend_, archive, images, quiet)
    return response


async def _read_archive(request: web.Request, backend_: Backend) -> tuple[ImageArchive, list[ArchivedImage]]:
    """Spool the upload and check what it holds; a bad archive raises here, before any answer is sent."""
    scratch = _scratch_dir(backend_)
    upload = await _spool_body(request, scratch)
    archive = await asyncio.to_thread(open_archive, upload, scratch)
    try:
        return archive, await asyncio.to_thread(archive_images, archive)
    except BaseException:
        archive.close()
        raise


async def _load_streaming(
    response: web.StreamResponse, backend_: Backend, archive: ImageArchive, images: list[ArchivedImage], quiet: bool
) -> None:
    """Load in a worker thread, writing its report to the response as it comes; a failure becomes the
    last message. The worker owns the archive (and the upload in it) and runs to the end even if the
    client leaves, so the file is never closed under it."""
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def send(line: bytes) -> None:  # from the worker thread
        loop.call_soon_threadsafe(lines.put_nowait, line)

    def say(text: str) -> None:
        send(stream_message(text))

    def progress(layer_id: str, current: int, total: int) -> None:
        send(progress_message(layer_id, current, total))

    def run() -> None:
        with archive:
            load_images(backend_.images, archive, images, say, None if quiet else progress)

    async def work() -> None:
        try:
            await asyncio.to_thread(run)
        except LogshipError as err:
            lines.put_nowait(error_message(str(err)))
        except Exception as err:
            log.exception("loading images failed")
            where = backend_.settings.daemon_log_path
            lines.put_nowait(
                error_message(f"internal error in the logship daemon ({type(err).__name__}: {err}); see {where}")
            )
        finally:
            lines.put_nowait(None)

    worker = asyncio.create_task(work())
    client_gone = False
    while (line := await lines.get()) is not None:
        if client_gone:
            continue
        try:
            await response.write(line)
        except (ConnectionResetError, BrokenPipeError):
            client_gone = True
    await worker
    if not client_gone:
        await response.write_eof()


def _scratch_dir(backend_: Backend) -> Path:
    directory = backend_.settings.data_root / "tmp"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def _spool_body(request: web.Request, directory: Path) -> BinaryIO:
    """The request body in an unnamed temporary file under `directory`, rewound; the caller closes it."""
    body = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - handed to the caller
    try:
        while chunk := await request.content.read(CHUNK):
            await asyncio.to_thread(body.write, chunk)
        body.flush()
        body.seek(0)
        return body
    except BaseException:
        body.close()
        raise


# -- Docker's JSON messages (jsonmessage.JSONMessage, as dockerd's streamformatter writes them) ----------------


def stream_message(text: str) -> bytes:
    return json_message({"stream": text})


def error_message(message: str) -> bytes:
    return json_message({"errorDetail": {"message": message}, "error": message})


def progress_message(layer_id: str, current: int, total: int) -> bytes:
    detail = {key: value for key, value in (("current", current), ("total", total)) if value}
    return json_message(
        {"status": LOADING_LAYER, "progressDetail": detail, "progress": progress_text(current, total), "id": layer_id}
    )


def progress_text(current: int, total: int) -> str:
    """Docker's JSONProgress.String() as the daemon renders it (no terminal: a 200-column width, so
    with the bar): `[=====>      ]  1.049MB/2.097MB`."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, _BAR_WIDTH)
    bar = "[" + "=" * filled + ">" + " " * (_BAR_WIDTH - filled) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def json_message(message: dict[str, Any]) -> bytes:
    """Compact JSON with Go's escaping, invalid text replaced by U+FFFD as Go does, then CRLF."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    text = _LONE_SURROGATE_RE.sub("\ufffd", text)
    for char, escape in _GO_ESCAPES:
        text = text.replace(char, escape)
    return text.encode() + STREAM_NEWLINE


async def list_images(request: web.Request) -> web.Response:
    images = await asyncio.to_thread(backend(request).images.list)
    return json_response([image_summary(i) for i in images])


async def inspect(request: web.Request) -> web.Response:
    image = await asyncio.to_thread(backend(request).images.get, request.match_info["name"])
    config = image.config
    image_config = inspectshape.image_config(config.get("config") or {})
    rootfs = config.get("rootfs") or {}
    # Every key dockerd 20.10 sends (API 1.41; newer dockerd leaves Container, ContainerConfig and
    # VirtualSize out, which newer clients ignore), zero-valued where logship has nothing to say.
    return json_response(
        {
            "Id": image.id,
            "RepoTags": image.repo_tags,
            "RepoDigests": image.repo_digests,
            "Parent": "",
            "Comment": (config.get("history") or [{}])[-1].get("comment", ""),
            "Created": image.created or ZERO_TIME,
            "Container": config.get("container", ""),
            "ContainerConfig": inspectshape.image_config(config.get("container_config") or {}),
            "DockerVersion": config.get("docker_version", ""),
            "Author": config.get("author", ""),
            "Config": image_config,
            "Architecture": config.get("architecture", ""),
            "Os": config.get("os", "linux"),
            "Size": image.size,
            "VirtualSize": image.size,
            "GraphDriver": {"Data": {"MergedDir": str(image.rootfs)}, "Name": "overlay"},
            # The config's rootfs in dockerd's spelling
            "RootFS": {"Type": rootfs.get("type", "layers"), "Layers": list(rootfs.get("diff_ids") or [])},
            "Metadata": {"LastTagTime": ZERO_TIME},  # the docker CLI parses it as a time
        }
    )


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo")
    if not repo:
        raise InvalidParameter("tagging needs repo= (and optionally tag=)")
    reference = f"{repo}:{request.query['tag']}" if request.query.get("tag") else repo
    store = backend(request).images
    image = await asyncio.to_thread(store.get, request.match_info["name"])
    await asyncio.to_thread(store.tag, image.id, reference)
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    b = backend(request)
    result = await asyncio.to_thread(
        b.images.remove, request.match_info["name"], query_bool(request, "force"), b.containers.containers_using_image
    )
    return json_response(result)


def register(app: web.Application) -> None:
    add_route(app, "POST", "/images/create", create)
    add_route(app, "POST", "/images/load", load)
    add_route(app, "GET", "/images/json", list_images)
    add_route(app, "GET", "/images/{name:.+}/json", inspect)
    add_route(app, "POST", "/images/{name:.+}/tag", tag)
    add_route(app, "DELETE", "/images/{name:.+}", remove)
