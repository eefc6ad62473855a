"""A container's log drivers seen from the daemon: opening them for a run, and reading its logs back.

Kept apart from the container lifecycle (`logship.daemon.containers`): these functions need only the
container's record and directory, never the manager's state. The drivers of a run are its driver plus
the dual-logging cache when that driver cannot read back; a stopped container's logs are read through a
fresh instance of its driver (or its cache) opened just for the read, as Docker does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from logship.daemon.container import ContainerRecord
from logship.drivers import cache, registry
from logship.drivers.base import LogDriver, LogReader, Run, TextLogReader, as_runs
from logship.errors import InvalidParameter, LogshipError, NotImplementedByDriver
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Message
from logship.pipeline.readconfig import ReadConfig

if TYPE_CHECKING:
    from logship.daemon.handle import Container

log = logging.getLogger("logship.containers")

T = TypeVar("T")


def container_info(container: Container) -> ContainerInfo:
    record = container.record
    return ContainerInfo(
        container_id=record.id,
        container_name=record.name,
        config=record.log_opts,
        entrypoint=record.path,
        args=tuple(record.args),
        image_id=record.image_id,
        image_name=record.image,
        created_ns=record.created_ns,
        env=tuple(record.config.get("Env") or ()),
        labels=record.config.get("Labels") or {},
        log_path=record.log_path,
        container_dir=str(container.dir),
    )


async def open_drivers(container: Container) -> list[LogDriver]:
    """The container's driver, plus the dual-logging cache when that driver cannot read back."""
    record = container.record
    info = container_info(container)
    drivers = [await _opening(record, "logging driver", registry.get(record.log_type).new(info))]
    if not isinstance(drivers[0], LogReader) and cache.enabled(record.log_type, record.log_opts):
        try:
            drivers.append(await _opening(record, "the dual-logging cache", cache.open_cache(info)))
        except LogshipError:
            await close_all(drivers)
            raise
    return drivers


async def _opening(record: ContainerRecord, what: str, opening: Awaitable[LogDriver]) -> LogDriver:
    try:
        return await opening
    except LogshipError as err:
        raise InvalidParameter(f"failed to initialize {what}: {err}") from None
    except Exception as err:
        log.exception("%s failed to start for container %s", what, record.short_id)
        raise LogshipError(f"failed to initialize {what}: {type(err).__name__}: {err}") from None


async def _open_reader(container: Container) -> LogDriver:
    """A fresh driver instance to read a stopped container's logs: its own driver if that can read,
    else its cache; never a remote driver (that would connect to fluentd or AWS just to read)."""
    record = container.record
    info = container_info(container)
    if getattr(registry.get(record.log_type), "can_read", False):
        return await _opening(record, "logging driver", registry.get(record.log_type).new(info))
    if cache.enabled(record.log_type, record.log_opts):
        return await _opening(record, "the dual-logging cache", cache.open_cache(info))
    raise NotImplementedByDriver("configured logging driver does not support reading")


async def read_logs(container: Container, config: ReadConfig) -> AsyncGenerator[list[Message], None]:
    """Messages from the container's reading driver: its live instance while it runs (follow works),
    otherwise a fresh instance opened just to read (no follow), as Docker does."""
    reader, config, close = await _log_reader(container, config)
    return _reading(reader.read_logs(config), close)


async def read_log_text(container: Container, config: ReadConfig) -> AsyncGenerator[list[Run], None]:
    """`read_logs` as runs of bytes (for `logs` without --details; with `config.timestamps` the
    lines carry their prefixes): straight from a `TextLogReader`, else made from the messages."""
    reader, config, close = await _log_reader(container, config)
    if isinstance(reader, TextLogReader):
        return _reading(reader.read_text(config), close)
    return _reading(as_runs(reader.read_logs(config), config.timestamps), close)


async def _log_reader(
    container: Container, config: ReadConfig
) -> tuple[LogReader, ReadConfig, Callable[[], Any] | None]:
    """The reader, the config it can serve (no follow for a stopped container's fresh instance) and
    what closes that instance."""
    record = container.record
    if record.log_type == "none":
        raise NotImplementedByDriver("configured logging driver does not support reading")
    live = container.output.router if container.output is not None else None
    reader: LogReader | None = None
    opened: LogDriver | None = None
    if live is not None:
        reader = next((d for d in live.drivers if isinstance(d, LogReader)), None)
    if reader is None:
        config = replace(config, follow=False)
        opened = await _open_reader(container)
        if not isinstance(opened, LogReader):
            await opened.close()
            raise NotImplementedByDriver("configured logging driver does not support reading")
        reader = opened
    return reader, config, opened.close if opened is not None else None


async def close_all(drivers: list[LogDriver]) -> None:
    for driver in drivers:
        try:
            await driver.close()
        except Exception:
            log.exception("closing log driver %s", driver.name)


async def _reading(items: AsyncIterator[T], close: Callable[[], Any] | None) -> AsyncGenerator[T, None]:
    try:
        async for item in items:
            yield item
    finally:
        if close is not None:
            await close()
