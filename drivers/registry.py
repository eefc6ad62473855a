"""Log drivers by Docker name. Built-in drivers are imported only when first used, so the CLI and a
daemon that never uses a driver do not pay for importing it."""

from __future__ import annotations

import importlib
from typing import cast

from logship.drivers.base import DriverFactory
from logship.errors import InvalidParameter

_BUILTIN: dict[str, str] = {
    "json-file": "logship.drivers.jsonfile",
    "journald": "logship.drivers.journald",
    "fluentd": "logship.drivers.fluentd",
    "awslogs": "logship.drivers.awslogs",
    "none": "logship.drivers.none",
}

_loaded: dict[str, DriverFactory] = {}


def names() -> list[str]:
    return sorted(_BUILTIN)


def is_registered(name: str) -> bool:
    return name in _BUILTIN


def get(name: str) -> DriverFactory:
    """The factory for a driver name, or Docker's error for an unknown one."""
    if name in _loaded:
        return _loaded[name]
    if name not in _BUILTIN:
        raise InvalidParameter(f"logger: no log driver named '{name}' is registered")
    factory = cast(DriverFactory, importlib.import_module(_BUILTIN[name]))
    _loaded[name] = factory
    return factory
