"""What a pull or push starts from: the registry settings, a reference's repository opened with the
right endpoints and credentials, and the progress events both report."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from logship.runtime.reference import Reference
from logship.runtime.registry.auth import Credentials
from logship.runtime.registry.client import Repository
from logship.runtime.registry.endpoints import RegistryConfig, endpoints

# Parallel layer transfers per pull or push (dockerd's max-concurrent-downloads/uploads defaults: 3 and 5).
MAX_CONCURRENT_DOWNLOADS = 3
MAX_CONCURRENT_UPLOADS = 5


@dataclass(frozen=True)
class Progress:
    """One line of a pull's or push's progress, as Docker's JSON messages carry it: `id` is a layer's
    short ID (or the tag being pulled), `status` Docker's words ("Downloading", "Pull complete", ...),
    `current`/`total` bytes when there is a bar to draw."""

    status: str
    id: str | None = None
    current: int = 0
    total: int = 0
    aux: dict[str, object] | None = None  # push's final {"Tag", "Digest", "Size"}


# Called from the event loop and from worker threads alike: the receiver must be thread-safe.
Report = Callable[[Progress], None]


@asynccontextmanager
async def open_repository(
    config: RegistryConfig, reference: Reference, credentials: Credentials, actions: str
) -> AsyncIterator[Repository]:
    """The reference's repository on its registry, its endpoint found (mirrors first for a Docker Hub
    pull), ready for requests; the HTTP session closes on leaving."""
    candidates = endpoints(config, reference.domain, for_push="push" in actions)
    connector = aiohttp.TCPConnector(limit=16, enable_cleanup_closed=True)
    # auto_decompress off: a blob is stored as sent and hashed as sent; a registry that adds a
    # Content-Encoding must not make us inflate (a compression bomb) what the digest does not cover.
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False) as session:
        repository = Repository(session, candidates, reference.path, credentials, actions)
        await repository.open()
        yield repository
