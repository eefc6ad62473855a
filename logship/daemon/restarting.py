"""Restart policies acting on the manager's containers: after an exit, when the user stops a container
that waits out its back-off, and when the daemon starts.

The rules themselves (which exit restarts, the back-off) are plain functions in `logship.daemon.restart`;
this module schedules and calls off the restarts they decide.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from logship.daemon import restart

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager
    from logship.daemon.handle import Container

log = logging.getLogger("logship.containers")


def restarts_after_exit(manager: ContainerManager, container: Container, exit_code: int) -> bool:
    if manager._shutting_down or container.restart_called_off or container.manual_restart:
        return False
    if container.removed.is_set():
        return False
    record = container.record
    policy = restart.Policy.of(record.host_config)
    return restart.restarts_after_exit(policy, exit_code, record.restart_count, record.manually_stopped)


def schedule_restart(manager: ContainerManager, container: Container, delay_s: float) -> None:
    container.pending_restart = asyncio.get_running_loop().create_task(
        _restart_later(manager, container, delay_s), name=f"restart-{container.record.short_id}"
    )


async def _restart_later(manager: ContainerManager, container: Container, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    record = container.record
    try:
        await manager._start(container, by_policy=True)
    except Exception as err:  # recorded on the container; nothing else waits for this task
        log.error("container %s: the restart by its restart policy failed: %s", record.short_id, err)
        async with container.lock:
            if not record.state.restarting:
                return  # _start recorded the failure (the runtime refused the command)
            await manager._close_drivers(container, [])
            record.state.status = "exited"
            record.state.error = f"restart failed: {err}"
            container.save()
        container.signal_exit()


async def call_off_restart(manager: ContainerManager, container: Container) -> bool:
    """Stop a container that waits out its restart back-off, for good (stop, kill, rm -f): its drivers
    close, which also ends `logs -f`. False when its restart is already under way: the caller then
    deals with the new run."""
    record = container.record
    async with container.lock:
        if not record.state.restarting:
            return False
        note_user_stop(manager, container)
        if container.pending_restart is not None:
            container.pending_restart.cancel()
            container.pending_restart = None
        await manager._close_drivers(container, [])
        record.state.status = "exited"
        container.save()
    log.info("container %s: its pending restart was called off", record.short_id)
    container.signal_exit()
    return True


def note_user_stop(manager: ContainerManager, container: Container) -> None:
    """Docker's ExitOnNext: this run's end is not followed by a policy restart, and `unless-stopped`
    remembers the stop across daemon restarts (a stop by the daemon's own shutdown does not count)."""
    container.restart_called_off = True
    if not manager._shutting_down and not container.record.manually_stopped:
        container.record.manually_stopped = True
        container.save()


def apply_at_daemon_start(manager: ContainerManager) -> None:
    """After loading: resume the restarts that were pending when the daemon went away, and start again
    the stopped containers whose policy says so (dockerd does both when it starts)."""
    for container in manager._containers.values():
        record = container.record
        state = record.state
        policy = restart.Policy.of(record.host_config)
        if container.pending_restart is not None:
            continue  # reattached, it ended while the daemon was away, and its exit scheduled the restart
        if not state.restarting:
            if state.status != "exited" or not restart.restarts_at_daemon_start(
                policy, state.exit_code, record.restart_count, record.manually_stopped, bool(state.started_ns)
            ):
                continue
            state.status = "restarting"
            container.save()
        log.info("container %s: starting it again (restart policy %s)", record.short_id, policy.name)
        schedule_restart(manager, container, 0.0)
