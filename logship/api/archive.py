"""`/containers/{id}/archive`: `docker cp` both ways, as dockerd serves it.

`HEAD` and `GET` answer the path's stat (name, size, Go file mode, mtime, link target) base64-encoded in
the `X-Docker-Container-Path-Stat` header; `GET` streams the tar of the path, its top entry named as the
path's last component. `PUT` extracts a tar (plain or compressed) into an existing directory, with the
rules `import` and `load` apply (`logship.runtime.tarsafe`), everything owned by the container's root
unless `copyUIDGID=1`, and `noOverwriteDirNonDir=1` keeping a directory from replacing a file or the other
way round. Paths, and the links on them, resolve inside the container's root (see
`logship.runtime.archiveworker`). Nothing is held in memory: the tar streams through.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from logship.api.app import add_route, backend, query_bool
from logship.daemon.containers import ContainerManager
from logship.daemon.copying import container_root
from logship.daemon.handle import Container
from logship.errors import InvalidParameter
from logship.runtime import archive

STAT_HEADER = "X-Docker-Container-Path-Stat"
CHUNK = 1 << 20


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("the archive API needs path=<path in the container>")
    if "\0" in path:
        raise InvalidParameter("invalid path: it holds a NUL byte")
    return path


def _stat_header(info: dict[str, Any]) -> dict[str, str]:
    return {STAT_HEADER: base64.b64encode(orjson.dumps(info)).decode()}


def _target(request: web.Request) -> tuple[ContainerManager, Container, str, str]:
    """The manager, the container, how the user named it (for messages), and the path."""
    manager = backend(request).containers
    ref = request.match_info["id"]
    return manager, manager.find(ref), ref, _path(request)


async def head(request: web.Request) -> web.Response:
    manager, container, ref, path = _target(request)
    async with container_root(manager, container, ref) as root:
        info = await archive.stat(root, path)
    manager.event(container, "archive-path")
    return web.Response(status=200, headers=_stat_header(info))


async def get(request: web.Request) -> web.StreamResponse:
    manager, container, ref, path = _target(request)
    async with container_root(manager, container, ref) as root:
        info, chunks = await archive.get(root, path)
        manager.event(container, "archive-path")
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar", **_stat_header(info)})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in chunks:
                await response.write(chunk)
        finally:
            await chunks.aclose()
    await response.write_eof()
    return response


async def put(request: web.Request) -> web.Response:
    manager, container, ref, path = _target(request)
    owner = None if query_bool(request, "copyUIDGID") else (0, 0)

    async def body() -> AsyncIterator[bytes]:
        while chunk := await request.content.read(CHUNK):
            yield chunk

    async with container_root(manager, container, ref) as root:
        await archive.put(root, path, body(), owner, query_bool(request, "noOverwriteDirNonDir"))
    manager.event(container, "extract-to-dir")
    return web.Response(status=200)


def register(app: web.Application) -> None:
    add_route(app, "HEAD", "/containers/{id}/archive", head)
    add_route(app, "GET", "/containers/{id}/archive", get)
    add_route(app, "PUT", "/containers/{id}/archive", put)
