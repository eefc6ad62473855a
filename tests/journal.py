"""A real systemd-journald for the tests.

systemd is not PID 1 on these machines, but `/lib/systemd/systemd-journald` runs standalone and serves
`/run/systemd/journal/socket`. If a journald already answers there it is used as it is; otherwise one is
started here and stopped again by `stop()`, so a test run leaves no journald it started.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
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
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
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
