"""`-v`, `--mount` and `--tmpfs` as dockerd reads them: what each becomes (the mount points `inspect`
shows) and dockerd's messages for what it refuses. The docker CLI's own `--mount` parser is logship's
CLI's too. Mounts in real containers: tests/test_volumes.py."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from logship.cli import runflags
from logship.daemon import mounts
from logship.errors import InvalidParameter


def public(raw: str) -> dict[str, object]:
    """What inspect shows of a mount point: its capitalized (Docker) keys."""
    return {key: value for key, value in mounts.parse_bind(raw).items() if key[:1].isupper()}


def test_a_bind_and_a_named_volume_look_as_in_dockerd_inspect() -> None:
    assert public("/srv/conf:/conf:ro") == {
        "Type": "bind",
        "Source": "/srv/conf",
        "Destination": "/conf",
        "Mode": "ro",
        "RW": False,
        "Propagation": "rprivate",
    }
    assert public("/srv/data/:/data/") == {
        "Type": "bind",
        "Source": "/srv/data",
        "Destination": "/data",
        "Mode": "",
        "RW": True,
        "Propagation": "rprivate",
    }
    assert public("cache:/var/cache") == {
        "Type": "volume",
        "Name": "cache",
        "Source": "",  # filled in when the volume is created
        "Destination": "/var/cache",
        "Driver": "local",
        "Mode": "z",
        "RW": True,
        "Propagation": "",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (":/x", "invalid volume specification: ':/x'"),
        ("/x:rw", "invalid volume specification: '/x:rw'"),
        ("/a:/b:rw:extra", "invalid volume specification: '/a:/b:rw:extra'"),
        ("/a:/b:bogus", "invalid mode: bogus"),
        ("/a:/b:ro,rw", "invalid mode: ro,rw"),
        ("/a:/", "destination can't be '/'"),
        ("/a:relative", "invalid mount path: 'relative' mount path must be absolute"),
        ("../etc:/x", '"../etc" includes invalid characters for a local volume name'),
        ("a/b:/x", "If you intended to pass a host directory, use absolute path"),
        ("/x:ro", "invalid volume specification: '/x:ro'"),
        ("/a:/b:rshared", "bind propagation 'rshared' is not supported by logship"),
        ("/a:/proc/sys", '"/proc/sys" cannot be mounted because it is inside /proc'),
    ],
)
def test_bad_binds_get_dockerds_messages(raw: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace(")", r"\)")):
        mounts.parse_bind(raw)


def test_a_mount_bind_source_must_exist_but_a_v_source_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(
        InvalidParameter, match=f'invalid mount config for type "bind": bind source path does not exist: {missing}'
    ):
        mounts.parse_mount({"Type": "bind", "Source": str(missing), "Target": "/x"})
    point = mounts.parse_bind(f"{missing}:/x")
    assert not missing.exists()
    mounts.runtime_mounts([point])
    assert missing.is_dir()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"Type": "bind", "Target": "/x"}, 'invalid mount config for type "bind": field Source must not be empty'),
        ({"Type": "volume", "Source": "v"}, 'invalid mount config for type "volume": field Target must not be empty'),
        (
            {"Type": "volume", "Target": "/x", "ReadOnly": True},
            "must not set ReadOnly mode when using anonymous volumes",
        ),
        ({"Type": "volume", "Target": "/x", "BindOptions": {}}, "field BindOptions must not be specified"),
        (
            {"Type": "tmpfs", "Source": "x", "Target": "/x"},
            'invalid mount config for type "tmpfs": field Source must not be specified',
        ),
        ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Options": [["suid"]]}}, "invalid option: suid"),
        ({"Type": "floppy", "Target": "/x"}, "mount type unknown"),
        ({"Type": "volume", "Source": "x/../../y", "Target": "/x"}, "includes invalid characters"),
    ],
)
def test_bad_mounts_get_dockerds_messages(spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        mounts.parse_mount(spec)


def test_tmpfs_options_become_flags_and_data_with_dockers_defaults() -> None:
    point = mounts.parse_mount(
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4 << 20, "Mode": 0o1770}}
    )
    assert point["data"] == "mode=1770,size=4m"
    assert point["flags"] == mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC
    (tmpfs,) = mounts.parse_tmpfs({"/run": "rw,exec,size=64m"})
    assert tmpfs["flags"] == mounts.MS_NOSUID | mounts.MS_NODEV and tmpfs["data"] == "size=64m"
    with pytest.raises(InvalidParameter, match="invalid tmpfs option 'colour=red' for /run"):
        mounts.parse_tmpfs({"/run": "colour=red"})


def test_a_target_given_twice_is_a_duplicate_mount_point_and_image_volumes_yield() -> None:
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /data"):
        mounts.parse_all({"Binds": ["/a:/data"], "Tmpfs": {"/data": ""}}, None, [])
    points = mounts.parse_all({"Binds": ["/a:/data"]}, {"/data": {}, "/cache": {}}, ["/logs"])
    assert [(p["Type"], p["Destination"]) for p in points] == [
        ("bind", "/data"),
        ("volume", "/logs"),
        ("volume", "/cache"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("type=bind,source=/a", "target is required"),
        ("type=bind,src=/a,dst=/b,colour=red", "unexpected key 'colour' in 'colour=red'"),
        ("type=bind,src=/a,dst=/b,bogus", "invalid field 'bogus' must be a key=value pair"),
        ("type=bind,src=/a,dst=/b,volume-nocopy", "cannot mix 'volume-\\*' options with mount type 'bind'"),
        ("type=volume,dst=/b,tmpfs-size=1m", "cannot mix 'tmpfs-\\*' options with mount type 'volume'"),
        ("type=tmpfs,dst=/b,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
        ("type=bind,src=/a,dst=/b,readonly=maybe", "invalid value for readonly: maybe"),
    ],
)
def test_the_cli_parses_mount_as_the_docker_cli(value: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        runflags.parse_mount(value)


def test_the_cli_mount_and_ulimit_values() -> None:
    assert runflags.parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770,ro") == {
        "Type": "tmpfs",
        "Target": "/t",
        "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770},
        "ReadOnly": True,
    }
    assert runflags.parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert runflags.parse_ulimit("core=-1") == {"Name": "core", "Soft": -1, "Hard": -1}
    with pytest.raises(click.BadParameter, match="ulimit soft limit must be less than or equal to hard limit: 9 > 3"):
        runflags.parse_ulimit("nofile=9:3")
    with pytest.raises(click.BadParameter, match="invalid ulimit type: files"):
        runflags.parse_ulimit("files=9")
