"""`/containers/...`: create, start, stop, restart, kill, wait, attach, inspect, logs, list, remove."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from aiohttp import web

from logship.api import hijack
from logship.api.app import add_route, backend, json_response, parse_timestamp, query_bool, query_int, read_json
from logship.api.filters import label_matches, query_filters
from logship.api.framing import MULTIPLEXED, RAW, STREAM_TYPES, LogEncoder, error_frame, frame
from logship.daemon import inspectshape, ports, prune
from logship.daemon.container import ContainerRecord
from logship.daemon.containers import ContainerManager
from logship.daemon.handle import Container
from logship.daemon.signals import parse_signal
from logship.daemon.top import top as top_of
from logship.errors import InvalidParameter, LogshipError
from logship.pipeline.message import STDERR, STDOUT
from logship.pipeline.readconfig import ReadConfig

log = logging.getLogger("logship.api")


def _container(request: web.Request) -> Container:
    return backend(request).containers.find(request.match_info["id"])


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    name = request.query.get("name") or None
    container, warnings = await backend(request).containers.create(body, name)
    return json_response({"Id": container.id, "Warnings": warnings}, status=201)


async def start(request: web.Request) -> web.Response:
    container = _container(request)
    await backend(request).containers.start(container)
    return web.Response(status=204)


def _stop_query(request: web.Request) -> tuple[int | None, int | None]:
    """`t` (or `timeout`) and `signal` of a stop or restart: how long to wait, and what to send first."""
    timeout = query_int(request, "t", "timeout")
    sig = parse_signal(request.query["signal"]) if request.query.get("signal") else None
    return timeout, sig


async def stop(request: web.Request) -> web.Response:
    container = _container(request)
    await backend(request).containers.stop(container, *_stop_query(request))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    container = _container(request)
    await backend(request).containers.restart(container, *_stop_query(request))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    container = _container(request)
    sig = parse_signal(request.query.get("signal") or "SIGKILL")
    await backend(request).containers.kill(container, sig)
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {condition!r} (use not-running, next-exit or removed)")
    # Like dockerd: headers go out at once, the body when the condition is met.
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    code = await backend(request).containers.wait(container, condition)
    error = container.record.state.error
    try:
        await response.write(json.dumps({"Error": {"Message": error} if error else None, "StatusCode": code}).encode())
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client stopped waiting: nothing to tell it (and no traceback in the daemon log)
    return response


async def inspect(request: web.Request) -> web.Response:
    container = _container(request)
    return json_response(await inspectshape.container_inspect(backend(request).containers, container))


_FILTER_KEYS = {"id", "name", "status", "label", "ancestor", "exited", "network", "publish", "expose"}


def _filters(request: web.Request) -> dict[str, list[str]]:
    filters = query_filters(request, _FILTER_KEYS)
    for pattern in filters.get("name", []):
        try:
            re.compile(pattern)
        except re.error as err:
            raise InvalidParameter(f"invalid filter 'name={pattern}': {err}") from None
    for key in ("publish", "expose"):
        for value in filters.get(key, []):
            ports.filter_ports(key, value)
    return filters


def _matches_one(record: ContainerRecord, key: str, value: str) -> bool:
    labels = record.config.get("Labels") or {}
    if key == "id":
        return record.id.startswith(value)
    if key == "name":
        return re.search(value, record.name) is not None
    if key == "status":
        return record.state.status == value
    if key == "ancestor":
        return value in (record.image, record.image_id) or record.image_id.startswith("sha256:" + value)
    if key == "exited":
        return record.state.status == "exited" and str(record.state.exit_code) == value
    if key == "network":  # a network's name, or the start of its id (dockerd)
        networks = record.network_list()
        return value in networks or any(s.get("NetworkID", "").startswith(value) for s in networks.values())
    if key in ("publish", "expose"):  # a host port the running container publishes, or a port it exposes
        wanted = ports.filter_ports(key, value)
        side = "PublicPort" if key == "publish" else "PrivatePort"
        return any((entry.get(side), entry["Type"]) in wanted for entry in ports.summary_ports(record.ports))
    return label_matches(labels, value)  # key == "label"


def _matches(container: Container, filters: dict[str, list[str]]) -> bool:
    """Docker's filter semantics: values of one key are alternatives, different keys must all match, and
    every `label` must match (docker-compose lists a project's containers by two labels at once)."""
    return all(
        (all if key == "label" else any)(_matches_one(container.record, key, v) for v in values)
        for key, values in filters.items()
    )


async def list_containers(request: web.Request) -> web.Response:
    show_all = query_bool(request, "all")
    filters = _filters(request)
    limit = query_int(request, "limit") or -1
    result: list[dict[str, Any]] = []
    for container in backend(request).containers.all():
        live = container.record.state.running or container.record.state.restarting
        if not show_all and not live and "status" not in filters:
            continue
        if _matches(container, filters):
            result.append(container.record.to_summary())
    if limit > 0:
        result = result[:limit]
    if query_bool(request, "size"):  # `docker ps -s`: the container's own layer, and with the image's
        await _add_sizes(backend(request).containers, result)
    return json_response(result)


async def _add_sizes(manager: ContainerManager, summaries: list[dict[str, Any]]) -> None:
    for summary in summaries:
        container = manager.find(summary["Id"])
        summary["SizeRw"] = await asyncio.to_thread(prune.container_size, container)
        try:
            image_size = (await asyncio.to_thread(manager.images.get, container.record.image_id)).size
        except LogshipError:
            image_size = 0
        summary["SizeRootFs"] = summary["SizeRw"] + image_size


async def rename(request: web.Request) -> web.Response:
    container = _container(request)
    await backend(request).containers.rename(container, request.query.get("name", ""))
    return web.Response(status=204)


async def top(request: web.Request) -> web.Response:
    container = _container(request)
    return json_response(await top_of(backend(request).containers, container, request.query.get("ps_args", "")))


async def remove(request: web.Request) -> web.Response:
    container = _container(request)
    await backend(request).containers.remove(container, query_bool(request, "force"), query_bool(request, "v"))
    return web.Response(status=204)


async def resize(request: web.Request) -> web.Response:
    container = _container(request)
    height = query_int(request, "h") or 0
    width = query_int(request, "w") or 0
    backend(request).containers.resize(container, height, width)
    return web.Response(status=200)


# ---- logs ---------------------------------------------------------------------------------------


async def logs(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    streams = frozenset(s for s in (STDOUT, STDERR) if query_bool(request, s))
    if not streams:
        raise InvalidParameter("must specify at least one of 'stdout' or 'stderr'")
    if container.record.state.status in ("removing", "dead"):
        raise InvalidParameter("can not get logs from container which is dead or marked for removal")
    tail_text = request.query.get("tail", "all")
    try:
        tail = int(tail_text)
    except ValueError:
        tail = -1  # Docker: anything that is not a number means all
    timestamps = query_bool(request, "timestamps")
    config = ReadConfig(
        since_ns=parse_timestamp(request.query.get("since", ""), "since"),
        until_ns=parse_timestamp(request.query.get("until", ""), "until"),
        tail=tail if tail >= 0 else -1,
        # A restarting container's drivers stay open between runs: following it goes on across restarts.
        follow=query_bool(request, "follow") and (container.record.state.running or container.record.state.restarting),
        timestamps=timestamps,
    )
    notices = query_bool(request, "notices")  # logship's CLI: lines lost while following told as they happen
    raw = container.record.tty and not notices
    encoder = LogEncoder(streams, timestamps, query_bool(request, "details"), raw, query_bool(request, "runs"), notices)
    manager = backend(request).containers
    # Output without --details (the usual `logs`, or `logs -t`) is read as runs of bytes: no Message per line.
    text = not encoder.details
    source: AsyncGenerator[Any, None]
    chunks: AsyncIterator[bytes]
    if text:
        runs = await manager.read_log_text(container, config)
        source, chunks = runs, (encoder.encode_runs(batch) async for batch in runs)
    else:
        messages = await manager.read_logs(container, config)
        source, chunks = messages, (encoder.encode(batch) async for batch in messages)
    response = web.StreamResponse(headers={"Content-Type": RAW if raw else MULTIPLEXED})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        async for data in chunks:
            if data:
                await response.write(data)
        if closing := encoder.closing():
            await response.write(closing)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as err:  # after the headers went out, errors travel in-band, as in Docker
        log.exception("reading logs of container %s", container.record.short_id)
        with contextlib.suppress(ConnectionResetError):
            await response.write(error_frame(str(err), raw))
    finally:
        await source.aclose()
    await response.write_eof()
    return response


# ---- attach -------------------------------------------------------------------------------------


async def attach(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    manager = backend(request).containers
    tty = container.record.tty
    want_stdin = query_bool(request, "stdin")
    streams = frozenset(s for s in (STDOUT, STDERR) if query_bool(request, s))
    if not query_bool(request, "stream") and not query_bool(request, "logs"):
        raise InvalidParameter("attach needs stream=1 (live output) or logs=1 (past output)")
    subscriber = manager.subscribe(container, streams) if query_bool(request, "stream") else None
    try:
        connection = await hijack.hijack(request, RAW if tty else MULTIPLEXED)
        if query_bool(request, "logs"):
            encoder = LogEncoder(streams, False, False, tty)
            messages = await manager.read_logs(container, ReadConfig())
            async for batch in messages:
                await connection.write(encoder.encode(batch))
        stdin_task = None
        if want_stdin and container.record.config.get("OpenStdin"):
            stdin_task = asyncio.get_running_loop().create_task(_pump_stdin(connection, container))
        if subscriber is not None:
            while (item := await hijack.next_output(subscriber, connection)) is not None:
                stream, chunk = item
                await connection.write(chunk if tty else frame(STREAM_TYPES[stream], chunk))
        if stdin_task is not None:
            stdin_task.cancel()
        connection.close()
    finally:
        if subscriber is not None:
            manager.unsubscribe(container, subscriber)
    return connection.response


async def _pump_stdin(connection: hijack.Connection, container: Container) -> None:
    """The client's input to the container's stdin; a client attached before start waits for the start."""
    while (data := await connection.read()) is not None:
        await container.started.wait()
        if container.stdin is not None:
            container.stdin.write(data)
    await container.started.wait()
    if container.stdin is not None:
        container.stdin.write_eof()


def register(app: web.Application) -> None:
    add_route(app, "POST", "/containers/create", create)
    add_route(app, "GET", "/containers/json", list_containers)
    add_route(app, "GET", "/containers/{id}/json", inspect)
    add_route(app, "POST", "/containers/{id}/start", start)
    add_route(app, "POST", "/containers/{id}/stop", stop)
    add_route(app, "POST", "/containers/{id}/restart", restart)
    add_route(app, "POST", "/containers/{id}/kill", kill)
    add_route(app, "POST", "/containers/{id}/wait", wait)
    add_route(app, "POST", "/containers/{id}/attach", attach)
    add_route(app, "POST", "/containers/{id}/resize", resize)
    add_route(app, "GET", "/containers/{id}/logs", logs)
    add_route(app, "POST", "/containers/{id}/rename", rename)
    add_route(app, "GET", "/containers/{id}/top", top)
    add_route(app, "DELETE", "/containers/{id}", remove)
