"""The daemon's HTTP API: Docker Engine API paths and JSON shapes, served by aiohttp.

Every route answers both with and without a version prefix (`/v1.47/containers/json`), as dockerd does.
Errors raised below the API carry their HTTP status (`logship.errors`) and become `{"message": ...}`;
anything unexpected is logged with its traceback in the daemon log and answered with a 500 that says where
to look, never a traceback on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from logship.daemon.containers import ContainerManager
from logship.errors import InvalidParameter, LogshipError, NotModified
from logship.runtime.images import ImageStore
from logship.settings import Settings

log = logging.getLogger("logship.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Backend:
    settings: Settings
    containers: ContainerManager
    images: ImageStore
    started_ns: int


BACKEND = web.AppKey("backend", Backend)


def backend(request: web.Request) -> Backend:
    return request.app[BACKEND]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(message: str, status: int) -> web.Response:
    return json_response({"message": message}, status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotModified:
        return web.Response(status=304)
    except LogshipError as err:
        if err.status >= 500:
            log.error("%s %s: %s", request.method, request.path, err)
        return error_response(str(err), err.status)
    except web.HTTPException as err:
        if err.status in (404, 405):  # no such route: an API docker has that logship does not
            return error_response(f"{request.method} {request.path} is not supported by logship", err.status)
        if err.status == 413:  # aiohttp's reason alone does not say what the limit is
            return error_response(f"request body too large: {(err.text or '').rstrip('.')} (bytes)", 413)
        if err.status >= 400:
            return error_response(err.reason, err.status)
        raise
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception as err:
        log.exception("%s %s failed", request.method, request.path)
        path = backend(request).settings.daemon_log_path
        return error_response(f"internal error in the logship daemon ({type(err).__name__}: {err}); see {path}", 500)


def add_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{api_version:[0-9]+\.[0-9]+}" + path, handler)


def make_app(backend_: Backend) -> web.Application:
    # Local imports: the route modules import this one for `backend` and the response helpers.
    from logship.api import (
        archive,
        buffers,
        containers,
        disk,
        distribution,
        events,
        execs,
        images,
        metrics,
        networks,
        stats,
        system,
        volumes,
    )

    app = web.Application(middlewares=[errors_middleware], client_max_size=1 << 20)
    app[BACKEND] = backend_
    system.register(app)
    disk.register(app)  # before containers and images: /containers/prune is not a container's id
    containers.register(app)
    archive.register(app)
    events.register(app)
    execs.register(app)
    stats.register(app)
    images.register(app)
    distribution.register(app)
    networks.register(app)
    metrics.register(app)
    buffers.register(app)
    volumes.register(app)
    return app


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's httputils.BoolValue: false for "", "0", "no", "false", "none"; true for anything else."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in ("", "0", "no", "false", "none")


async def read_json(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    if not body:
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidParameter(f"invalid JSON in the request body: {err}") from None
    if not isinstance(data, dict):
        raise InvalidParameter("the request body must be a JSON object")
    return data


def parse_timestamp(value: str, name: str) -> int:
    """Docker's API timestamps: `<seconds>` or `<seconds>.<nanoseconds>` → ns; "" or "0" → 0 (unset)."""
    if value in ("", "0"):
        return 0
    seconds, _, nanos = value.partition(".")
    if not seconds.lstrip("-").isdigit():
        raise InvalidParameter(f'invalid value for "{name}": invalid timestamp "{value}": invalid seconds')
    if nanos and (not nanos.isdigit() or len(nanos) > 20):
        raise InvalidParameter(f'invalid value for "{name}": invalid timestamp "{value}": invalid nanoseconds')
    return int(seconds) * 1_000_000_000 + int((nanos or "0")[:9].ljust(9, "0"))


def query_int(request: web.Request, *names: str) -> int | None:
    for name in names:
        if name in request.query and request.query[name] != "":
            try:
                return int(request.query[name])
            except ValueError:
                raise InvalidParameter(f"invalid value for {name}: {request.query[name]!r} is not an integer") from None
    return None
