"""`top`: the processes running in a container, as dockerd lists them.

Like dockerd, it runs the host's `ps` with the caller's arguments (`-ef` by default) and keeps the rows
whose PID is one of the container's processes (`logship.runtime.procs`), first asking `ps` for just those
pids (`-q`), then, for options that cannot go with `-q`, for everything.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING, Any

from logship.errors import Conflict, InvalidParameter, LogshipError
from logship.runtime.procs import pids_of

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager
    from logship.daemon.handle import Container

DEFAULT_PS_ARGS = "-ef"


async def top(manager: ContainerManager, container: Container, ps_args: str) -> dict[str, Any]:
    process = container.process if container.record.state.running else None
    result = await list_processes(process.init_pid if process is not None else 0, container.id, ps_args)
    manager.event(container, "top")
    return result


async def list_processes(init_pid: int, container_id: str, ps_args: str) -> dict[str, Any]:
    if not init_pid:
        raise Conflict(f"Container {container_id} is not running")
    ps = shutil.which("ps")
    if ps is None:
        raise LogshipError("cannot list a container's processes: `ps` (procps) is not installed on this host")
    args = (ps_args or DEFAULT_PS_ARGS).split()
    pids = await asyncio.to_thread(pids_of, init_pid)
    if not pids:
        raise Conflict(f"Container {container_id} is not running")
    code, output, errors = await _run(ps, *args, "-q", ",".join(map(str, pids)))
    if code != 0:  # some options (f, ...) cannot go with -q: all processes, filtered below
        code, output, errors = await _run(ps, *args)
    if code != 0:
        raise LogshipError(f"Error running ps: exit status {code}: {errors.strip()}")
    return parse_ps(output, set(pids))


async def _run(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    """dockerd's parsePSOutput: titles from the header; each row split into as many fields as there are
    titles (the last one, the command, keeps its spaces); rows of other processes dropped."""
    lines = output.splitlines()
    if not lines:
        raise InvalidParameter("ps printed nothing: check ps_args")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidParameter("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes = []
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split(None, len(titles) - 1)
        try:
            pid = int(fields[pid_index])
        except (IndexError, ValueError):
            raise InvalidParameter(f"Unexpected pid '{fields[pid_index : pid_index + 1]}' in ps output") from None
        if pid in pids:
            processes.append(fields)
    return {"Processes": processes, "Titles": titles}
