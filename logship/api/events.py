"""`GET /events`: the daemon's events as a stream of JSON objects, one per line, as dockerd sends them.

`since` and `until` are Docker's API timestamps (`<seconds>[.<nanoseconds>]`; the docker CLI turns
`--since 10m` into one); `filters` takes container, image, type, event, label, daemon and the other keys
dockerd knows (see `logship.daemon.events`).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from logship.api.app import add_route, backend, parse_timestamp
from logship.api.filters import query_filters
from logship.daemon.events import FILTER_KEYS, EventFilter


async def events(request: web.Request) -> web.StreamResponse:
    since_ns = _time(request, "since")
    until_ns = _time(request, "until")
    event_filter = EventFilter(query_filters(request, FILTER_KEYS))
    stream = backend(request).containers.events.subscribe(since_ns, until_ns, event_filter)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"")  # headers out now: `docker events` shows nothing until it has them
    try:
        async for event in stream:
            if event is not None:
                await response.write(orjson.dumps(event.to_api()) + b"\n")
            elif request.transport is None or request.transport.is_closing():
                return response  # the client went away while nothing happened
        await response.write_eof()
    except ConnectionResetError:  # the client went away (`docker events` ended with ^C)
        pass
    finally:
        await stream.aclose()
    return response


def _time(request: web.Request, name: str) -> int:
    """0 when absent; "0" is the Unix epoch (`--since 0`: the whole history), not "unset" as for logs."""
    value = request.query.get(name, "")
    if not value:
        return 0
    return max(parse_timestamp(value, name), 1)


def register(app: web.Application) -> None:
    add_route(app, "GET", "/events", events)
