"""Resource statistics (`docker stats`): cgroup v1 and v2 counters in dockerd's shapes, the docker CLI's
table drawn from them, and `logship stats` showing them beside the logging counters."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logship.runtime import cgroupstats
from logship.runtime.cgroups import Cgroup
from tests.harness import Daemon, docker_ok, needs_docker

GiB = 1 << 30

# ---- reading the cgroup files (the formats the kernel writes) -------------------------------------------


def write_files(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def test_cgroup_v2_counters_in_dockerds_v2_shape(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\n"
            "throttled_usec 30\n",
            "memory.current": "1048576\n",
            "memory.max": "max\n",
            "memory.stat": "anon 4096\nfile 8192\ninactive_file 4096\n",
            "pids.current": "3\n",
            "pids.max": "max\n",
            "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        },
    )
    cgroup = Cgroup(2, {"unified": str(tmp_path), "memory": str(tmp_path), "pids": str(tmp_path), "io": str(tmp_path)})
    figures = cgroupstats.read(cgroup, host_memory=4 * GiB)
    assert figures["cpu_stats"] == {
        "cpu_usage": {"total_usage": 2_500_000, "usage_in_kernelmode": 500_000, "usage_in_usermode": 2_000_000},
        "throttling_data": {"periods": 4, "throttled_periods": 1, "throttled_time": 30_000},
    }
    assert figures["memory_stats"] == {
        "usage": 1048576,
        "stats": {"anon": 4096, "file": 8192, "inactive_file": 4096},
        "limit": 4 * GiB,  # "max": the machine's memory, as dockerd reports it
    }
    assert figures["pids_stats"] == {"current": 3}
    blkio = figures["blkio_stats"]
    assert blkio["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096},
        {"major": 8, "minor": 0, "op": "write", "value": 8192},
    ]
    assert [e["value"] for e in blkio["io_serviced_recursive"]] == [1, 2]


def test_cgroup_v1_counters_in_dockerds_v1_shape(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    write_files(
        tmp_path / "cpuacct",
        {"cpuacct.usage": "300\n", "cpuacct.usage_percpu": "100 200 \n", "cpuacct.stat": f"user {ticks}\nsystem 0\n"},
    )
    write_files(tmp_path / "cpu", {"cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"})
    write_files(
        tmp_path / "memory",
        {
            "memory.usage_in_bytes": "65536\n",
            "memory.max_usage_in_bytes": "131072\n",
            "memory.limit_in_bytes": "67108864\n",
            "memory.failcnt": "0\n",
            "memory.stat": "cache 8192\nrss 57344\ntotal_inactive_file 4096\n",
        },
    )
    write_files(tmp_path / "pids", {"pids.current": "2\n", "pids.max": "50\n"})
    write_files(
        tmp_path / "blkio",
        {"blkio.throttle.io_service_bytes_recursive": "8:0 Read 512\n8:0 Write 1024\nTotal 1536\n"},
    )
    dirs = {name: str(tmp_path / name) for name in ("cpuacct", "cpu", "memory", "pids", "blkio")}
    figures = cgroupstats.read(Cgroup(1, dirs), host_memory=4 * GiB)
    assert figures["cpu_stats"]["cpu_usage"] == {
        "total_usage": 300,
        "percpu_usage": [100, 200],
        "usage_in_kernelmode": 0,
        "usage_in_usermode": 1_000_000_000,  # one second of ticks
    }
    memory = figures["memory_stats"]
    assert (memory["usage"], memory["max_usage"], memory["limit"]) == (65536, 131072, 67108864)
    assert memory["stats"]["total_inactive_file"] == 4096 and "failcnt" not in memory
    assert figures["pids_stats"] == {"current": 2, "limit": 50}
    assert figures["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 512},
        {"major": 8, "minor": 0, "op": "Write", "value": 1024},
    ]
    assert figures["blkio_stats"]["sectors_recursive"] == []  # a file the host lacks: empty, not an error


def test_the_hosts_cpu_time_is_read_as_dockerd_reads_it() -> None:
    system_ns, cpus = cgroupstats.system_cpu()
    assert system_ns > 0 and cpus >= 1


# ---- through the real clients ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy(shared_daemon: Daemon) -> Iterator[None]:
    shared_daemon.ok("run", "-d", "--name", "st_busy", "--memory", "64m", "busybox", "sh", "-c", "while :; do :; done")
    shared_daemon.ok("run", "-d", "--name", "st_idle", "busybox", "sh", "-c", "echo a; echo b; sleep 300")
    shared_daemon.ok("create", "--name", "st_created", "busybox", "true")
    time.sleep(0.5)
    yield
    shared_daemon.ok("rm", "-f", "st_busy", "st_idle", "st_created")


def table(text: str) -> list[dict[str, str]]:
    """A docker-style table: columns start where their header starts."""
    header, *lines = text.splitlines()
    starts = [match.start() for match in re.finditer(r"(?<!\S)\S+(?: \S+)*", header)]
    names = [header[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {name: line[start:end].strip() for name, start, end in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines
    ]


@pytest.mark.integration
@needs_docker
def test_docker_stats_draws_its_table_with_and_without_names(shared_daemon: Daemon, busy: None) -> None:
    rows = {row["NAME"]: row for row in table(docker_ok(shared_daemon, "stats", "--no-stream"))}
    assert set(rows) == {"st_busy", "st_idle"}  # the running containers, as with dockerd
    busy_row = rows["st_busy"]
    assert float(busy_row["CPU %"].rstrip("%")) > 1.0  # a busy loop, measured between two samples
    used, limit = busy_row["MEM USAGE / LIMIT"].split(" / ")
    assert limit == "64MiB" and used.endswith(("B", "KiB", "MiB")) and busy_row["PIDS"] == "1"
    assert float(rows["st_idle"]["MEM %"].rstrip("%")) < 1.0
    named = table(docker_ok(shared_daemon, "stats", "--no-stream", "--format", "table {{.Name}}\t{{.PIDs}}", "st_idle"))
    assert named == [{"NAME": "st_idle", "PIDS": "1"}]
    stopped = table(docker_ok(shared_daemon, "stats", "--no-stream", "st_created"))
    assert stopped[0]["CPU %"] == "0.00%" and stopped[0]["PIDS"] == "0"


@pytest.mark.integration
def test_the_stats_stream_carries_the_previous_samples_cpu(shared_daemon: Daemon, busy: None) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        stream = client.api.stats("st_busy", stream=True, decode=True)
        first, second = next(stream), next(stream)
        stream.close()
        assert first["precpu_stats"]["cpu_usage"]["total_usage"] == 0  # nothing before the first
        assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == first["read"]
        assert second["cpu_stats"]["cpu_usage"]["total_usage"] > first["cpu_stats"]["cpu_usage"]["total_usage"]
        assert second["name"] == "/st_busy" and second["pids_stats"]["current"] == 1
        once = client.api.stats("st_busy", stream=False, one_shot=True)
        assert once["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and once["memory_stats"]["limit"] == 64 << 20
    finally:
        client.close()


@pytest.mark.integration
def test_logship_stats_shows_resources_beside_the_logging_counters(shared_daemon: Daemon, busy: None) -> None:
    rows = {row["NAME"]: row for row in table(shared_daemon.ok("stats", "--no-stream"))}
    idle = rows["st_idle"]
    assert idle["MEM USAGE / LIMIT"].count(" / ") == 1 and idle["PIDS"] == "1"
    assert (idle["LINES"], idle["WRITTEN"], idle["DROPPED"], idle["FAILED"]) == ("2", "2", "0", "0")
    detailed = {row["NAME"]: row for row in table(shared_daemon.ok("stats", "--no-stream", "--logging"))}
    assert detailed["st_idle"]["DRIVER"] == "json-file" and detailed["st_idle"]["MODE"] == "blocking"
    everything = {row["NAME"] for row in table(shared_daemon.ok("stats", "--no-stream", "-a"))}
    assert "st_created" in everything
    api = json.loads(shared_daemon.ok("inspect", "st_idle"))[0]["LogStats"]
    assert api["LinesRead"] == 2  # the logging counters stay where they were
