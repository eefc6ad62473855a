"""Rootless building blocks that need no user: the ids a user may map, the maps asked for, where a rootless
daemon's cgroups can go, and the owners an image's files get in its namespace."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from logship.errors import InvalidParameter
from logship.runtime import cgroupdelegation, cgroups, tarmeta
from logship.runtime.cgroups import Limits
from logship.runtime.userns import IdRange, Mapping, planned_mapping, subordinate_ranges


def test_subordinate_ranges_are_found_by_name_or_uid_in_file_order(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text(
        "alice:100000:65536\n"
        "bob:165536:65536\n"
        "1001:300000:1000\n"  # alice again, by number
        "alice:oops:10\n"  # malformed: skipped, as shadow's tools skip it
        "alice:400000:0\n"  # empty
        "# a comment\n"
    )
    assert subordinate_ranges(subuid, "alice", 1001) == [(100000, 65536), (300000, 1000)]
    assert subordinate_ranges(subuid, "carol", 1003) == []
    assert subordinate_ranges(tmp_path / "missing", "alice", 1001) == []


def test_the_user_is_root_and_its_ranges_follow_one_after_another() -> None:
    mapping = planned_mapping(1001, 1002, [(100000, 65536), (300000, 1000)], [(200000, 10)])
    assert mapping.uids == (IdRange(0, 1001, 1), IdRange(1, 100000, 65536), IdRange(65537, 300000, 1000))
    assert mapping.gids == (IdRange(0, 1002, 1), IdRange(1, 200000, 10))
    assert not mapping.single
    assert mapping.maps_uid(0) and mapping.maps_uid(66536) and not mapping.maps_uid(66537)
    assert mapping.describe() == "uids 0-66536, gids 0-10"
    assert [str(line) for line in mapping.uids][:2] == ["0 1001 1", "1 100000 65536"]


def test_without_both_ranges_only_the_users_own_ids_are_mapped() -> None:
    for subuids, subgids in (([], []), ([(100000, 65536)], [])):
        mapping = planned_mapping(1001, 1001, subuids, subgids)
        assert mapping == Mapping((IdRange(0, 1001, 1),), (IdRange(0, 1001, 1),))
        assert mapping.single and mapping.describe() == "0"


MOUNTINFO = "41 31 0:38 / {root} rw,relatime - cgroup2 cgroup2 rw\n"


def fake_hierarchy(tmp_path: Path, controllers: str, own: str = "/user.slice/app") -> tuple[Path, Path, Path]:
    """A cgroup v2 tree in plain directories: (root, mountinfo, /proc/self/cgroup)."""
    root = tmp_path / "cgroup"
    directory = root / own.lstrip("/")
    directory.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    for name in ("cgroup.procs", "cgroup.subtree_control"):
        (directory / name).write_text("")
    (directory / "cgroup.controllers").write_text(controllers + "\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO.format(root=root))
    self_cgroup = tmp_path / "self-cgroup"
    self_cgroup.write_text(f"0::{own}\n")
    return directory, mountinfo, self_cgroup


def test_a_delegated_subtree_offers_its_controllers(tmp_path: Path) -> None:
    directory, mountinfo, self_cgroup = fake_hierarchy(tmp_path, "cpu memory pids")
    delegation = cgroupdelegation.discover(mountinfo, self_cgroup)
    assert delegation.directory == directory and delegation.problem == ""
    hierarchy = delegation.hierarchy()
    assert hierarchy.unified_root == directory and set(hierarchy.roots) == {"cpu", "memory", "pids"}
    assert cgroups.refusal(Limits(memory=64 << 20, pids_limit=10, nano_cpus=10**9), hierarchy) == ""


def test_a_restarted_daemon_in_its_leaf_finds_the_same_subtree(tmp_path: Path) -> None:
    directory, mountinfo, self_cgroup = fake_hierarchy(tmp_path, "memory pids cpu")
    (directory / cgroupdelegation.DAEMON_LEAF).mkdir()
    self_cgroup.write_text(f"0::/user.slice/app/{cgroupdelegation.DAEMON_LEAF}\n")
    assert cgroupdelegation.discover(mountinfo, self_cgroup).directory == directory


def test_a_missing_controller_is_named_with_what_would_give_it(tmp_path: Path) -> None:
    _, mountinfo, self_cgroup = fake_hierarchy(tmp_path, "memory")
    hierarchy = cgroupdelegation.discover(mountinfo, self_cgroup).hierarchy()
    assert cgroups.refusal(Limits(memory=64 << 20), hierarchy) == ""
    refused = cgroups.refusal(Limits(pids_limit=5, nano_cpus=10**9), hierarchy)
    assert refused.startswith("cannot apply --pids-limit, --cpus: the delegated cgroup")
    assert "not offered the pids, cpu controllers (its cgroup.controllers: memory)" in refused
    assert "Delegate=" in refused and refused.endswith("or run without --pids-limit, --cpus")


def test_no_subtree_means_no_cgroup_and_every_limit_refused(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n")
    delegation = cgroupdelegation.discover(mountinfo, tmp_path / "unused")
    assert delegation.directory is None and "no cgroup v2 hierarchy" in delegation.problem
    hierarchy = delegation.hierarchy()
    assert cgroups.create("abc", Limits(), hierarchy).dirs == {}  # runs without a cgroup of its own
    with pytest.raises(cgroups.CgroupError, match=r"^cannot apply --memory: this machine has no cgroup v2"):
        cgroups.create("abc", Limits(memory=64 << 20), hierarchy)


def test_a_hybrid_hosts_empty_v2_hierarchy_is_explained(tmp_path: Path) -> None:
    directory, mountinfo, self_cgroup = fake_hierarchy(tmp_path, "hugetlb")
    (tmp_path / "cgroup" / "cgroup.controllers").write_text("hugetlb\n")
    delegation = cgroupdelegation.discover(mountinfo, self_cgroup)
    assert delegation.directory == directory  # the containers' cgroups still go there, without limits
    assert (
        "has none of the memory, pids and cpu controllers" in delegation.problem and "cgroup v1" in delegation.problem
    )


def metadata_with(mapping: Mapping) -> tarmeta.Metadata:
    metadata = tarmeta.Metadata()
    metadata.mapping = mapping  # as inside a rootless daemon's namespace
    return metadata


def member(uid: int, gid: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo("srv/data")
    info.uid, info.gid = uid, gid
    return info


def test_in_a_single_id_namespace_every_file_belongs_to_root() -> None:
    metadata = metadata_with(planned_mapping(1001, 1001, [], []))
    assert metadata.owner_of(member(1000, 50)) == (0, 0)


def test_with_a_range_owners_are_kept_and_unmapped_ones_refused_by_name() -> None:
    metadata = metadata_with(planned_mapping(1001, 1001, [(100000, 65536)], [(100000, 65536)]))
    assert metadata.owner_of(member(1000, 50)) == (1000, 50)
    with pytest.raises(InvalidParameter, match=r"'srv/data': it belongs to uid 70000, gid 0, .* \(ids 0-65536\)"):
        metadata.owner_of(member(70000, 0))
