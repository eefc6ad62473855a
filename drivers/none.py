"""The `none` driver: output is read (so the container never blocks) and discarded; `logs` is refused."""

from __future__ import annotations

from collections.abc import Mapping

from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Batch

name = "none"


def validate_options(opts: Mapping[str, str]) -> None:
    """Docker accepts any option for `none` and ignores it."""


class NoneDriver:
    name = "none"

    async def log(self, batch: Batch) -> None:
        pass

    async def close(self) -> None:
        pass


async def new(info: ContainerInfo) -> NoneDriver:
    return NoneDriver()
