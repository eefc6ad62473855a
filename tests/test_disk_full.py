"""A full disk under json-file and local: no torn or corrupt record, one error in the daemon log (not one
per line) and one note with the counts when writing resumes, and what the container experiences:

- blocking mode (the default): its writes block until space is freed, then every line is written, in
  order, once;
- non-blocking mode: it goes on; the lines that do not fit in max-buffer-size are dropped and counted, and
  the lines missing from the file are exactly the ones counted.

The containers' directory of a test daemon is a small tmpfs (unmounted at teardown); a filler file takes
its free space and is deleted to give space back. The daemon log stays outside it, as it should in a real
deployment (or use `daemon-log: journald`)."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from tests.harness import Daemon

pytestmark = pytest.mark.integration

LINES = 100_000
PAD = "x" * 90  # ~100-byte lines: far more output than the router's 4 MiB queue and the pipe can hold
FULL = "no space left to write the log"
RESUMED = "space is available again for the log"
# The spool (crash safety) lives on the same disk: which of it and the log writer meets the full disk first
# is a race; each reports it once.
SPOOL_FULL = "no space left to spool the output"
SPOOL_RESUMED = "space is available again for the spool"


def reported_once_each(daemon_log: str, *messages: str) -> bool:
    counts = [daemon_log.count(message) for message in messages]
    return all(count <= 1 for count in counts) and sum(counts) >= 1


def numbered(count: int) -> str:
    pacing = "[ $((i % 1000)) -eq 0 ] && sleep 0.02"
    return f"i=0; while [ $i -lt {count} ]; do echo seq$i-{PAD}; i=$((i+1)); {pacing}; done; true"


def fill(directory: Path) -> Path:
    """Take every free byte of the file system holding `directory`; returns the filler to delete."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as err:
                    assert err.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def wait_until(predicate: object, what: str, timeout: float = 60) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def json_lines(path: Path) -> list[str]:
    """The `log` of every record; every line must be a whole, valid JSON record."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the file ends in a torn record"
    return [json.loads(line)["log"].rstrip("\n") for line in data.splitlines()]


def sequence(lines: list[str]) -> list[int]:
    return [int(line[3:].split("-", 1)[0]) for line in lines]


def lines_read(daemon: Daemon, container_id: str) -> int:
    return int(daemon.inspect(container_id)["LogStats"]["LinesRead"])


def start(daemon: Daemon, *opts: str) -> tuple[str, Path]:
    container_id = daemon.ok("run", "-d", *opts, "busybox", "sh", "-c", numbered(LINES)).strip()
    return container_id, daemon.data_root / "containers"


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_blocking_mode_makes_the_container_wait_and_loses_nothing(small_disk: Daemon, driver: str) -> None:
    opts = ["--log-driver", driver] + (["--log-opt", "compress=false"] if driver == "local" else [])
    container_id, disk = start(small_disk, *opts)
    wait_until(lambda: lines_read(small_disk, container_id) >= 1000, "the first lines")
    filler = fill(disk)
    try:
        wait_until(lambda: reported_once_each(small_disk.daemon_log(), FULL, SPOOL_FULL), "the disk-full error")
        # The container is held: its output stops being read while it still has lines to write.
        wait_until(lambda: lines_read(small_disk, container_id) == lines_read(small_disk, container_id), "a stall")
        held = lines_read(small_disk, container_id)
        time.sleep(1)
        assert lines_read(small_disk, container_id) == held < LINES
        assert small_disk.inspect(container_id)["State"]["Running"]
        if driver == "json-file":
            json_lines(disk / container_id / f"{container_id}-json.log")  # every record whole while full
    finally:
        filler.unlink()
    small_disk.ok("wait", container_id, timeout=120)
    logs = small_disk.ok("logs", container_id).splitlines()
    assert sequence(logs) == list(range(LINES))
    if driver == "json-file":
        assert sequence(json_lines(disk / container_id / f"{container_id}-json.log")) == list(range(LINES))
    daemon_log = small_disk.daemon_log()
    assert reported_once_each(daemon_log, FULL, SPOOL_FULL), daemon_log
    assert reported_once_each(daemon_log, RESUMED, SPOOL_RESUMED), daemon_log
    assert "none lost" in daemon_log
    stats = small_disk.inspect(container_id)["LogStats"]
    assert stats["LinesDropped"] == 0 and stats["Drivers"][0]["LinesFailed"] == 0


def test_non_blocking_mode_drops_and_counts_exactly_what_is_missing(small_disk: Daemon) -> None:
    container_id, disk = start(small_disk, "--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=1m")
    wait_until(lambda: lines_read(small_disk, container_id) >= 1000, "the first lines")
    filler = fill(disk)
    try:
        wait_until(lambda: small_disk.inspect(container_id)["LogStats"]["LinesDropped"] > 0, "dropped lines")
    finally:
        filler.unlink()
    small_disk.ok("wait", container_id, timeout=120)
    written = sequence(json_lines(disk / container_id / f"{container_id}-json.log"))
    assert written == sorted(set(written)), "what was kept is in order, once"
    stats = small_disk.inspect(container_id)["LogStats"]
    assert stats["LinesRead"] == LINES and stats["Drivers"][0]["LinesFailed"] == 0
    assert LINES - len(written) == stats["LinesDropped"] > 0
    assert reported_once_each(small_disk.daemon_log(), FULL, SPOOL_FULL), "the full disk is said once"
