"""Memory, pids and CPU limits on real containers: written where Docker writes them, and enforced.

Real cgroups, real busybox: these tests need root, writable cgroups and /bin/busybox from busybox-static.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from logship.runtime import cgroups
from tests.rootfs import Containers, build_busybox_rootfs, container_problem, read_line, read_to_eof, run, run_scenario

MiB = 1024 * 1024


def _limits_problem() -> str:
    if container_problem():
        return container_problem()
    hierarchy = cgroups.discover()
    if not {"memory", "pids", "cpu"} <= hierarchy.roots.keys():
        return "needs the memory, pids and cpu cgroup controllers"
    if not all(os.access(root, os.W_OK) for root in hierarchy.roots.values()):
        return "needs writable cgroups"
    return ""


pytestmark = [pytest.mark.integration, pytest.mark.skipif(bool(_limits_problem()), reason=_limits_problem() or "ok")]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("image") / "rootfs")


def test_the_limits_are_written_where_docker_writes_them(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> dict[str, str]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(
                ["sh", "-c", "echo ready; read x"],
                open_stdin=True,
                memory=32 * MiB,
                pids_limit=50,
                nano_cpus=1_500_000_000,
            )
            assert await read_line(process.stdout_fd) == b"ready\n"
            cgroup = process.cgroup
            assert cgroup is not None
            seen = {"version": str(cgroup.version)}
            if cgroup.version == 1:
                for controller, filename in [
                    ("memory", "memory.limit_in_bytes"),
                    ("memory", "memory.memsw.limit_in_bytes"),
                    ("cpu", "cpu.cfs_quota_us"),
                    ("cpu", "cpu.cfs_period_us"),
                    ("pids", "pids.max"),
                ]:
                    if (Path(cgroup.dirs[controller]) / filename).exists():
                        seen[filename] = cgroup.read(controller, filename)
                seen["in_cgroup"] = str(process.init_pid in _pids_in(Path(cgroup.dirs["pids"])))
            else:
                for controller, filename in [("memory", "memory.max"), ("cpu", "cpu.max"), ("pids", "pids.max")]:
                    seen[filename] = cgroup.read(controller, filename)
            assert process.stdin_fd is not None
            process.close_stdin()
            await process.wait()
            return seen

    seen = run_scenario(scenario())
    if seen["version"] == "1":
        assert seen["memory.limit_in_bytes"] == str(32 * MiB)
        assert seen.get("memory.memsw.limit_in_bytes", str(64 * MiB)) == str(64 * MiB)
        assert (seen["cpu.cfs_quota_us"], seen["cpu.cfs_period_us"]) == ("150000", "100000")
        assert seen["pids.max"] == "50"
        assert seen["in_cgroup"] == "True"
    else:
        assert (seen["memory.max"], seen["cpu.max"], seen["pids.max"]) == (str(32 * MiB), "150000 100000", "50")


def _pids_in(directory: Path) -> set[int]:
    return {int(pid) for pid in (directory / "cgroup.procs").read_text().split()}


def test_a_memory_hog_is_oom_killed_and_reported(rootfs: Path, tmp_path: Path) -> None:
    result = run(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], rootfs, tmp_path, memory=16 * MiB)
    assert result.exit.exit_code == 137
    assert result.exit.oom_killed


def test_an_oom_kill_of_a_child_is_reported_even_when_the_container_exits_0(rootfs: Path, tmp_path: Path) -> None:
    script = "dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived"
    result = run(["sh", "-c", script], rootfs, tmp_path, memory=16 * MiB)
    assert result.stdout == b"survived\n"
    assert result.exit.exit_code == 0 and result.exit.oom_killed


def test_a_container_within_its_memory_limit_is_not_reported_as_oom_killed(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "echo small"], rootfs, tmp_path, memory=16 * MiB)
    assert result.exit.exit_code == 0 and not result.exit.oom_killed


def test_a_fork_bomb_stops_at_the_pids_limit(rootfs: Path, tmp_path: Path) -> None:
    # Only shell builtins after the bomb: the container is at its limit and cannot fork more.
    script = "(for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done); echo bomb-exit=$?; read x"

    async def scenario() -> tuple[bytes, bytes, str, int]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["sh", "-c", script], open_stdin=True, pids_limit=5)
            assert process.stderr_fd is not None and process.cgroup is not None
            line = await read_line(process.stdout_fd)
            errors = await read_line(process.stderr_fd)
            running = len(_pids_in(Path(process.cgroup.dirs["pids"])))
            pids_max = process.cgroup.read("pids", "pids.max")
            process.close_stdin()
            await asyncio.gather(read_to_eof(process.stdout_fd), read_to_eof(process.stderr_fd), process.wait())
            return line, errors, pids_max, running

    line, errors, pids_max, running = run_scenario(scenario())
    assert line == b"bomb-exit=2\n"  # the subshell died when fork failed
    assert b"can't fork" in errors
    assert pids_max == "5"
    assert running == 4  # the shell and three sleeps; the subshell that was the fifth is gone


def test_a_cpu_quota_throttles_a_busy_loop(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[int, str]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["sh", "-c", "while :; do :; done"], nano_cpus=100_000_000)
            cgroup = process.cgroup
            assert cgroup is not None
            quota = cgroup.read("cpu", "cpu.cfs_quota_us" if cgroup.version == 1 else "cpu.max")
            for _ in range(600):  # a guard against hanging, not a measure of speed
                throttled = _throttled_periods(cgroup.read("cpu", "cpu.stat"))
                if throttled:
                    return throttled, quota
                await asyncio.sleep(0.05)
            return 0, quota

    throttled, quota = run_scenario(scenario())
    assert quota.split()[0] == "10000"
    assert throttled > 0


def _throttled_periods(cpu_stat: str) -> int:
    for line in cpu_stat.splitlines():
        key, _, value = line.partition(" ")
        if key == "nr_throttled":
            return int(value)
    return 0


def test_the_cgroup_is_removed_after_the_container_exits(rootfs: Path, tmp_path: Path) -> None:
    container_id = "f" * 64
    run(["true"], rootfs, tmp_path, container_id=container_id, memory=16 * MiB, pids_limit=10)
    for root in cgroups.discover().roots.values():
        assert not (root / cgroups.PARENT / container_id).exists()
