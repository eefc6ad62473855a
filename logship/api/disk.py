"""`GET /system/df`, `POST /containers/prune`, `POST /images/prune`: dockerd's shapes, Docker's filters
(see `logship.daemon.prune`)."""

from __future__ import annotations

from aiohttp import web

from logship.api.app import add_route, backend, json_response
from logship.api.filters import query_filters
from logship.api.images import image_summary
from logship.daemon import prune


async def system_df(request: web.Request) -> web.Response:
    return json_response(await prune.disk_usage(backend(request).containers, image_summary))


async def prune_containers(request: web.Request) -> web.Response:
    filters = query_filters(request, prune.CONTAINER_FILTERS)
    return json_response(await prune.prune_containers(backend(request).containers, filters))


async def prune_images(request: web.Request) -> web.Response:
    filters = query_filters(request, prune.IMAGE_FILTERS)
    return json_response(await prune.prune_images(backend(request).containers, filters))


def register(app: web.Application) -> None:
    add_route(app, "GET", "/system/df", system_df)
    add_route(app, "POST", "/containers/prune", prune_containers)
    add_route(app, "POST", "/images/prune", prune_images)
