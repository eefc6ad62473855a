"""A daemon that starts again finds its containers where the last one left them (live restore).

A running container is reattached (its supervisor held the output FIFOs while no daemon read them), or,
when it ended meanwhile, its last output is written and its exit recorded before the API answers. A
stopped container whose drivers had not written everything it spooled gets the rest written now. The
container manager calls these from `load`; restart policies then apply (`logship.daemon.restarting`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from logship.daemon import logsource, monitor, restarting
from logship.daemon.container import ContainerRecord
from logship.daemon.drain import DRAIN_TIMEOUT_S
from logship.daemon.handle import Container
from logship.errors import LogshipError
from logship.pipeline.acknowledging import repair_log_files
from logship.pipeline.spool import has_spool
from logship.runtime import spawn

if TYPE_CHECKING:
    from logship.daemon.containers import ContainerManager

log = logging.getLogger("logship.containers")


async def load(manager: ContainerManager) -> None:
    """Every container of the data root, running ones reattached; then restart policies apply."""
    manager.root.mkdir(parents=True, exist_ok=True)
    found = []
    for directory in sorted(manager.root.iterdir()):
        try:
            record = ContainerRecord.load(directory)
        except FileNotFoundError:
            continue  # a create interrupted before its record was written
        except Exception as err:
            log.error("skipping container directory %s: its record is unreadable: %s", directory, err)
            continue
        container = Container(record, directory)
        manager._containers[record.id] = container
        manager._names[record.name] = record.id
        found.append(container)
    # Running containers hold their addresses and ports again before anything can start or end.
    await manager.network.restore(found)
    for container in found:
        if container.record.state.running:
            await restore(manager, container)
        elif has_spool(container.dir):
            await replay_spool(manager, container)
    await manager.pending.load(manager.live_stats)
    restarting.apply_at_daemon_start(manager)


async def restore(manager: ContainerManager, container: Container) -> None:
    """A container recorded as running: reattach to it, or record how it ended while no daemon ran."""
    record = container.record
    for note in repair_log_files(container.dir):
        log.warning("container %s: %s; it is written again from the spool", record.short_id, note)
    process = spawn.reattach(container.dir)
    if process is None:
        status = await spawn.collect_exit(container.dir)
        code = spawn.read_exit_code(container.dir)
        record.state.status = "exited"
        record.state.exit_code = status.exit_code
        record.state.oom_killed = status.oom_killed
        if code is None:
            record.state.error = "the container ended while the daemon was down and its exit code was lost"
        record.state.finished_ns = time.time_ns()
        container.process_exited.set()
        container.stopped.set()
        await manager.network.release(container)
        container.save()
        log.info("container %s ended while the daemon was down (exit code %s)", record.short_id, code)
        if has_spool(container.dir):
            await replay_spool(manager, container)
        return
    try:
        drivers = await logsource.open_drivers(container)
    except LogshipError as err:
        log.error("container %s: cannot reopen its log drivers after restart: %s", record.short_id, err)
        drivers = []
    if process.output_lost:
        log.error("container %s: its output cannot be read after the restart: %s", record.short_id, process.output_lost)
    monitor.run(manager, container, process, drivers, restored=True)
    if process.init_pid:
        log.info("reattached to running container %s (pid %d)", record.short_id, process.init_pid)
        return
    # It ended while the daemon was away; its supervisor kept the output. Write that out and record the
    # exit before the API answers, so that `ps -a` and `logs` are right from the first request.
    log.info("container %s ended while the daemon was down; writing out its last output", record.short_id)
    try:
        await asyncio.wait_for(container.stopped.wait(), DRAIN_TIMEOUT_S)
    except TimeoutError:
        log.error("container %s: its last output is still being written", record.short_id)


async def replay_spool(manager: ContainerManager, container: Container) -> None:
    """A container that is not running but whose drivers had not written all it spooled (the daemon
    was killed after its output ended): write the rest now (what a disk-buffered driver has not delivered
    goes on as a pending delivery)."""
    record = container.record
    for note in repair_log_files(container.dir):
        log.warning("container %s: %s; it is written again from the spool", record.short_id, note)
    try:
        drivers = await logsource.open_drivers(container)
    except LogshipError as err:
        log.error("container %s: cannot open its log drivers to write its last output: %s", record.short_id, err)
        return
    container.output = manager.output_for(container, drivers, spooled=True, restored=True)
    await container.output.replay()
    await manager.close_output(container)
    container.save()
    log.info("container %s: wrote out the output it left when the daemon was killed", record.short_id)
