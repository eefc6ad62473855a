"""The container's stdin, stdout and stderr as the daemon opens them: FIFOs, or a pty with a tty.

The daemon keeps the read ends (and stdin's write end); the supervisor inherits what it must hold for
the container's whole life and what it passes on to init. All fds handed to the daemon are non-blocking.
A pty master reports EIO once the container side is closed: that is its EOF.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logship import paths
from logship.runtime.statedir import RELEASE_FIFO, STDERR_FIFO, STDIN_FIFO, STDOUT_FIFO

# The fds supervisor.sh uses itself (release.fifo, and the FIFO write ends it opens for init). No fd the
# daemon passes to it may have these numbers, so passed fds are moved to 10 and above.
SUPERVISOR_STDOUT_FD = 8
SUPERVISOR_STDERR_FD = 9
LOWEST_PASSED_FD = 10
F_SETPIPE_SZ = 1031


@dataclass
class Streams:
    """The fds of one start: the daemon keeps some, the supervisor gets others."""

    stdout: int  # daemon: FIFO read end or pty master
    stderr: int | None
    stdin: int | None
    child_stdin: int  # the numbers init finds the container's stdio under (init.json's stdio_fds)
    child_stdout: int
    child_stderr: int
    held: tuple[int, ...]  # inherited by the supervisor and kept for the container's whole life
    child_only: tuple[int, ...]  # passed on to init; the daemon closes its copies once the supervisor runs
    pty_master: int | None = None

    def child_stdio(self) -> tuple[int, int, int]:
        return (self.child_stdin, self.child_stdout, self.child_stderr)

    def close_child_ends(self) -> None:
        for fd in self.child_only:
            os.close(fd)

    def close_all(self) -> None:
        self.close_child_ends()
        for fd in {self.stdout, self.stderr, self.stdin}:
            if fd is not None:
                os.close(fd)


def open_streams(state_dir: Path, tty: bool, open_stdin: bool) -> Streams:
    """Every fd is at LOWEST_PASSED_FD or above: Popen puts the supervisor's log on 0/1/2 and the supervisor
    uses 7-9 itself; neither may clobber ours."""
    opened: list[int] = []

    def keep(fd: int) -> int:
        fd = above_low_fds(fd)
        opened.append(fd)
        return fd

    try:
        return _open_streams_into(keep, state_dir, tty, open_stdin)
    except BaseException:
        for fd in opened:  # failed halfway (EMFILE, a vanished state dir): close what was opened
            os.close(fd)
        raise


def _open_streams_into(keep: Callable[[int], int], state_dir: Path, tty: bool, open_stdin: bool) -> Streams:
    if tty:
        master, slave = (keep(fd) for fd in os.openpty())  # both non-inheritable
        os.set_blocking(master, False)
        return Streams(
            stdout=master,
            stderr=None,
            stdin=master if open_stdin else None,
            child_stdin=slave,
            child_stdout=slave,
            child_stderr=slave,
            held=(master,),
            child_only=(slave,),
            pty_master=master,
        )
    release = state_dir / RELEASE_FIFO
    release.unlink(missing_ok=True)
    os.mkfifo(release, 0o600)
    stdout_read = keep(fresh_fifo_reader(state_dir / STDOUT_FIFO))
    stderr_read = keep(fresh_fifo_reader(state_dir / STDERR_FIFO))
    for fd in (stdout_read, stderr_read):
        _enlarge_pipe(fd)
    # The write ends are opened by the supervisor for init alone (see supervisor.sh), so that the daemon
    # reads EOF once the container's processes are gone although the supervisor still holds read ends.
    if open_stdin:
        stdin_read = keep(fresh_fifo_reader(state_dir / STDIN_FIFO))
        stdin_write = keep(os.open(state_dir / STDIN_FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        os.set_blocking(stdin_read, True)  # the container's reads must block
        stdin: int | None = stdin_write
    else:
        stdin_read = keep(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        stdin = None
    return Streams(
        stdout=stdout_read,
        stderr=stderr_read,
        stdin=stdin,
        child_stdin=stdin_read,
        child_stdout=SUPERVISOR_STDOUT_FD,
        child_stderr=SUPERVISOR_STDERR_FD,
        held=(stdout_read, stderr_read),
        child_only=(stdin_read,),
    )


def fresh_fifo_reader(path: Path) -> int:
    """A new FIFO (an old one may still have a reader of a previous run), opened for reading."""
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)
    return above_low_fds(open_fifo(path, os.O_RDONLY))


def above_low_fds(fd: int) -> int:
    """Move an fd to LOWEST_PASSED_FD or above: below are the supervisor's own (0-2: its log, 7-9: see
    supervisor.sh); a daemon started with closed stdio even gets 0-2 from open()."""
    if fd >= LOWEST_PASSED_FD:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, LOWEST_PASSED_FD)
    os.close(fd)
    return moved


def open_fifo(path: Path, mode: int) -> int:
    return os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC)


def reopen_stdin(state_dir: Path) -> int | None:
    try:
        return open_fifo(state_dir / STDIN_FIFO, os.O_WRONLY)
    except OSError as err:
        if err.errno in (errno.ENXIO, errno.ENOENT):  # the container no longer reads its stdin
            return None
        raise


ROOTLESS_PIPES = 256  # a rootless daemon's share of its user's pipe budget: 128 containers' stdout and stderr


def _enlarge_pipe(fd: int) -> None:
    """As large as the system allows (pipe-max-size): the container blocks less while we are busy.

    Not for a rootless daemon: the kernel counts an ordinary user's pipe buffers against
    fs.pipe-user-pages-soft (64 MiB), and past it gives every new pipe of that user two pages, its shells'
    pipelines included. So each of its streams gets 1/256th of the budget (256 KiB by default), and a user
    with more than 128 containers still has pipes of the default size."""
    try:
        size = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        if paths.rootless():
            budget = int(Path("/proc/sys/fs/pipe-user-pages-soft").read_text()) * os.sysconf("SC_PAGE_SIZE")
            size = min(size, budget // ROOTLESS_PIPES) if budget else size
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except (OSError, ValueError):
        pass  # keep the default size; the container just blocks sooner
