"""Which cgroup files get which values, how the hierarchy is found, and what happens when it cannot be used."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from logship.errors import InvalidParameter
from logship.runtime import cgroups
from logship.runtime.cgroups import Limits, Setting

MiB = 1024 * 1024


def test_memory_on_v1_sets_the_limit_and_twice_as_much_memory_plus_swap() -> None:
    assert cgroups.settings_for(1, Limits(memory=64 * MiB), with_swap=True) == [
        Setting("memory", "memory.limit_in_bytes", str(64 * MiB), "--memory"),
        Setting("memory", "memory.memsw.limit_in_bytes", str(128 * MiB), "--memory"),
    ]
    assert cgroups.settings_for(1, Limits(memory=64 * MiB), with_swap=False) == [
        Setting("memory", "memory.limit_in_bytes", str(64 * MiB), "--memory"),
    ]


def test_memory_on_v2_sets_max_and_as_much_swap_again() -> None:
    assert cgroups.settings_for(2, Limits(memory=64 * MiB), with_swap=True) == [
        Setting("memory", "memory.max", str(64 * MiB), "--memory"),
        Setting("memory", "memory.swap.max", str(64 * MiB), "--memory"),
    ]


def test_nano_cpus_become_a_quota_per_100ms_period() -> None:
    assert cgroups.settings_for(1, Limits(nano_cpus=1_500_000_000), with_swap=False) == [
        Setting("cpu", "cpu.cfs_period_us", "100000", "--cpus"),
        Setting("cpu", "cpu.cfs_quota_us", "150000", "--cpus"),
    ]
    assert cgroups.settings_for(2, Limits(nano_cpus=10_000_000), with_swap=False) == [
        Setting("cpu", "cpu.max", "1000 100000", "--cpus"),
    ]


def test_pids_limit_sets_pids_max_and_zero_or_negative_means_unlimited() -> None:
    assert cgroups.settings_for(2, Limits(pids_limit=100), with_swap=False) == [
        Setting("pids", "pids.max", "100", "--pids-limit"),
    ]
    assert cgroups.settings_for(1, Limits(pids_limit=-1), with_swap=True) == []
    assert cgroups.settings_for(1, Limits(), with_swap=True) == []


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (Limits(memory=5 * MiB), "Minimum memory limit allowed is 6MB"),
        (Limits(nano_cpus=3_000_000_000), "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        (Limits(nano_cpus=-1), "Range of CPUs is from 0.01 to 2.00"),
    ],
)
def test_limits_docker_refuses_are_refused_with_dockers_message(limits: Limits, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        cgroups.validate_limits(limits, cpu_count=2)


def test_limits_within_range_are_accepted() -> None:
    cgroups.validate_limits(Limits(memory=6 * MiB, nano_cpus=2_000_000_000, pids_limit=1), cpu_count=2)


HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_a_hybrid_host_uses_the_v1_hierarchies(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(HYBRID)
    hierarchy = cgroups.discover(tmp_path / "mountinfo")
    assert hierarchy.version == 1
    assert hierarchy.roots == {
        "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),  # for its counters (stats)
        "memory": Path("/sys/fs/cgroup/memory"),
        "pids": Path("/sys/fs/cgroup/pids"),
    }


def test_a_unified_host_uses_v2(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text("25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert cgroups.discover(tmp_path / "mountinfo").version == 2


def test_mount_points_with_escaped_spaces_are_decoded(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text("35 31 0:32 / /cg\\040root/memory rw - cgroup cgroup rw,memory\n")
    assert cgroups.discover(tmp_path / "mountinfo").roots["memory"] == Path("/cg root/memory")


def test_a_saved_cgroup_round_trips_through_json() -> None:
    cgroup = cgroups.Cgroup(1, {"memory": "/sys/fs/cgroup/memory/logship/x", "pids": "/sys/fs/cgroup/pids/logship/x"})
    assert cgroups.Cgroup.from_json(cgroup.to_json()) == cgroup


# --- on the real cgroup filesystems of this machine ----------------------------------------------------

REAL_V1 = cgroups.discover()
needs_v1 = pytest.mark.skipif(
    os.geteuid() != 0 or REAL_V1.version != 1 or not {"memory", "pids", "cpu"} <= REAL_V1.roots.keys(),
    reason="needs root and the v1 memory, pids and cpu hierarchies",
)
UNIFIED = Path("/sys/fs/cgroup/unified")
needs_empty_v2 = pytest.mark.skipif(
    os.geteuid() != 0 or not (UNIFIED / "cgroup.procs").exists() or "memory" in cgroups.v2_hierarchy(UNIFIED).roots,
    reason="needs root and a cgroup2 mount at /sys/fs/cgroup/unified without the memory controller",
)


@pytest.fixture
def container_id(request: pytest.FixtureRequest) -> Iterator[str]:
    name = "test-" + request.node.name.replace("[", "-").replace("]", "")[:60]
    yield name
    for root in {*REAL_V1.roots.values(), UNIFIED}:
        leftover = root / cgroups.PARENT / name
        if leftover.exists():
            leftover.rmdir()


@needs_v1
def test_create_writes_the_limits_and_remove_deletes_every_directory(container_id: str) -> None:
    cgroup = cgroups.create(container_id, Limits(memory=32 * MiB, pids_limit=7, nano_cpus=500_000_000))
    try:
        assert cgroup.read("memory", "memory.limit_in_bytes") == str(32 * MiB)
        assert cgroup.read("pids", "pids.max") == "7"
        assert cgroup.read("cpu", "cpu.cfs_quota_us") == "50000"
        assert sorted(cgroup.procs_files()) == sorted(
            str(root / cgroups.PARENT / container_id / "cgroup.procs") for root in REAL_V1.roots.values()
        )
    finally:
        assert cgroup.remove() == []
    assert not any((root / cgroups.PARENT / container_id).exists() for root in REAL_V1.roots.values())


@needs_v1
def test_a_leftover_directory_of_an_earlier_run_does_not_keep_its_limits(container_id: str) -> None:
    cgroups.create(container_id, Limits(memory=32 * MiB))  # never removed, as if the daemon had crashed
    again = cgroups.create(container_id, Limits())
    try:
        assert int(again.read("memory", "memory.limit_in_bytes")) > 32 * MiB
    finally:
        again.remove()


@needs_v1
def test_a_limit_whose_controller_is_not_mounted_is_an_error_naming_the_flag(container_id: str) -> None:
    without_pids = cgroups.Hierarchy(1, {name: root for name, root in REAL_V1.roots.items() if name != "pids"})
    with pytest.raises(cgroups.CgroupError, match="cannot apply --pids-limit: the cgroup v1 'pids' controller"):
        cgroups.create(container_id, Limits(pids_limit=5), without_pids)
    assert not (REAL_V1.roots["memory"] / cgroups.PARENT / container_id).exists()  # nothing left behind


@needs_v1
def test_a_value_the_kernel_refuses_is_an_error_naming_the_file_and_the_flag(container_id: str) -> None:
    with pytest.raises(cgroups.CgroupError) as raised:
        cgroups.create(container_id, Limits(nano_cpus=1))  # a 0 µs quota
    assert "cannot apply --cpus: writing 0 to" in str(raised.value)
    assert "cpu.cfs_quota_us failed: Invalid argument" in str(raised.value)
    assert not any((root / cgroups.PARENT / container_id).exists() for root in REAL_V1.roots.values())


@pytest.fixture
def read_only_cgroup_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "ro"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(root)], check=True)
    yield root
    subprocess.run(["umount", str(root)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only filesystem")
def test_an_unwritable_cgroup_filesystem_fails_only_when_a_limit_is_asked_for(read_only_cgroup_root: Path) -> None:
    hierarchy = cgroups.Hierarchy(1, {"memory": read_only_cgroup_root})
    with pytest.raises(cgroups.CgroupError) as raised:
        cgroups.create("abc", Limits(memory=32 * MiB), hierarchy)
    message = str(raised.value)
    assert message.startswith("cannot apply --memory: creating cgroup ")
    assert str(read_only_cgroup_root / "logship" / "abc") in message and "Read-only file system" in message
    # Without limits the container just runs outside any cgroup of its own.
    assert cgroups.create("abc", Limits(), hierarchy).dirs == {}


@needs_empty_v2
def test_v2_without_the_controller_runs_unlimited_but_refuses_a_limit(container_id: str) -> None:
    hierarchy = cgroups.v2_hierarchy(UNIFIED)
    cgroup = cgroups.create(container_id, Limits(), hierarchy)
    try:
        assert cgroup.version == 2
        assert cgroup.procs_files() == [str(UNIFIED / cgroups.PARENT / container_id / "cgroup.procs")]
        assert Path(cgroup.procs_files()[0]).exists()
        assert cgroup.oom_kills() == 0
    finally:
        assert cgroup.remove() == []
    with pytest.raises(cgroups.CgroupError, match="cannot apply --memory: the cgroup v2 hierarchy at") as raised:
        cgroups.create(container_id, Limits(memory=32 * MiB), hierarchy)
    assert "'memory' controller" in str(raised.value)
    assert not (UNIFIED / cgroups.PARENT / container_id).exists()
