"""A real systemd-journald for the tests.

systemd is not PID 1 on these machines, but `/lib/systemd/systemd-journald` runs standalone and serves
`/run/systemd/journal/socket`. If a journald already answers there it is used as it is; otherwise one is
started here and stopped again by `stop()`, so a test run leaves no journald it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOURNALD = Path("/lib/systemd/systemd-journald")
SOCKET = Path("/run/systemd/journal/socket")


def journal_answers() -> bool:
    if not SOCKET.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(str(SOCKET))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def journal_problem() -> str:
    """Why these tests cannot use a journal here, or "" when they can."""
    if journal_answers():
        return ""
    if not JOURNALD.exists():
        return f"needs {JOURNALD} (apt-get install systemd)"
    if shutil.which("journalctl") is None:
        return "needs journalctl (apt-get install systemd)"
    try:
        import systemd.journal  # noqa: F401
    except ImportError:
        return "needs systemd-python (pip install 'logship[journald]')"
    return ""


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a journald this module started (it flushes and goes), SIGKILL after 15 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Journald:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if journal_answers():
            return
        self.process = subprocess.Popen([str(JOURNALD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not journal_answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("systemd-journald did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def restart(self) -> None:
        """Stop the journald this test started (or the running one) and start a fresh one."""
        if self.process is None:
            raise RuntimeError("only a journald started by the tests can be restarted")
        self.stop()
        self.start()


def entries(match: str, timeout: float = 10.0, count: int = 1) -> list[dict[str, Any]]:
    """`journalctl -o json <match>`, waiting until at least `count` entries are there (journald
    writes asynchronously). Binary field values come back as lists of byte values, as journalctl prints."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            ["journalctl", "--no-pager", "--all", "-o", "json", match], capture_output=True, check=True
        )
        found = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def message_bytes(entry: dict[str, Any]) -> bytes:
    value = entry["MESSAGE"]
    return bytes(value) if isinstance(value, list) else str(value).encode()


class PrivateJournald:
    """A systemd-journald of its own, in a mount namespace of its own, with persistent storage on a tmpfs.

    What a rootless daemon's journald driver writes lands in the user journal: journald files each entry
    under the sender's uid, and keeps a journal file per user (SplitMode=uid, the default) that it opens to
    that user with an ACL. A standalone journald does that only for persistent storage, which it uses after
    a flush (what systemd-journal-flush.service asks at boot, SIGUSR1 here); before that it keeps a single
    runtime journal that only root (or group systemd-journal) may read. So the rootless tests run a
    journald whose /var/log/journal is a tmpfs, flushed, in a namespace where /run/systemd and /run/log
    are tmpfs too: it never meets the machine's journal nor the one the other tests share. `enter()`
    runs a command (a daemon, journalctl) in that namespace.
    """

    SETUP = (
        "set -e; mount -t tmpfs -o mode=755 tmpfs /run/systemd; mkdir /run/systemd/journal; "
        "mount -t tmpfs -o mode=755 tmpfs /run/log; mount -t tmpfs -o mode=755 tmpfs /var/log; "
        "mkdir -m 2755 /var/log/journal; exec " + str(JOURNALD)
    )

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        """Its namespace's view of the filesystem, from the host."""
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/root")

    def enter(self) -> list[str]:
        assert self.process is not None
        return ["nsenter", f"--mount=/proc/{self.process.pid}/ns/mnt", "--"]

    def start(self) -> None:
        for directory in ("/run/systemd", "/run/log"):  # mount points; empty on a machine without systemd
            Path(directory).mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", self.SETUP],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        socket_path = self.root / "run/systemd/journal/socket"
        self._wait(lambda: self._is_journald() and socket_path.exists() and self._takes(signal.SIGUSR1), "its socket")
        machine_id = Path("/etc/machine-id").read_text().strip()
        persistent = self.root / f"var/log/journal/{machine_id}/system.journal"

        def flushed() -> bool:
            if not persistent.exists():  # asked again until done: one early request can go unanswered
                assert self.process is not None
                self.process.send_signal(signal.SIGUSR1)  # flush: from now on, persistent storage
                time.sleep(0.1)
            return persistent.exists()

        self._wait(flushed, "the flush")

    def _is_journald(self) -> bool:
        """Past the shell that mounts its tmpfs (whose /run would still show the host's socket)."""
        assert self.process is not None
        try:
            return os.readlink(f"/proc/{self.process.pid}/exe") == str(JOURNALD.resolve())
        except OSError:
            return False

    def _takes(self, sig: int) -> bool:
        """journald handles `sig` (through a signalfd: blocked, not caught); before that it would kill it."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        masks = [int(line.split()[1], 16) for line in status if line.startswith(("SigBlk:", "SigCgt:"))]
        return any(mask >> (sig - 1) & 1 for mask in masks)

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 15
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the private systemd-journald did not get to {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        terminate(self.process)
        self.process = None
