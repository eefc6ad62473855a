"""A driver that raises on every batch: its container's lines are counted as failed, nothing else suffers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

name = "example-explosive"


def validate_options(opts: Mapping[str, str]) -> None:
    if opts.get("explode-at-create") == "true":
        raise ZeroDivisionError("a bug in a third-party driver's option check")


class Explosive:
    name = "example-explosive"

    async def log(self, batch: Any) -> None:
        raise RuntimeError("boom: this driver fails every batch")

    async def close(self) -> None:
        pass


async def new(info: Any) -> Explosive:
    return Explosive()
