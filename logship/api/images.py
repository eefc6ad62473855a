"""`/images/...`: import (`POST /images/create?fromSrc=-`), list, inspect, tag, remove."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

import orjson
from aiohttp import web

from logship.api.app import add_route, backend, json_response, query_bool
from logship.errors import InvalidParameter
from logship.runtime.images import Image

CHUNK = 1 << 20


def image_summary(image: Image) -> dict[str, Any]:
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": image.repo_tags,
        "RepoDigests": [],
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
        raise InvalidParameter(
            "pulling images from a registry is not supported by logship: "
            "use `logship import` with a rootfs tarball (or `docker export` output) instead"
        )
    if request.query.get("fromSrc") != "-":
        raise InvalidParameter("importing needs fromSrc=- and the tarball as the request body")
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    reference = f"{repo}:{tag}" if repo and tag else (repo or None)
    changes = request.query.getall("changes", [])
    message = request.query.get("message", "")
    store = backend(request).images
    tmp_dir = backend(request).settings.data_root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=tmp_dir) as body:
        while chunk := await request.content.read(CHUNK):
            await asyncio.to_thread(body.write, chunk)
        body.seek(0, os.SEEK_SET)
        image = await asyncio.to_thread(store.import_tarball, body, reference, changes, message)
    return web.Response(body=orjson.dumps({"status": image.id}) + b"\n", content_type="application/json")


async def list_images(request: web.Request) -> web.Response:
    images = await asyncio.to_thread(backend(request).images.list)
    return json_response([image_summary(i) for i in images])


async def inspect(request: web.Request) -> web.Response:
    image = await asyncio.to_thread(backend(request).images.get, request.match_info["name"])
    config = image.config
    return json_response(
        {
            "Id": image.id,
            "RepoTags": image.repo_tags,
            "RepoDigests": [],
            "Parent": "",
            "Comment": (config.get("history") or [{}])[-1].get("comment", ""),
            "Created": image.created,
            "Config": config.get("config") or {},
            "Architecture": config.get("architecture", ""),
            "Os": config.get("os", "linux"),
            "Size": image.size,
            "RootFS": config.get("rootfs") or {},
            "Metadata": {"LastTagTime": ""},
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
    add_route(app, "GET", "/images/json", list_images)
    add_route(app, "GET", "/images/{name:.+}/json", inspect)
    add_route(app, "POST", "/images/{name:.+}/tag", tag)
    add_route(app, "DELETE", "/images/{name:.+}", remove)
