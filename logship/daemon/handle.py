"""The daemon's handle on one container: its record, and what exists only while the daemon runs.

The record (`logship.daemon.container`) is what is persisted; this adds the live parts: the runtime
process, the output feeding its log drivers, attachments, the events `wait`, `stop` and `start` wait on,
and the tasks of its current run. Its own module, apart from the manager (`logship.daemon.containers`),
so that the modules acting on a container (restore, restarting, monitor, logsource, the API) can build
and type one without importing the manager.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from logship.daemon.attach import Attachments, StdinPipe
from logship.daemon.container import ContainerRecord
from logship.daemon.output import Output
from logship.runtime import spawn


@dataclass
class Container:
    record: ContainerRecord
    dir: Path
    process: spawn.Process | None = None
    output: Output | None = None  # its logging while its logs are open (kept between a policy's runs)
    attachments: Attachments = field(default_factory=Attachments)
    stdin: StdinPipe | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    process_exited: asyncio.Event = field(default_factory=asyncio.Event)  # the main process is gone
    stopped: asyncio.Event = field(default_factory=asyncio.Event)  # ... and its logs are flushed
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)  # set while a run is live
    exit_count: int = 0  # runs ended since the daemon started, for wait(condition=next-exit)
    exit_event: asyncio.Event = field(default_factory=asyncio.Event)  # set (and replaced) at each exit
    monitor: asyncio.Task[None] | None = None
    copiers: list[asyncio.Task[None]] = field(default_factory=list)
    pending_restart: asyncio.Task[None] | None = None  # a policy restart waiting out its back-off
    backoff_s: float = 0.0  # the last back-off delay; in memory only, as in dockerd
    # Docker's cancelled restart manager: the user stopped this run, so its exit is not followed by a
    # restart whatever the policy. Cleared at every start.
    restart_called_off: bool = False
    manual_restart: bool = False  # `restart` is stopping it to start it again: no --rm removal in between

    def __post_init__(self) -> None:
        if not self.record.state.running:
            self.process_exited.set()
            self.stopped.set()

    @property
    def id(self) -> str:
        return self.record.id

    def save(self) -> None:
        self.record.save(self.dir)

    def signal_exit(self) -> None:
        """A run ended (or the container went): wake whoever waits for the next exit."""
        self.exit_count += 1
        event, self.exit_event = self.exit_event, asyncio.Event()
        event.set()
