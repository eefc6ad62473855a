"""`/volumes`: Docker's volume API (create, list, inspect, remove, prune) over the volume store."""

from __future__ import annotations

import asyncio

from aiohttp import web

from logship.api.app import add_route, backend, json_response, query_bool, read_json
from logship.api.filters import query_filters
from logship.errors import InvalidParameter


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    name = body.get("Name") or ""
    labels = body.get("Labels") or {}
    options = body.get("DriverOpts") or {}
    driver = body.get("Driver") or ""
    if not isinstance(name, str) or not isinstance(driver, str):
        raise InvalidParameter("invalid volume create body: Name and Driver must be strings")
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise InvalidParameter("invalid volume create body: Labels must be an object of strings")
    if not isinstance(options, dict):
        raise InvalidParameter("invalid volume create body: DriverOpts must be an object of strings")
    store = backend(request).containers.volumes
    volume = await asyncio.to_thread(store.create, name, labels, driver, options)
    return json_response(volume.to_api(), status=201)


async def list_volumes(request: web.Request) -> web.Response:
    store = backend(request).containers.volumes
    volumes = await asyncio.to_thread(store.matching, query_filters(request, ("dangling", "driver", "label", "name")))
    return json_response({"Volumes": [volume.to_api() for volume in volumes], "Warnings": []})


async def inspect(request: web.Request) -> web.Response:
    volume = await asyncio.to_thread(backend(request).containers.volumes.get, request.match_info["name"])
    return json_response(volume.to_api())


async def remove(request: web.Request) -> web.Response:
    store = backend(request).containers.volumes
    await asyncio.to_thread(store.remove, request.match_info["name"], query_bool(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    store = backend(request).containers.volumes
    deleted, reclaimed = await asyncio.to_thread(store.prune, query_filters(request, ("all", "label", "label!")))
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


def register(app: web.Application) -> None:
    add_route(app, "POST", "/volumes/create", create)
    add_route(app, "GET", "/volumes", list_volumes)
    add_route(app, "POST", "/volumes/prune", prune)
    add_route(app, "GET", "/volumes/{name}", inspect)
    add_route(app, "DELETE", "/volumes/{name}", remove)
