"""`example`: writes each line, upper-cased and prefixed with its stream, to a file named by the
`example-path` option. It cannot read back, so logship keeps a local cache for `logs` (dual logging)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

name = "example"


def validate_options(opts: Mapping[str, str]) -> None:
    from logship.drivers.options import reject_unknown

    reject_unknown(name, opts, {"example-path"})
    if "example-path" not in opts:
        from logship.errors import InvalidParameter

        raise InvalidParameter("the example driver needs --log-opt example-path=/some/file")


class ExampleDriver:
    name = "example"

    def __init__(self, path: str) -> None:
        self._file = open(path, "ab")  # noqa: SIM115 - held until close()

    async def log(self, batch: Any) -> None:
        data = b"".join(f"{batch.stream}: ".encode() + line.upper() + b"\n" for line in batch.lines)
        await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()

    async def close(self) -> None:
        self._file.close()


async def new(info: Any) -> ExampleDriver:
    return ExampleDriver(info.config["example-path"])
