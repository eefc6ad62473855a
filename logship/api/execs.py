"""`/containers/{id}/exec` and `/exec/{id}/start|json|resize`: dockerd's exec API.

An attached start hijacks the connection as `attach` does (`101 UPGRADED`, Docker's 8-byte multiplexed
frames without a tty, raw bytes with one); the stream ends once the command has ended and its exit code is
recorded, so a client inspecting the exec right after (the docker CLI does) finds it. A command that cannot
start is reported in the stream as dockerd does (its error text and "\\r\\n"), with exit code 126 or 127;
a detached start answers the error as an HTTP error instead.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from logship.api import hijack
from logship.api.app import add_route, backend, json_response, query_int, read_json
from logship.api.framing import MULTIPLEXED, RAW, STREAM_TYPES, frame
from logship.daemon.execs import Exec
from logship.errors import InvalidParameter
from logship.pipeline.message import STDERR, STDOUT
from logship.runtime.execs import ExecStartError

START_FAILED = "exec failed: unable to start container process: "


async def create(request: web.Request) -> web.Response:
    manager = backend(request).containers
    container = manager.find(request.match_info["id"])
    exec_ = manager.execs.create(container, await read_json(request))
    return json_response({"Id": exec_.id}, status=201)


def _exec(request: web.Request) -> Exec:
    return backend(request).containers.execs.find(request.match_info["id"])


async def inspect(request: web.Request) -> web.Response:
    return json_response(_exec(request).to_api())


async def resize(request: web.Request) -> web.Response:
    exec_ = _exec(request)
    height, width = query_int(request, "h") or 0, query_int(request, "w") or 0
    backend(request).containers.execs.resize(exec_, height, width)
    return web.Response(status=201)


async def start(request: web.Request) -> web.StreamResponse:
    execs = backend(request).containers.execs
    exec_ = _exec(request)
    body = await read_json(request)
    tty = body.get("Tty")
    if tty is not None and not isinstance(tty, bool):
        raise InvalidParameter(f"invalid Tty: expected true or false, got {tty!r}")
    console_size = body.get("ConsoleSize")
    if body.get("Detach"):
        try:
            await execs.start(exec_, tty, console_size)
        except ExecStartError as err:
            raise InvalidParameter(START_FAILED + err.message) from None
        return web.Response(status=200)
    execs.check_startable(exec_)
    raw = exec_.tty if tty is None else tty
    streams = frozenset(
        s for s, wanted in ((STDOUT, exec_.attach_stdout), (STDERR, exec_.attach_stderr or raw)) if wanted
    )
    subscriber = exec_.attachments.subscribe(streams)  # before the start: no early output is missed
    try:
        connection = await hijack.hijack(request, RAW if raw else MULTIPLEXED)
        try:
            await execs.start(exec_, tty, console_size)
        except ExecStartError as err:
            text = (START_FAILED + err.message + "\r\n").encode()
            await connection.write(text if raw else frame(STREAM_TYPES[STDOUT], text))
            connection.close()
            return connection.response
        stdin_task = None
        if exec_.attach_stdin:
            stdin_task = asyncio.get_running_loop().create_task(_pump_stdin(connection, exec_))
        while (item := await hijack.next_output(subscriber, connection)) is not None:
            stream, chunk = item
            await connection.write(chunk if raw else frame(STREAM_TYPES[stream], chunk))
        if stdin_task is not None:
            stdin_task.cancel()
        connection.close()
    finally:
        exec_.attachments.unsubscribe(subscriber)
    return connection.response


async def _pump_stdin(connection: hijack.Connection, exec_: Exec) -> None:
    while (data := await connection.read()) is not None:
        if exec_.stdin is None:
            return
        exec_.stdin.write(data)
    if exec_.stdin is not None:
        exec_.stdin.write_eof()


def register(app: web.Application) -> None:
    add_route(app, "POST", "/containers/{id}/exec", create)
    add_route(app, "POST", "/exec/{id}/start", start)
    add_route(app, "GET", "/exec/{id}/json", inspect)
    add_route(app, "POST", "/exec/{id}/resize", resize)
