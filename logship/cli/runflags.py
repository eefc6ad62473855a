"""`run`/`create` flags for mounts, the user and confinement, turned into the create body as the docker
CLI turns them (so the daemon sees the same request from either):

- `-v SRC:DST[:MODE]` goes to HostConfig.Binds (a relative `./dir` source made absolute), `-v DST` alone
  to Config.Volumes (an anonymous volume);
- `--mount type=...,source=...,target=...` to HostConfig.Mounts, parsed with the docker CLI's keys and
  messages;
- `--tmpfs DST[:OPTIONS]` to HostConfig.Tmpfs; `--ulimit NAME=SOFT[:HARD]` to HostConfig.Ulimits;
- `--security-opt seccomp=FILE` sends the file's JSON, compacted, as the docker CLI does.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import click

from logship import ulimits
from logship.units import SizeError, ram_in_bytes

ULIMIT_NAMES = ulimits.NAMES


def options() -> list[Any]:
    return [
        click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount a volume (SRC:DST[:ro], or DST)."),
        click.option(
            "--mount", "mounts", multiple=True, help="Attach a filesystem mount (type=bind|volume|tmpfs,...)."
        ),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory (DST[:OPTIONS], e.g. /run:size=64m)."),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("--group-add", multiple=True, help="Add additional groups to join."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--ulimit", multiple=True, help="Ulimit options (NAME=SOFT[:HARD], e.g. nofile=1024:2048)."),
        click.option("--shm-size", help="Size of /dev/shm (e.g. 128m; default 64m)."),
        click.option("--init", "use_init", is_flag=True, help="Run an init inside the container (tini) as PID 1."),
        click.option("--security-opt", multiple=True, help="Security options (no-new-privileges, seccomp=...)."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
    ]


def parse_volume(value: str) -> tuple[str, str]:
    """("bind", entry) for HostConfig.Binds or ("volume", target) for Config.Volumes."""
    source, sep, rest = value.partition(":")
    if not sep:
        return "volume", value
    if source.startswith("./") or source == ".":
        source = os.path.abspath(source)
    return "bind", f"{source}:{rest}"


def parse_mount(value: str) -> dict[str, Any]:
    """The docker CLI's `--mount` parser (opts/mount.go): its keys, defaults and messages."""
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration) as err:
        raise click.BadParameter(str(err), param_hint="--mount") from None
    mount: dict[str, Any] = {"Type": "volume"}

    def volume_options() -> dict[str, Any]:
        options: dict[str, Any] = mount.setdefault("VolumeOptions", {"Labels": {}, "DriverConfig": {}})
        return options

    def bind_options() -> dict[str, Any]:
        options: dict[str, Any] = mount.setdefault("BindOptions", {})
        return options

    def tmpfs_options() -> dict[str, Any]:
        options: dict[str, Any] = mount.setdefault("TmpfsOptions", {})
        return options

    def boolean(key: str, text: str) -> bool:
        lowered = text.lower()
        if lowered in ("1", "t", "true"):
            return True
        if lowered in ("0", "f", "false"):
            return False
        raise click.BadParameter(f"invalid value for {key}: {text}", param_hint="--mount")

    for field in fields:
        key, sep, val = field.partition("=")
        if not sep:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume_options()["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind_options()["NonRecursive"] = True
            else:
                raise click.BadParameter(f"invalid field '{field}' must be a key=value pair", param_hint="--mount")
            continue
        if key == "type":
            mount["Type"] = val.lower()
        elif key in ("source", "src"):
            mount["Source"] = os.path.abspath(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = boolean(key, val)
        elif key == "consistency":
            mount["Consistency"] = val.lower()
        elif key == "bind-propagation":
            bind_options()["Propagation"] = val.lower()
        elif key == "bind-nonrecursive":
            bind_options()["NonRecursive"] = boolean(key, val)
        elif key == "volume-nocopy":
            volume_options()["NoCopy"] = boolean(key, val)
        elif key == "volume-label":
            label, _, label_value = val.partition("=")
            if label:
                volume_options()["Labels"][label] = label_value
        elif key == "volume-driver":
            volume_options()["DriverConfig"]["Name"] = val
        elif key == "volume-opt":
            option, _, option_value = val.partition("=")
            if option:
                volume_options()["DriverConfig"].setdefault("Options", {})[option] = option_value
        elif key == "tmpfs-size":
            try:
                tmpfs_options()["SizeBytes"] = ram_in_bytes(val)
            except SizeError:
                raise click.BadParameter(f"invalid value for {key}: {val}", param_hint="--mount") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs_options()["Mode"] = int(val, 8)
            except ValueError:
                raise click.BadParameter(f"invalid value for {key}: {val}", param_hint="--mount") from None
        else:
            raise click.BadParameter(f"unexpected key '{key}' in '{field}'", param_hint="--mount")
    if not mount["Type"]:
        raise click.BadParameter("type is required", param_hint="--mount")
    if not mount.get("Target"):
        raise click.BadParameter("target is required", param_hint="--mount")
    for key, kind in (("VolumeOptions", "volume"), ("BindOptions", "bind"), ("TmpfsOptions", "tmpfs")):
        if key in mount and mount["Type"] != kind:
            raise click.BadParameter(
                f"cannot mix '{kind}-*' options with mount type '{mount['Type']}'", param_hint="--mount"
            )
    return mount


def parse_ulimit(value: str) -> dict[str, Any]:
    """units.ParseUlimit: `name=soft[:hard]`, -1 for unlimited."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise click.BadParameter(f"invalid ulimit argument: {value}", param_hint="--ulimit")
    if name not in ULIMIT_NAMES:
        raise click.BadParameter(f"invalid ulimit type: {name}", param_hint="--ulimit")
    soft_text, sep, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if sep else soft
    except ValueError:
        raise click.BadParameter(f"invalid ulimit argument: {value}", param_hint="--ulimit") from None
    if soft > hard and hard != -1:
        raise click.BadParameter(
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}", param_hint="--ulimit"
        )
    return {"Name": name, "Hard": hard, "Soft": soft}


def parse_security_opt(value: str) -> str:
    """The docker CLI reads a seccomp profile file and sends its JSON (compacted)."""
    key, sep, path = value.partition("=")
    if not sep:
        key, sep, path = value.partition(":")
    if key != "seccomp" or not sep or path in ("unconfined", "builtin"):
        return value
    try:
        with open(path, "rb") as file:
            profile = json.load(file)
    except OSError as err:
        raise click.BadParameter(
            f"opening seccomp profile ({path}) failed: {err.strerror}", param_hint="--security-opt"
        ) from None
    except ValueError as err:
        raise click.BadParameter(
            f"compacting json for seccomp profile ({path}) failed: {err}", param_hint="--security-opt"
        ) from None
    return "seccomp=" + json.dumps(profile, separators=(",", ":"))


def apply(params: dict[str, Any], body: dict[str, Any]) -> None:
    """Fill the create body from these flags."""
    host_config = body["HostConfig"]
    binds: list[str] = []
    anonymous: dict[str, dict[str, Any]] = {}
    for value in params["volumes"]:
        kind, entry = parse_volume(value)
        if kind == "bind":
            binds.append(entry)
        else:
            anonymous[value] = {}
    if binds:
        host_config["Binds"] = binds
    if anonymous:
        body["Volumes"] = anonymous
    if params["mounts"]:
        host_config["Mounts"] = [parse_mount(value) for value in params["mounts"]]
    if params["tmpfs"]:
        host_config["Tmpfs"] = dict(value.partition(":")[::2] for value in params["tmpfs"])
    if params["user"]:
        body["User"] = params["user"]
    if params["group_add"]:
        host_config["GroupAdd"] = list(params["group_add"])
    if params["read_only"]:
        host_config["ReadonlyRootfs"] = True
    if params["ulimit"]:
        host_config["Ulimits"] = [parse_ulimit(value) for value in params["ulimit"]]
    if params["shm_size"]:
        try:
            host_config["ShmSize"] = ram_in_bytes(params["shm_size"])
        except SizeError as err:
            raise click.BadParameter(f"{err} (examples: 64m, 1g)", param_hint="--shm-size") from None
    if params["use_init"]:
        host_config["Init"] = True
    if params["security_opt"]:
        host_config["SecurityOpt"] = [parse_security_opt(value) for value in params["security_opt"]]
    if params["privileged"]:
        host_config["Privileged"] = True
