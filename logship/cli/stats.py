"""`logship stats`: each container's resources and logging, live, like `docker stats`.

The default table is docker's (CPU %, memory, block I/O, pids, computed as the docker CLI computes them
from the daemon's cgroup figures) followed by a summary of logship's logging counters (lines read, and
written, dropped and failed over all the container's drivers). `--logging` shows the logging counters in
full instead, one row per container and driver, with what the container's processing did (events joined,
lines parsed, matches redacted, lines filtered).
"""

from __future__ import annotations

import calendar
import sys
import time
from typing import Any

import click

from logship.cli.common import ago, get_client, print_table
from logship.client import APIError, Client, path_quote
from logship.humanize import binary_size, human_duration, human_size

HEADERS = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "BLOCK I/O",
    "PIDS",
    "LINES",
    "WRITTEN",
    "DROPPED",
    "FAILED",
]
LOGGING_HEADERS = [
    "CONTAINER ID",
    "NAME",
    "DRIVER",
    "MODE",
    "READ",
    "WRITTEN",
    "DROPPED",
    "RETRIED",
    "FAILED",
    "PARTIAL",
    "BUFFER",
    "BACKLOG",
    "CATCH-UP",
    "LAST WRITE",
    "LAST ERROR",
    "PROCESSING",
]
CLEAR_SCREEN = "\033[2J\033[H"


def _since(iso: str) -> str:
    if not iso:
        return "-"
    seconds = calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
    return ago(seconds)


def _backlog(disk: dict[str, Any] | None) -> tuple[str, str, str]:
    """BUFFER, BACKLOG and CATCH-UP of a disk-buffered driver."""
    if not disk:
        return "-", "-", "-"
    buffer = f"{human_size(disk['Bytes'])} / {human_size(disk['Limit'])} disk"
    backlog = "-"
    if disk["Lines"] or disk["Bytes"]:
        backlog = f"{disk['Lines']} lines"
        if disk["OldestAgeSeconds"]:
            backlog += f", oldest {human_duration(int(disk['OldestAgeSeconds'] * 1e9))}"
    if disk["Pending"]:
        backlog += " (pending)" if backlog != "-" else "pending"
    rate = disk["CatchUpLinesPerSecond"]
    return buffer, backlog, f"{rate:.0f}/s" if rate else "-"


def processing_summary(processing: dict[str, Any] | None) -> str:
    """The container's processing counters in a few words (`-` without processing options)."""
    if not processing:
        return "-"
    parts = []
    if processing["EventsJoined"]:
        parts.append(f"joined {processing['EventsJoined']} ({processing['LinesJoined']} lines)")
    if processing["EventsCapped"]:
        parts.append(f"capped {processing['EventsCapped']}")
    parsed, missed = processing["LinesParsed"], processing["LinesNotParsed"]
    if parsed or missed:
        parts.append(f"parsed {parsed} of {parsed + missed}")
    if processing["MatchesRedacted"]:
        parts.append(f"redacted {processing['MatchesRedacted']}")
    if processing["LinesFiltered"]:
        parts.append(f"filtered {processing['LinesFiltered']}")
    return ", ".join(parts) or "0"


def logging_rows(info: dict[str, Any], removed: bool = False) -> list[list[str]]:
    """Per driver; `info` a container's inspect, or a pending delivery of a removed one (GET /logship/buffers)."""
    stats = info.get("LogStats") or {}
    drivers = stats.get("Drivers") or [{}]
    rows = []
    for driver in drivers:
        limit = driver.get("BufferLimit", 0)
        buffer = f"{human_size(driver.get('BufferedBytes', 0))} / {human_size(limit)}" if limit else "-"
        backlog = catch_up = "-"
        if driver.get("DiskBuffer"):
            buffer, backlog, catch_up = _backlog(driver["DiskBuffer"])
        error = driver.get("LastError", "")
        rows.append(
            [
                info["Id"][:12],
                info["Name"].lstrip("/") + (" (removed)" if removed else ""),
                driver.get("Driver") or info.get("Driver") or info["HostConfig"]["LogConfig"]["Type"],
                driver.get("Mode", "-"),
                str(stats.get("LinesRead", 0)),
                str(driver.get("LinesWritten", 0)),
                str(driver.get("LinesDropped", 0)),
                str(driver.get("LinesRetried", 0)),
                str(driver.get("LinesFailed", 0)),
                str(stats.get("PartialMessages", 0)),
                buffer,
                backlog,
                catch_up,
                _since(driver.get("LastWrite", "")),
                (error[:40] + "…") if len(error) > 41 else (error or "-"),
                processing_summary(stats.get("Processing")),
            ]
        )
    return rows


def cpu_percent(now: dict[str, Any], before: dict[str, Any]) -> float:
    """The docker CLI's calculateCPUPercentUnix between two samples' cpu_stats."""
    usage = now.get("cpu_usage", {}).get("total_usage", 0) - before.get("cpu_usage", {}).get("total_usage", 0)
    system = now.get("system_cpu_usage", 0) - before.get("system_cpu_usage", 0)
    cpus = now.get("online_cpus") or len(now.get("cpu_usage", {}).get("percpu_usage") or []) or 1
    if usage > 0 and system > 0:
        return float(usage / system * cpus * 100.0)
    return 0.0


def memory_usage(memory: dict[str, Any]) -> int:
    """Usage without the page cache that can be dropped, as the docker CLI shows it (v1 and v2 keys)."""
    usage = int(memory.get("usage", 0))
    stats = memory.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    return usage - inactive if inactive < usage else usage


def block_io(blkio: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in blkio.get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value", 0))
        elif op == "write":
            write += int(entry.get("value", 0))
    return read, write


def row(info: dict[str, Any], sample: dict[str, Any] | None, before: dict[str, Any] | None) -> list[str]:
    stats = info.get("LogStats") or {}
    drivers = stats.get("Drivers") or []
    logging = [
        str(stats.get("LinesRead", 0)),
        str(sum(d.get("LinesWritten", 0) for d in drivers)),
        str(sum(d.get("LinesDropped", 0) for d in drivers)),
        str(sum(d.get("LinesFailed", 0) for d in drivers)),
    ]
    name = [info["Id"][:12], info["Name"].lstrip("/")]
    if sample is None or not sample.get("memory_stats"):
        return [*name, "--", "-- / --", "--", "--", "--", *logging]
    cpu = cpu_percent(sample["cpu_stats"], (before or sample)["cpu_stats"] if before else sample["precpu_stats"])
    memory = sample["memory_stats"]
    used, limit = memory_usage(memory), int(memory.get("limit", 0))
    read, write = block_io(sample.get("blkio_stats") or {})
    return [
        *name,
        f"{cpu:.2f}%",
        f"{binary_size(used)} / {binary_size(limit)}",
        f"{used / limit * 100:.2f}%" if limit else "0.00%",
        f"{human_size(read)} / {human_size(write)}",
        str((sample.get("pids_stats") or {}).get("current", 0)),
        *logging,
    ]


class Watch:
    """The containers' samples across refreshes: a CPU percentage needs the previous one."""

    def __init__(self, client: Client, refs: tuple[str, ...], show_all: bool) -> None:
        self.client = client
        self.refs = refs
        self.show_all = show_all
        self.previous: dict[str, dict[str, Any]] = {}

    def targets(self) -> list[str]:
        if self.refs:
            return list(self.refs)
        listed = self.client.json("GET", "/containers/json", {"all": "1" if self.show_all else None})
        return [c["Id"] for c in listed]

    def sample(self, ref: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = self.client.json(
                "GET", f"/containers/{path_quote(ref)}/stats", {"stream": "0", "one-shot": "1"}
            )
            return data
        except APIError:
            return None

    def table(self, logging_only: bool) -> tuple[list[list[str]], list[str]]:
        rows: list[list[str]] = []
        errors: list[str] = []
        for ref in self.targets():
            try:
                info = self.client.json("GET", f"/containers/{path_quote(ref)}/json")
            except APIError as err:
                errors.append(f"Error response from daemon: {err}")
                continue
            if logging_only:
                rows += logging_rows(info)
                continue
            sample = self.sample(info["Id"])
            before = self.previous.get(info["Id"])
            if sample is not None:
                self.previous[info["Id"]] = sample
            rows.append(row(info, sample, before))
        if logging_only and self.show_all:  # and the removed containers whose lines are still on their way
            for delivery in self.client.json("GET", "/logship/buffers"):
                if delivery["Removed"]:
                    rows += logging_rows(delivery, removed=True)
        return rows, errors

    def prime(self) -> None:
        """A first sample of each container, so the first table's CPU column has something to compare."""
        for ref in self.targets():
            sample = self.sample(ref)
            if sample is not None:
                self.previous[sample["id"]] = sample


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Print the figures once and exit.")
@click.option("--logging", "logging_only", is_flag=True, help="Logging counters in full, per container and driver.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.argument("containers", nargs=-1)
def stats(show_all: bool, no_stream: bool, logging_only: bool, interval: float, containers: tuple[str, ...]) -> None:
    """Live resource usage (CPU, memory, block I/O, pids) and logging counters per container."""
    client = get_client()
    on_terminal = sys.stdout.isatty()
    watch = Watch(client, containers, show_all)
    try:
        if not logging_only:
            watch.prime()
            time.sleep(min(interval, 1.0))
        while True:
            rows, errors = watch.table(logging_only)
            if on_terminal and not no_stream:
                click.echo(CLEAR_SCREEN, nl=False)
            print_table(LOGGING_HEADERS if logging_only else HEADERS, rows)
            for error in errors:
                click.echo(error, err=True)
            if no_stream:
                if errors:
                    sys.exit(1)
                return
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return


COMMANDS = [stats]
