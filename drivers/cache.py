"""Dual logging: a local-format copy of the output of containers whose driver cannot read back (fluentd,
awslogs, third-party drivers), so `logs` works for every container, as in Docker 20.10+.

The cache is one more driver in the container's router, so it follows the container's mode: in blocking
mode it loses nothing (Docker wraps it in a lossy ring even then). Unlike Docker, its own options are
honoured (moby#45668): `cache-disabled`, `cache-max-size` (default 20 MiB), `cache-max-file` (5),
`cache-compress` (true), and logship's `cache-follow-backlog` (256 MiB, see `util/followers.py`). It lives
at `<container dir>/container-cached.log`, as Docker's does, and keeps the attributes the container's
labels/env/tag options select. `none` never gets a cache.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from logship.drivers.base import LogDriver
from logship.drivers.options import parse_bool
from logship.drivers.util.logfile import Rotation
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo

CACHE_FILE = "container-cached.log"
CACHE_NAME = "cache"  # how the cache shows in LogStats, beside the container's own driver
# The cache's rotated files are read by `logs` only, and the cache rides beside the hot path of every
# fluentd/awslogs container: zlib's fastest level compresses log text ~3.7x faster than the default for
# files ~20% larger (dpkg logs: 215 vs 58 MB/s, ratio 0.136 vs 0.112).
CACHE_COMPRESS_LEVEL = 1


def enabled(driver: str, opts: Mapping[str, str]) -> bool:
    return driver != "none" and not parse_bool(opts.get("cache-disabled", "false"))


def rotation(opts: Mapping[str, str]) -> Rotation:
    """The cache's rotation from its cache-* options, checked with the local driver's rules and texts."""
    from logship.drivers.local.options import rotation_of

    own = ("cache-max-size", "cache-max-file", "cache-compress", "cache-follow-backlog")
    given = {key: value for key, value in opts.items() if key in own}
    try:
        parsed = rotation_of({key.removeprefix("cache-"): value for key, value in given.items()})
    except InvalidParameter as err:
        raise InvalidParameter(f"invalid dual-logging cache options ({', '.join(sorted(given))}): {err}") from None
    return dataclasses.replace(parsed, compress_level=CACHE_COMPRESS_LEVEL)


def validate(opts: Mapping[str, str]) -> None:
    """Create-time check of the cache options (Docker checks only cache-disabled)."""
    rotation(opts)


def path(info: ContainerInfo) -> str:
    return os.path.join(info.container_dir, CACHE_FILE)


async def open_cache(info: ContainerInfo) -> LogDriver:
    from logship.drivers.local import open_local
    from logship.drivers.options import attributes_of

    driver = await open_local(path(info), rotation(info.config), attributes_of(info))
    driver.name = CACHE_NAME
    return driver
