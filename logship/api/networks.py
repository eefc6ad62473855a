"""`/networks`: logship has no networks of its own yet, only the host's network and none.

dockerd's network API is answered with one clear refusal (docker-compose creates a network for every
project whose services do not all set `network_mode`), rather than "not supported" for a path, and the
two networks that do exist are listed so that tools looking them up find them.
"""

from __future__ import annotations

from aiohttp import web

from logship.api.app import add_route, json_response
from logship.errors import InvalidParameter, NotFound

MODES = ("host", "none")
REFUSAL = (
    "networks are not supported by logship: containers run in the host's network or in none "
    "(--network host|none; with docker-compose, give every service network_mode: host or network_mode: none)"
)


def _network(name: str) -> dict[str, object]:
    return {
        "Name": name,
        "Id": name,
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": "host" if name == "host" else "null",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }


async def list_networks(request: web.Request) -> web.Response:
    return json_response([_network(mode) for mode in MODES])


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    if name not in MODES:
        raise NotFound(f"network {name} not found")
    return json_response(_network(name))


async def refuse(request: web.Request) -> web.Response:
    raise InvalidParameter(REFUSAL)


def register(app: web.Application) -> None:
    add_route(app, "GET", "/networks", list_networks)
    add_route(app, "GET", "/networks/{id}", inspect)
    add_route(app, "POST", "/networks/create", refuse)
    add_route(app, "POST", "/networks/{id}/connect", refuse)
    add_route(app, "POST", "/networks/{id}/disconnect", refuse)
    add_route(app, "DELETE", "/networks/{id}", refuse)
    add_route(app, "POST", "/networks/prune", refuse)
