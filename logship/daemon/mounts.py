"""A container's mounts as Docker takes them: `-v` (HostConfig.Binds and Config.Volumes), `--mount`
(HostConfig.Mounts), `--tmpfs` (HostConfig.Tmpfs) and the image's VOLUMEs, checked with dockerd's
messages and turned into mount points.

A mount point is what `inspect` shows under "Mounts" (Type, Name, Source, Destination, Driver, Mode,
RW, Propagation) plus what the runtime needs (tmpfs options, whether a volume is anonymous, whether it
is filled from the image on first use). Docker's two bind rules differ and both are kept: a `-v` source
that does not exist is created as a directory at start; a `--mount` source that does not exist is an
error at create (`bind source path does not exist`).

Named and anonymous volumes are created at create time, as dockerd does, in the volume store.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from typing import Any

from logship.daemon.volumes import VolumeStore, check_name
from logship.errors import InvalidParameter

RW_MODES = {"rw", "ro"}
LABEL_MODES = {"z", "Z"}
PROPAGATION_MODES = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
COPY_MODES = {"nocopy"}
CONSISTENCY_MODES = {"consistent", "cached", "delegated"}
DEFAULT_PROPAGATION = "rprivate"

# Mount flags a tmpfs option may set (name -> (flag, set or clear)), as runc reads them.
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_SYNCHRONOUS, MS_DIRSYNC, MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = (
    16,
    128,
    1024,
    2048,
    1 << 21,
    1 << 24,
)
TMPFS_FLAGS = {
    "ro": (MS_RDONLY, True),
    "rw": (MS_RDONLY, False),
    "suid": (MS_NOSUID, False),
    "nosuid": (MS_NOSUID, True),
    "dev": (MS_NODEV, False),
    "nodev": (MS_NODEV, True),
    "exec": (MS_NOEXEC, False),
    "noexec": (MS_NOEXEC, True),
    "sync": (MS_SYNCHRONOUS, True),
    "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "atime": (MS_NOATIME, False),
    "noatime": (MS_NOATIME, True),
    "diratime": (MS_NODIRATIME, False),
    "nodiratime": (MS_NODIRATIME, True),
    "relatime": (MS_RELATIME, True),
    "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True),
    "nostrictatime": (MS_STRICTATIME, False),
}
TMPFS_DATA = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol", "huge"}
# Docker's defaults for every tmpfs (--tmpfs and --mount type=tmpfs) before the user's options.
TMPFS_DEFAULT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC


def _spec_error(raw: str, detail: str = "") -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{raw}'" + (f": {detail}" if detail else ""))


def _config_error(mount_type: str, detail: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{mount_type}": {detail}')


def valid_mode(mode: str) -> bool:
    """dockerd's linuxValidMountMode: comma-separated, at most one of each kind."""
    if mode == "":
        return True
    counts: dict[str, int] = {}
    for option in mode.split(","):
        for kind, values in (
            ("rw", RW_MODES),
            ("label", LABEL_MODES),
            ("propagation", PROPAGATION_MODES),
            ("copy", COPY_MODES),
            ("consistency", CONSISTENCY_MODES),
        ):
            if option in values:
                counts[kind] = counts.get(kind, 0) + 1
                break
        else:
            return False
    return all(count == 1 for count in counts.values())


def _check_target(mount_type: str, target: str) -> str:
    if not target:
        raise _config_error(mount_type, "field Target must not be empty")
    if posixpath.normpath(target) == "/" or (target.startswith("//") and posixpath.normpath(target) == "//"):
        raise _config_error(mount_type, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise _config_error(mount_type, f"invalid mount path: '{target}' mount path must be absolute")
    if "\0" in target:
        raise _config_error(mount_type, "the target holds a NUL byte")
    clean = posixpath.normpath(target)
    if clean == "/proc" or clean.startswith("/proc/"):
        raise _config_error(mount_type, f'"{clean}" cannot be mounted because it is inside /proc')
    return clean


def _check_propagation(mount_type: str, propagation: str) -> str:
    if propagation and propagation not in PROPAGATION_MODES:
        raise _config_error(mount_type, f"invalid propagation mode: {propagation}")
    if propagation not in ("", "private", "rprivate"):
        raise _config_error(
            mount_type,
            f"bind propagation {propagation!r} is not supported by logship: a container's mounts are always private "
            "(use private or rprivate, or leave it out)",
        )
    return propagation or DEFAULT_PROPAGATION


def mount_point(
    mount_type: str,
    target: str,
    source: str = "",
    name: str = "",
    rw: bool = True,
    mode: str = "",
    propagation: str = "",
    **runtime: Any,
) -> dict[str, Any]:
    """One mount point: Docker's MountPoint fields, then logship's own (lower case) for the runtime."""
    point: dict[str, Any] = {"Type": mount_type}
    if name:
        point["Name"] = name
    point.update({"Source": source, "Destination": target})
    if mount_type == "volume":
        point["Driver"] = "local"
    point.update({"Mode": mode, "RW": rw, "Propagation": propagation})
    point.update(runtime)
    return point


def parse_bind(raw: str) -> dict[str, Any]:
    """One `-v` entry of HostConfig.Binds (`source:target[:mode]`), checked as dockerd's ParseMountRaw."""
    parts = raw.split(":", 3)
    if not parts[0]:
        raise _spec_error(raw)
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            raise _spec_error(raw)  # a target and a mode, no source: not a volume spec
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _spec_error(raw)
    if not valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    options = mode.split(",") if mode else []
    mount_type = "bind" if source.startswith("/") else "volume"
    try:
        clean_target = _check_target(mount_type, target)
        if mount_type == "bind":
            propagation = _check_propagation("bind", next((o for o in options if o in PROPAGATION_MODES), ""))
            return mount_point(
                "bind",
                clean_target,
                source=posixpath.normpath(source),
                rw="ro" not in options,
                mode=mode,
                propagation=propagation,
                create_source=True,
            )
        if any(option in PROPAGATION_MODES for option in options):
            raise _config_error("volume", "field BindOptions must not be specified")
        if source:
            check_name(source)
        elif "ro" in options:
            raise _config_error("volume", "must not set ReadOnly mode when using anonymous volumes")
    except InvalidParameter as err:
        raise _spec_error(raw, str(err)) from None
    return mount_point(
        "volume", clean_target, name=source, rw="ro" not in options, mode=mode or "z", copy_up="nocopy" not in options
    )


def parse_mount(spec: Any) -> dict[str, Any]:
    """One `--mount` entry of HostConfig.Mounts (Docker's mount.Mount object), checked as dockerd's
    validateMountConfig (a bind source must exist)."""
    if not isinstance(spec, dict):
        raise InvalidParameter(f"invalid HostConfig.Mounts entry: expected an object, got {spec!r}")
    mount_type = spec.get("Type") or ""
    target = spec.get("Target") or ""
    source = spec.get("Source") or ""
    read_only = bool(spec.get("ReadOnly"))
    bind_options = spec.get("BindOptions")
    volume_options = spec.get("VolumeOptions")
    tmpfs_options = spec.get("TmpfsOptions")
    if mount_type not in ("bind", "volume", "tmpfs"):
        if mount_type in ("image", "npipe", "cluster"):
            raise _config_error(mount_type, f"mount type {mount_type!r} is not supported by logship")
        raise _config_error(mount_type, "mount type unknown")
    clean_target = _check_target(mount_type, target)
    if mount_type == "bind":
        if not source:
            raise _config_error("bind", "field Source must not be empty")
        propagation = _check_propagation("bind", (bind_options or {}).get("Propagation") or "")
        if volume_options is not None:
            raise _config_error("bind", "field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise _config_error("bind", f"invalid mount path: '{source}' mount path must be absolute")
        create = bool((bind_options or {}).get("CreateMountpoint"))
        if not create and not os.path.lexists(source):
            raise _config_error("bind", f"bind source path does not exist: {source}")
        if (bind_options or {}).get("NonRecursive"):
            raise _config_error("bind", "bind-nonrecursive is not supported by logship: binds are recursive")
        return mount_point(
            "bind",
            clean_target,
            source=posixpath.normpath(source),
            rw=not read_only,
            propagation=propagation,
            create_source=create,
        )
    if mount_type == "volume":
        if bind_options is not None:
            raise _config_error("volume", "field BindOptions must not be specified")
        volume_options = volume_options or {}
        if volume_options.get("Subpath"):
            raise _config_error("volume", "volume subpaths are not supported by logship")
        driver = (volume_options.get("DriverConfig") or {}).get("Name") or ""
        if driver not in ("", "local"):
            raise _config_error("volume", f'volume driver "{driver}" is not supported by logship (only "local")')
        if (volume_options.get("DriverConfig") or {}).get("Options"):
            raise _config_error("volume", "volume-opt is not supported by logship's local driver")
        if not source and read_only:
            raise _config_error("volume", "must not set ReadOnly mode when using anonymous volumes")
        if source:
            check_name(source)
        return mount_point(
            "volume",
            clean_target,
            name=source,
            rw=not read_only,
            mode="z",
            copy_up=not volume_options.get("NoCopy"),
            labels=dict(volume_options.get("Labels") or {}),
        )
    if bind_options is not None:
        raise _config_error("tmpfs", "field BindOptions must not be specified")
    if source:
        raise _config_error("tmpfs", "field Source must not be specified")
    data = tmpfs_data(tmpfs_options or {}, read_only)
    point = mount_point("tmpfs", clean_target, rw=not read_only)
    point.update(tmpfs_runtime(data))
    return point


def tmpfs_data(options: dict[str, Any], read_only: bool) -> str:
    """dockerd's ConvertTmpfsOptions: TmpfsOptions as a mount option string."""
    raw = ["ro"] if read_only else []
    mode = options.get("Mode") or 0
    if mode:
        raw.append(f"mode={mode:o}")
    size = options.get("SizeBytes") or 0
    if size:
        if not isinstance(size, int) or size < 0:
            raise _config_error("tmpfs", f"invalid tmpfs size {size!r}")
        for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                raw.append(f"size={size // divisor}{suffix}")
                break
        else:
            raw.append(f"size={size}")
    for option in options.get("Options") or []:
        if not isinstance(option, list) or not 1 <= len(option) <= 2:
            raise _config_error("tmpfs", "invalid option array length")
        if option[0] not in ("exec", "noexec"):
            raise _config_error("tmpfs", "invalid option: " + str(option[0]))
        raw.append("=".join(option))
    return ",".join(raw)


def tmpfs_runtime(options: str, where: str = "") -> dict[str, Any]:
    """Docker's tmpfs options ("rw,size=64m,mode=1770") as mount flags and data, with the defaults
    (nosuid, nodev, noexec) first; an unknown option is refused here rather than by the kernel at start."""
    flags = TMPFS_DEFAULT_FLAGS
    data = []
    for option in filter(None, options.split(",")):
        key, sep, value = option.partition("=")
        if not sep and key in TMPFS_FLAGS:
            flag, on = TMPFS_FLAGS[key]
            flags = flags | flag if on else flags & ~flag
        elif sep and key in TMPFS_DATA:
            if key == "size" and not re.fullmatch(r"[0-9]+[kmgKMG%]?", value):
                raise InvalidParameter(
                    f"invalid tmpfs size {value!r}{where}: use a number of bytes with k, m or g, or a %"
                )
            data.append(f"{key}={value}")
        elif key in ("private", "rprivate"):
            continue
        else:
            known = ", ".join([*TMPFS_FLAGS, *(f"{name}=" for name in sorted(TMPFS_DATA))])
            raise InvalidParameter(f"invalid tmpfs option {option!r}{where}: use one of {known}")
    return {"flags": flags, "data": ",".join(data)}


def parse_tmpfs(tmpfs: Any) -> list[dict[str, Any]]:
    """HostConfig.Tmpfs: {target: options}. Not shown under "Mounts", as in Docker."""
    if not isinstance(tmpfs, dict) or not all(isinstance(value, str) for value in tmpfs.values()):
        raise InvalidParameter(f"invalid HostConfig.Tmpfs: expected an object of strings, got {tmpfs!r}")
    points = []
    for target, options in tmpfs.items():
        if not target.startswith("/"):
            raise InvalidParameter(f"invalid mount path: '{target}' mount path must be absolute")
        if posixpath.normpath(target) == "/":
            raise InvalidParameter("invalid specification: destination can't be '/'")
        point = mount_point("tmpfs", posixpath.normpath(target), rw="ro" not in options.split(","), hidden=True)
        point.update(tmpfs_runtime(options, f" for {target}"))
        points.append(point)
    return points


def parse_all(host_config: dict[str, Any], config_volumes: Any, image_volumes: Iterable[str]) -> list[dict[str, Any]]:
    """Every mount of a create request, in Docker's precedence: binds and --mount over the image's and
    Config.Volumes' anonymous volumes (which are dropped where a user mount has the same target), and
    a target given twice by the user is `Duplicate mount point`."""
    binds = host_config.get("Binds") or []
    if not isinstance(binds, list) or not all(isinstance(item, str) for item in binds):
        raise InvalidParameter(f"invalid HostConfig.Binds: expected a list of strings, got {binds!r}")
    mounts = host_config.get("Mounts") or []
    if not isinstance(mounts, list):
        raise InvalidParameter(f"invalid HostConfig.Mounts: expected a list, got {mounts!r}")
    user_points = [parse_bind(item) for item in binds]
    user_points += [parse_mount(item) for item in mounts]
    user_points += parse_tmpfs(host_config.get("Tmpfs") or {})
    seen: set[str] = set()
    for point in user_points:
        if point["Destination"] in seen:
            raise InvalidParameter(f"Duplicate mount point: {point['Destination']}")
        seen.add(point["Destination"])
    if config_volumes and not isinstance(config_volumes, dict):
        raise InvalidParameter(f"invalid Config.Volumes: expected an object of paths, got {config_volumes!r}")
    anonymous = []
    for target in [*image_volumes, *(config_volumes or {})]:
        clean = _check_target("volume", target)
        if clean not in seen:
            seen.add(clean)
            anonymous.append(mount_point("volume", clean, mode="z", copy_up=True))
    return user_points + anonymous


def create_volumes(points: list[dict[str, Any]], volumes: VolumeStore) -> None:
    """Named volumes that do not exist yet and every anonymous volume are created now, as dockerd
    creates them at container create. Fills Name and Source in."""
    for point in points:
        if point["Type"] != "volume":
            continue
        if point.get("Name"):
            volume = volumes.create(point["Name"], labels=point.pop("labels", None) or None)
        else:
            point.pop("labels", None)
            volume = volumes.create_anonymous()
            point["Name"] = volume.name
            point["anonymous"] = True
        point["Source"] = str(volume.mountpoint)


def volume_names(points: Iterable[dict[str, Any]], anonymous_only: bool = False) -> list[str]:
    return [
        point["Name"]
        for point in points
        if point["Type"] == "volume" and point.get("Name") and (point.get("anonymous") or not anonymous_only)
    ]


def runtime_mounts(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """init.json's "mounts": sorted as dockerd sorts them (fewer path components first, so a parent is
    mounted before what is mounted inside it). A missing `-v` bind source is created (as dockerd does)."""
    result = []
    for point in sorted(points, key=lambda item: item["Destination"].rstrip("/").count("/")):
        if point["Type"] == "bind" and point.get("create_source") and not os.path.lexists(point["Source"]):
            os.makedirs(point["Source"], 0o755, exist_ok=True)
        item: dict[str, Any] = {"type": point["Type"], "target": point["Destination"], "readonly": not point["RW"]}
        if point["Type"] == "tmpfs":
            item.update(flags=point["flags"], data=point["data"])
        else:
            item["source"] = point["Source"]
            item["copy_up"] = bool(point.get("copy_up"))
        result.append(item)
    return result
