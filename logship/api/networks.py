"""`/networks`: dockerd's network API (list, inspect, create, connect, disconnect, remove, prune) over the
network store and the containers' attachments (`logship.daemon.networks`, `logship.daemon.netattach`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from logship.api.app import add_route, backend, json_response, read_json
from logship.api.filters import query_filters
from logship.daemon.netattach import ContainerNetworking
from logship.daemon.networks import LIST_FILTERS, PRUNE_FILTERS
from logship.daemon.prune import _until_ns
from logship.errors import InvalidParameter


def _networking(request: web.Request) -> ContainerNetworking:
    return backend(request).containers.network


async def list_networks(request: web.Request) -> web.Response:
    networking = _networking(request)
    # As dockerd (API 1.28+): the list leaves each network's containers out; inspect has them.
    found = networking.store.matching(query_filters(request, LIST_FILTERS))
    return json_response([network.to_api() for network in found])


async def inspect(request: web.Request) -> web.Response:
    networking = _networking(request)
    network = networking.store.find(request.match_info["id"])
    return json_response(network.to_api(networking.containers_of(network)))


async def create(request: web.Request) -> web.Response:
    networking = _networking(request)
    network = networking.store.create(await read_json(request))
    networking.event("create", network)
    return json_response({"Id": network.id, "Warning": ""}, status=201)


def _container_ref(body: dict[str, Any]) -> str:
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise InvalidParameter("the request needs the Container to connect or disconnect")
    return ref


async def connect(request: web.Request) -> web.Response:
    body = await read_json(request)
    manager = backend(request).containers
    network = manager.network.store.find(request.match_info["id"])
    container = manager.find(_container_ref(body))
    config = body.get("EndpointConfig") or {}
    async with container.lock:
        await manager.network.connect(container, network, config)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    body = await read_json(request)
    manager = backend(request).containers
    network = manager.network.store.find(request.match_info["id"])
    container = manager.find(_container_ref(body))
    async with container.lock:
        await manager.network.disconnect(container, network)
    return web.Response(status=200)


async def remove(request: web.Request) -> web.Response:
    networking = _networking(request)
    network = networking.store.remove(request.match_info["id"])
    networking.event("destroy", network)
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    networking = _networking(request)
    filters = query_filters(request, PRUNE_FILTERS)
    removed = networking.store.prune(filters, _until_ns(filters))
    for network in removed:
        networking.event("destroy", network)
    return json_response({"NetworksDeleted": [network.name for network in removed] or None})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/networks", list_networks)
    add_route(app, "POST", "/networks/create", create)
    add_route(app, "POST", "/networks/prune", prune)
    add_route(app, "GET", "/networks/{id}", inspect)
    add_route(app, "POST", "/networks/{id}/connect", connect)
    add_route(app, "POST", "/networks/{id}/disconnect", disconnect)
    add_route(app, "DELETE", "/networks/{id}", remove)
