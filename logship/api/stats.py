"""`GET /containers/{id}/stats`: a container's resource statistics as dockerd sends them.

`stream=1` (the default): a JSON object a second, each with the previous one's CPU figures in
`precpu_stats` (the first has zeros there). `stream=0`: one object, sent after a second so that its
`precpu_stats` are real and a CPU percentage can be computed; with `one-shot=1`, at once and without them.
A container that is not running gets one object of zeros. logship's own logging counters are elsewhere
(`LogStats` in inspect, `/metrics`).
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from logship.api.app import add_route, backend, json_response, query_bool
from logship.daemon.resources import INTERVAL_S, Sampler, running


async def stats(request: web.Request) -> web.StreamResponse:
    container = backend(request).containers.find(request.match_info["id"])
    sampler = Sampler(container)
    stream = query_bool(request, "stream", default=True)
    if not running(container):
        return json_response(sampler.sample())
    if not stream:
        if not query_bool(request, "one-shot"):
            sampler.sample()
            await asyncio.sleep(INTERVAL_S)
        return json_response(sampler.sample())
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    while True:
        await response.write(orjson.dumps(sampler.sample()) + b"\n")
        if not running(container):
            break
        await asyncio.sleep(INTERVAL_S)
    await response.write_eof()
    return response


def register(app: web.Application) -> None:
    add_route(app, "GET", "/containers/{id}/stats", stats)
