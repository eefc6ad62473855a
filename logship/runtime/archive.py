"""`cp` on the daemon's side: runs `archiveworker` in the container's root and streams its tar.

Nothing is held in memory beyond a chunk: `get` hands the worker's tar on as it comes, `put` feeds the
request body into the worker as it arrives (the pipe's back-pressure paces the upload).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from logship.errors import Conflict, InvalidParameter, LogshipError, NotFound
from logship.runtime import spawn

CHUNK = 1 << 20
_ERRORS: dict[int, type[LogshipError]] = {400: InvalidParameter, 404: NotFound, 409: Conflict}


@dataclass(frozen=True)
class Root:
    """Where a container's files are: a running one's live root, or a stopped one's overlay layers."""

    container: str  # as the user named it, for messages
    live_root: str = ""  # /proc/<pid 1>/root
    overlay: tuple[str, str, str, str] = ("", "", "", "")  # lower (the image), upper, work, mount point

    def argv(self, *args: str) -> list[str]:
        worker = [sys.executable, "-P", "-s", "-m", "logship.runtime.archiveworker", "--container", self.container]
        if self.live_root:
            return [*worker, "--root", self.live_root, *args]
        unshare = shutil.which("unshare", path=spawn.SUPERVISOR_ENV["PATH"])
        if unshare is None:
            raise LogshipError("cannot copy files of a stopped container: `unshare` (util-linux) is not installed")
        return [unshare, "--mount", "--propagation", "private", "--", *worker, "--overlay", *self.overlay, *args]


async def _spawn(root: Root, *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *root.argv(*args),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_WORKER_ENV,
    )


# The worker imports logship and zstandard from where this daemon does, which `-I` would not (a user's
# `pip install --user`, a PYTHONPATH): it gets this process's path explicitly, in an environment of
# nothing else, and ignores the user site (-s) and the directory it starts in (-P), as -I would.
_WORKER_ENV = {**spawn.SUPERVISOR_ENV, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}


async def _answer(process: asyncio.subprocess.Process) -> dict[str, Any]:
    """The worker's next JSON line; its error as the matching LogshipError."""
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        await process.wait()
        detail = (await process.stderr.read()).decode(errors="replace").strip() if process.stderr else ""
        raise LogshipError(f"copying failed: the worker exited with status {process.returncode}: {detail[-500:]}")
    message: dict[str, Any] = json.loads(line)
    if "error" in message:
        await process.wait()
        raise _ERRORS.get(int(message.get("status", 500)), LogshipError)(str(message["error"]))
    return message


async def _finish(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()


async def stat(root: Root, path: str) -> dict[str, Any]:
    process = await _spawn(root, "stat", path)
    try:
        return dict((await _answer(process))["stat"])
    finally:
        await _finish(process)


async def get(root: Root, path: str) -> tuple[dict[str, Any], AsyncGenerator[bytes, None]]:
    """The path's stat, and its tar as chunks (the worker is stopped when the chunks are abandoned)."""
    process = await _spawn(root, "get", path)
    try:
        info = dict((await _answer(process))["stat"])
    except BaseException:
        await _finish(process)
        raise

    async def chunks() -> AsyncGenerator[bytes, None]:
        assert process.stdout is not None
        try:
            while data := await process.stdout.read(CHUNK):
                yield data
            await process.wait()
            if process.returncode:
                raise LogshipError(f"copying out of the container failed (status {process.returncode})")
        finally:
            await _finish(process)

    return info, chunks()


async def put(
    root: Root, path: str, body: AsyncIterator[bytes], owner: tuple[int, int] | None, no_overwrite_dir_non_dir: bool
) -> None:
    args = ["put", path]
    if owner is not None:
        args[:0] = ["--owner", f"{owner[0]}:{owner[1]}"]
    if no_overwrite_dir_non_dir:
        args[:0] = ["--no-overwrite-dir-non-dir"]
    process = await _spawn(root, *args, stdin=True)
    assert process.stdin is not None
    try:
        await _answer(process)  # the extraction point exists and is a directory
        try:
            async for chunk in body:
                process.stdin.write(chunk)
                await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker stopped reading: it says why below
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.close()
        await _answer(process)  # {"done": true}
    finally:
        await _finish(process)
