"""A container's run: its started (or re-found) process wired to the copiers, router and log drivers,
and the monitor task that ends the run.

The monitor waits for the exit, lets the copiers drain the pipes (bounded, see `logship.daemon.drain`),
records the exit code, then either keeps the drivers open for the restart its policy decides
(`logship.daemon.restarting`) or closes them, and removes a --rm container. Apart from the manager
(`logship.daemon.containers`), which starts runs and stops them, because this is the one place a run's
output and exit are followed from beginning to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from logship.daemon import restart, restarting
from logship.daemon.attach import StdinPipe
from logship.daemon.drain import DRAIN_TIMEOUT_S, EXIT_FLUSH_REASON, release_when_drained
from logship.daemon.handle import Container
from logship.daemon.output import Output
from logship.drivers.base import LogDriver
from logship.errors import LogshipError
from logship.pipeline.message import STDERR, STDOUT
from logship.pipeline.router import DEFAULT_FLUSH_TIMEOUT_S
from logship.runtime import spawn

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager

log = logging.getLogger("logship.containers")


def run(
    manager: ContainerManager,
    container: Container,
    process: spawn.Process,
    drivers: list[LogDriver],
    restored: bool = False,
) -> None:
    """Wire a started (or re-found, `restored`) process to its copiers, router and monitor."""
    record = container.record
    state = record.state
    if state.status != "running":
        state.started_ns = time.time_ns()
        state.finished_ns = 0
        state.exit_code = 0
        state.error = ""
        state.oom_killed = False
    state.status = "running"
    state.pid = process.init_pid
    container.process = process
    container.process_exited = asyncio.Event()
    container.stopped = asyncio.Event()
    if container.output is None:  # else kept from the previous run by a policy restart
        # A pty is not a pipe: its output cannot be spliced, nor replayed.
        container.output = manager.output_for(container, drivers, spooled=not process.tty, restored=restored)
    if process.stdin_fd is not None:
        stdin_once = bool(record.config.get("StdinOnce"))
        container.stdin = StdinPipe(process.stdin_fd, on_eof=process.close_stdin if stdin_once else None)
    container.save()
    container.started.set()
    container.monitor = asyncio.get_running_loop().create_task(
        _monitor(manager, container, process, container.output), name=f"monitor-{record.short_id}"
    )


async def _monitor(manager: ContainerManager, container: Container, process: spawn.Process, output: Output) -> None:
    record = container.record
    router = output.router

    def count_bytes(n: int) -> None:
        record.log_stats.bytes_read += n

    streams: list[tuple[int | None, str]] = [(process.stdout_fd, STDOUT)]
    if process.stderr_fd is not None:
        streams.append((process.stderr_fd, STDERR))
    spool = output.spool
    if spool is not None and process.output_lost:  # the fds read nothing: only what the spool already holds
        streams = [(None, name) for _, name in streams]
    container.copiers = copiers = output.copy(streams, container.attachments.publish, count_bytes, record.short_id)
    if spool is not None:
        releasing = asyncio.create_task(release_when_drained(record.short_id, process, output))
    try:
        status = await process.wait()
    except Exception as err:  # the runtime lost track of the process: record it, never stay "running"
        log.exception("container %s: waiting for its exit failed", record.short_id)
        status = spawn.ExitStatus(spawn.EXIT_UNKNOWN, False)
        record.state.error = f"lost track of the container's process: {err}"
    finally:
        if spool is not None:
            releasing.cancel()
    container.process_exited.set()
    await manager.network.release(container)
    # One bound from the exit on: the copiers drain the pipes (and the spool) into the router, then the
    # router flushes, all within DEFAULT_FLUSH_TIMEOUT_S plus the drivers' close grace. A driver stuck past
    # it must not hold `stop` longer: the copiers stop waiting for it and count what it missed. (With a
    # spool, _release_when_drained has already applied the bound while the pipes drained.)
    flush_deadline = time.monotonic() + DEFAULT_FLUSH_TIMEOUT_S
    done, pending = await asyncio.wait(copiers, timeout=0 if router.given_up else DEFAULT_FLUSH_TIMEOUT_S)
    if pending:
        router.give_up_waiting(EXIT_FLUSH_REASON)
        more, pending = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT_S)
        done |= more
    for task in pending:
        log.error("container %s: output still open %ss after exit; closing it", record.short_id, DRAIN_TIMEOUT_S)
        task.cancel()
    for task in done:
        if task.exception() is not None:
            log.error("container %s: reading its output failed: %s", record.short_id, task.exception())
    restarts = restarting.restarts_after_exit(manager, container, status.exit_code)
    if restarts:
        router.resume_waiting()
        # The drivers stay open for the next run. Let them write this run's last lines first, so that
        # `logs` read after the exit is complete.
        await router.wait_idle(DRAIN_TIMEOUT_S)
        # A stop may have come meanwhile.
        restarts = restarting.restarts_after_exit(manager, container, status.exit_code)
    if not restarts:
        await manager.close_output(container, 1.0 if router.given_up else max(1.0, flush_deadline - time.monotonic()))
    container.attachments.close()
    container.started.clear()
    container.stdin = None
    process.close_fds()
    state = record.state
    state.exit_code = status.exit_code
    state.oom_killed = status.oom_killed
    state.finished_ns = time.time_ns()
    state.pid = 0
    container.process = None
    if restarts:
        ran_for_s = (state.finished_ns - state.started_ns) / 1e9
        container.backoff_s = restart.next_delay(container.backoff_s, ran_for_s)
        record.restart_count += 1
        state.status = "restarting"
    else:
        state.status = "exited"
    container.save()
    dropped = record.log_stats.lines_dropped
    log.info(
        "container %s exited with code %d%s%s",
        record.short_id,
        status.exit_code,
        f"; {dropped} log lines were dropped by the non-blocking buffer" if dropped else "",
        f"; restart {record.restart_count} in {container.backoff_s:g}s by its restart policy" if restarts else "",
    )
    if status.oom_killed:
        manager.event(container, "oom")
    manager.event(container, "die", exitCode=str(status.exit_code))
    container.stopped.set()
    container.signal_exit()
    if restarts:
        restarting.schedule_restart(manager, container, container.backoff_s)
    elif record.host_config.get("AutoRemove") and not container.manual_restart:
        try:
            await manager.remove(container, force=False, volumes=True)
        except LogshipError as err:
            log.error("auto-removing container %s failed: %s", record.short_id, err)
