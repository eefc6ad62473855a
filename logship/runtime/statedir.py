"""The files of a container's state directory, named once for the daemon's side of the runtime.

Everything the daemon needs about a running container is here, so a restarted daemon can find it again
(`logship.runtime.process.reattach`):

    init.json      what init needs (written by the daemon before start)
    process.json   supervisor and init pids with start times, pty master fd, cgroup (daemon, after start)
    status.fifo    init -> daemon: `{"pid": ...}`, then EOF on exec or an error line
    stdout.fifo, stderr.fifo, stdin.fifo    the container's streams (no FIFOs with a tty: a pty instead)
    release.fifo   daemon -> supervisor: the output FIFOs are drained, stop holding them (see Process.release)
    spool/         the daemon's: output between the FIFOs and the log drivers (logship.pipeline.spool)
    exitcode       the command's exit status, written by the supervisor when it ends
    supervisor.log what sh, unshare or Python printed outside the container (start failures)
    hostname, hosts, resolv.conf            bind-mounted into the container's /etc
    diff/, work/, merged/                   the container's private overlay layer and its mount point
"""

from __future__ import annotations

import os
from pathlib import Path

INIT_JSON = "init.json"
PROCESS_JSON = "process.json"
STATUS_FIFO = "status.fifo"
STDOUT_FIFO = "stdout.fifo"
STDERR_FIFO = "stderr.fifo"
STDIN_FIFO = "stdin.fifo"
RELEASE_FIFO = "release.fifo"  # daemon -> supervisor: every byte of the output FIFOs is spooled, you may go
EXITCODE = "exitcode"
SUPERVISOR_LOG = "supervisor.log"


def read_or(path: Path, default: str) -> str:
    try:
        return path.read_text()
    except OSError:
        return default


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    write_bytes_atomically(path, text.encode(), mode)


def write_bytes_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with open(fd, "wb") as file:
        file.write(data)
    os.chmod(temporary, mode)  # an older leftover keeps its mode through O_CREAT
    os.replace(temporary, path)
