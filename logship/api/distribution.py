"""Registry routes: pull (`POST /images/create?fromImage=`), push (`POST /images/{name}/push`) and login
(`POST /auth`), as dockerd serves them.

Credentials come in the `X-Registry-Auth` header (pull, push) or the body (`/auth`), are used for that
request only and never logged. Pull and push answer like dockerd: an error found before the transfer
starts (bad reference, unknown tag, refused credentials, unreachable registry) is a plain HTTP error
(`{"message": ...}` with its status), which the docker CLI prints as "Error response from daemon: ...";
once the first progress message is out, the answer is a 200 stream of Docker's JSON messages, one per
line, and a later failure is its last message (`{"errorDetail": ..., "error": ...}`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from logship.api.app import add_route, backend, json_response, read_json
from logship.api.images import error_message, json_message, progress_text
from logship.errors import LogshipError
from logship.runtime.platforms import parse_platform
from logship.runtime.reference import parse_reference
from logship.runtime.registry.auth import Credentials, decode_registry_auth
from logship.runtime.registry.endpoints import RegistryConfig
from logship.runtime.registry.pull import Puller
from logship.runtime.registry.push import Pusher
from logship.runtime.registry.session import Progress, Report, open_repository

log = logging.getLogger("logship.api")

_DIGEST_TAG_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_HUB_ADDRESSES = ("index.docker.io", "registry-1.docker.io", "docker.io")


class Distribution:
    """The daemon's puller and pusher, made on first use from the settings."""

    def __init__(self, request: web.Request) -> None:
        backend_ = backend(request)
        settings = backend_.settings
        self.config = RegistryConfig(
            tuple(settings.insecure_registries), tuple(settings.registry_mirrors), settings.certs_dir
        )
        self.puller = Puller(backend_.images, self.config)
        scratch = settings.data_root / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        self.pusher = Pusher(backend_.images, self.config, scratch)


DISTRIBUTION = web.AppKey("distribution", Distribution)


def distribution(request: web.Request) -> Distribution:
    if DISTRIBUTION not in request.app:
        request.app[DISTRIBUTION] = Distribution(request)
    return request.app[DISTRIBUTION]


def pull_name(from_image: str, tag: str) -> str:
    """dockerd's reading of fromImage and tag: the tag may be a digest ("sha256:..."), and fromImage may
    carry a tag or digest of its own when `tag` is empty."""
    if not tag:
        return from_image
    if _DIGEST_TAG_RE.match(tag):
        return f"{from_image}@{tag}"
    return f"{from_image}:{tag}"


async def pull(request: web.Request) -> web.StreamResponse:
    """`POST /images/create?fromImage=busybox&tag=latest[&platform=linux/arm64]`."""
    name = pull_name(request.query["fromImage"], request.query.get("tag", ""))
    parse_reference(name)  # a bad reference is a 400 before anything else
    platform_text = request.query.get("platform", "")
    platform = parse_platform(platform_text) if platform_text else None
    credentials = decode_registry_auth(request.headers.get("X-Registry-Auth"))
    store = backend(request).images

    async def work(report: Report) -> None:
        image, stored = await distribution(request).puller.pull(name, credentials, platform, report)
        store.emit("pull", image.id, stored)

    return await stream_progress(request, work)


async def push(request: web.Request) -> web.StreamResponse:
    """`POST /images/{name}/push?tag=`: every tag of the repository when tag is empty."""
    name = request.match_info["name"]
    tag = request.query.get("tag") or None
    credentials = decode_registry_auth(request.headers.get("X-Registry-Auth"))
    store = backend(request).images

    async def work(report: Report) -> None:
        for reference in await distribution(request).pusher.push(name, tag, credentials, report):
            store.emit("push", (await asyncio.to_thread(store.get, reference)).id, reference)

    return await stream_progress(request, work)


async def login(request: web.Request) -> web.Response:
    """`POST /auth` {"username", "password", "serveraddress"}: check the credentials against the registry
    (its /v2/, or its token server); nothing is stored by the daemon, the client keeps them."""
    body = await read_json(request)
    username, password = str(body.get("username") or ""), str(body.get("password") or "")
    server = registry_domain(str(body.get("serveraddress") or ""))
    credentials = Credentials(
        username=username, password=password, identity_token=str(body.get("identitytoken") or ""), server=server
    )
    reference = parse_reference(f"{server}/logship-login-check")
    async with open_repository(distribution(request).config, reference, credentials, "pull") as repository:
        repository.path = ""  # a login asks for a token without a repository scope
        await repository.login_check()
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def registry_domain(address: str) -> str:
    """ "127.0.0.1:5000" of "http://127.0.0.1:5000/v2/"; Docker Hub's addresses are "docker.io"."""
    if not address:
        return "docker.io"
    host = urlsplit(address if "://" in address else f"//{address}").netloc or address
    if host in _HUB_ADDRESSES:
        return "docker.io"
    return host


async def stream_progress(request: web.Request, work: Callable[[Report], Awaitable[None]]) -> web.StreamResponse:
    """Run `work`, which reports Progress, and answer as dockerd: the first report starts a 200 stream
    of JSON messages; an error before it is the request's error."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def report(progress: Progress) -> None:  # from the loop or from worker threads
        loop.call_soon_threadsafe(queue.put_nowait, progress_message(progress))

    async def run() -> None:
        try:
            await work(report)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.create_task(run())
    first = await queue.get()
    if first is None:
        await task  # raises the error, which the middleware answers with its status
        first = b""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    client_gone = False
    try:
        await response.prepare(request)
        if first:
            await response.write(first)
    except (ConnectionResetError, BrokenPipeError):
        client_gone = True
    line: bytes | None = first
    while line is not None:
        line = await queue.get()
        if line is None or client_gone:
            continue
        try:
            await response.write(line)
        except (ConnectionResetError, BrokenPipeError):
            client_gone = True  # the transfer goes on: what it fetched is kept for the next pull
    try:
        await task
    except LogshipError as err:
        await _write_last(response, error_message(str(err)), client_gone)
    except Exception as err:
        log.exception("%s %s failed", request.method, request.path)
        where = backend(request).settings.daemon_log_path
        text = f"internal error in the logship daemon ({type(err).__name__}: {err}); see {where}"
        await _write_last(response, error_message(text), client_gone)
    if not client_gone:
        await response.write_eof()
    return response


async def _write_last(response: web.StreamResponse, line: bytes, client_gone: bool) -> None:
    if not client_gone:
        try:
            await response.write(line)
        except (ConnectionResetError, BrokenPipeError):
            pass


def progress_message(progress: Progress) -> bytes:
    """Docker's JSONMessage for one progress line: {"status", "progressDetail", "progress", "id"}."""
    message: dict[str, Any] = {}
    if progress.status:
        message["status"] = progress.status
    if progress.id is not None and progress.status.startswith("Pulling from"):
        message["id"] = progress.id
        return json_message(message)
    if progress.id is not None or progress.aux is not None:
        detail = {key: value for key, value in (("current", progress.current), ("total", progress.total)) if value}
        message["progressDetail"] = detail
        if progress.current:
            message["progress"] = progress_text(progress.current, progress.total)
    if progress.id is not None:
        message["id"] = progress.id
    if progress.aux is not None:
        message["aux"] = progress.aux
    return json_message(message)


def register(app: web.Application) -> None:
    add_route(app, "POST", "/images/{name:.+}/push", push)
    add_route(app, "POST", "/auth", login)
