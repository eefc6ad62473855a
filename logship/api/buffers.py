"""logship's own routes for disk buffers (dockerd has none): the pending deliveries of containers whose
logs are closed, and dropping one on purpose.

    GET    /logship/buffers           every pending delivery, with its LogStats (removed containers too)
    DELETE /logship/buffers/{ref}     give up what one has not delivered (counted as failed, logged)
"""

from __future__ import annotations

import logging

from aiohttp import web

from logship.api.app import add_route, backend, json_response
from logship.errors import NotFound

log = logging.getLogger("logship.api")


async def list_buffers(request: web.Request) -> web.Response:
    pending = backend(request).containers.pending
    return json_response([delivery.to_api() for delivery in pending.deliveries.values()])


async def drop_buffer(request: web.Request) -> web.Response:
    pending = backend(request).containers.pending
    ref = request.match_info["ref"]
    try:
        delivery = pending.find(ref)
    except KeyError:
        raise NotFound(
            f"no pending delivery for {ref}: `logship buffer ls` lists the containers whose lines are still on "
            "their way"
        ) from None
    given_up = await pending.drop(delivery, "dropped on purpose (logship buffer drop)")
    log.warning(
        "container %s: its pending delivery to %s was dropped on purpose: %d lines given up",
        delivery.container_id[:12],
        delivery.log_type,
        given_up,
    )
    return json_response({"Id": delivery.container_id, "LinesGivenUp": given_up})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/logship/buffers", list_buffers)
    add_route(app, "DELETE", "/logship/buffers/{ref}", drop_buffer)
