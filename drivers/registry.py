"""Log drivers by Docker name: the built-in ones, and third-party ones from installed packages.

A package adds a driver by declaring an entry point in the group `logship.drivers`, named after the
driver and pointing at a module (or object) with `validate_options(opts)` and `async new(info)` (see
`base.DriverFactory`); from then on it is used exactly like a built-in driver. Built-in drivers win a
name clash. Everything is imported only when first used, so the CLI and a daemon that never uses a
driver do not pay for it, and a driver that fails to import is reported (daemon log, `logship info`, the
error of the container that asked for it) without affecting any other.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import cast

from logship.drivers.base import DriverFactory
from logship.errors import InvalidParameter

ENTRY_POINT_GROUP = "logship.drivers"

log = logging.getLogger("logship.drivers")

_BUILTIN: dict[str, str] = {
    "json-file": "logship.drivers.jsonfile",
    "journald": "logship.drivers.journald",
    "fluentd": "logship.drivers.fluentd",
    "awslogs": "logship.drivers.awslogs",
    "local": "logship.drivers.local",
    "syslog": "logship.drivers.syslog",
    "gelf": "logship.drivers.gelf",
    "none": "logship.drivers.none",
}

_loaded: dict[str, DriverFactory] = {}
_failed: dict[str, str] = {}
_plugins: dict[str, EntryPoint] | None = None


@dataclass(frozen=True)
class DriverSource:
    """Where a driver comes from, for `logship info`."""

    name: str
    origin: str  # "builtin", or "<distribution> <version> (<entry point value>)"
    error: str = ""  # why it cannot be used, once that is known


def _discover() -> dict[str, EntryPoint]:
    global _plugins
    if _plugins is None:
        found: dict[str, EntryPoint] = {}
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in _BUILTIN or entry.name in found:
                log.warning(
                    "logger: log driver named '%s' is already registered; ignoring %s from %s",
                    entry.name,
                    entry.value,
                    _distribution(entry),
                )
                continue
            found[entry.name] = entry
        _plugins = found
    return _plugins


def _distribution(entry: EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown package"


def names() -> list[str]:
    return sorted({*_BUILTIN, *_discover()})


def is_registered(name: str) -> bool:
    return name in _BUILTIN or name in _discover()


def sources() -> list[DriverSource]:
    plugins = _discover()
    listing = [DriverSource(name, "builtin", _failed.get(name, "")) for name in _BUILTIN]
    listing += [
        DriverSource(name, f"{_distribution(entry)} ({entry.value})", _failed.get(name, ""))
        for name, entry in plugins.items()
    ]
    return sorted(listing, key=lambda source: source.name)


def uses_disk_buffer(name: str) -> bool:
    """Whether the driver ships off the host and so reads the spool at its own pace (`disk_buffer`)."""
    return bool(getattr(get(name), "disk_buffer", False))


def get(name: str) -> DriverFactory:
    """The factory for a driver name, or Docker's error for an unknown one."""
    if name in _loaded:
        return _loaded[name]
    if name in _failed:
        raise InvalidParameter(_failed[name])
    if name in _BUILTIN:
        factory = cast(DriverFactory, importlib.import_module(_BUILTIN[name]))
    elif name in _discover():
        factory = _load_plugin(name, _discover()[name])
    else:
        raise InvalidParameter(f"logger: no log driver named '{name}' is registered")
    _loaded[name] = factory
    return factory


def _load_plugin(name: str, entry: EntryPoint) -> DriverFactory:
    origin = f"{entry.value} from {_distribution(entry)}"
    try:
        loaded = entry.load()
    except Exception as err:
        problem = f"log driver '{name}' ({origin}) failed to load: {type(err).__name__}: {err}"
        log.exception("logger: %s", problem)
        _failed[name] = problem
        raise InvalidParameter(problem) from None
    missing = [attr for attr in ("validate_options", "new") if not callable(getattr(loaded, attr, None))]
    if missing:
        problem = (
            f"log driver '{name}' ({origin}) is not a logship driver: it lacks {', '.join(missing)} "
            "(see the driver contract in logship.drivers.base)"
        )
        log.error("logger: %s", problem)
        _failed[name] = problem
        raise InvalidParameter(problem)
    log.info("logger: loaded third-party log driver '%s' (%s)", name, origin)
    return cast(DriverFactory, loaded)
