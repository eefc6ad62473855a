"""`POST /containers/create`: a Docker create body checked and turned into a container record.

Everything that can be wrong with a request is found here, before anything touches the disk, with
Docker's error texts where Docker has one.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from typing import Any

from logship.daemon import mounts, ports, restart, security
from logship.daemon.container import ContainerRecord
from logship.daemon.signals import parse_signal
from logship.drivers import options
from logship.errors import InvalidParameter
from logship.settings import Settings

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def new_container_id() -> str:
    """64 hex digits whose 12-digit short form is never all digits (Docker avoids ids that look like numbers)."""
    while True:
        candidate = secrets.token_hex(32)
        if not candidate[:12].isdigit():
            return candidate


def check_name(name: str) -> str:
    """Docker's container name rule; returns the name with its leading "/"."""
    if not NAME_RE.fullmatch(name):  # fullmatch: "$" alone would let a trailing newline through
        raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name if name.startswith("/") else "/" + name


def _strings(body: dict[str, Any], key: str) -> list[str] | None:
    """Docker's StrSlice: a JSON list of strings, or one string (meaning a one-element list)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid {key}: expected a list of strings, got {value!r}")
    for item in value:
        _no_nul(key, item)
    return list(value)


def _no_nul(key: str, value: str) -> None:
    # exec and the kernel take C strings: a NUL would cut the value short or fail the start obscurely.
    if "\0" in value:
        raise InvalidParameter(f"invalid {key}: {value!r} holds a NUL byte, which no process can receive")


def _string(body: dict[str, Any], key: str) -> str:
    """An optional string field ("" when absent): Docker's decoder refuses any other JSON type."""
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"invalid {key}: expected a string, got {value!r}")
    _no_nul(key, value)
    return value


def _int(host_config: dict[str, Any], key: str) -> int:
    value = host_config.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParameter(f"invalid HostConfig.{key}: expected an integer, got {value!r}")
    return value


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Image env first, the container's entries replacing same-named ones (Docker's ReplaceOrAppendEnvValues)."""
    merged: dict[str, str] = {}
    for entry in [*base, *extra]:
        key = entry.split("=", 1)[0]
        merged[key] = entry
    return list(merged.values())


def log_config(body_log_config: dict[str, Any] | None, settings: Settings) -> dict[str, Any]:
    """Docker's merge rule: daemon log-opts apply only when the container uses the daemon's driver;
    `cache-*` defaults always apply. The result is validated as Docker validates it."""
    requested = body_log_config or {}
    if not isinstance(requested, dict):
        raise InvalidParameter(f"invalid HostConfig.LogConfig: expected an object (Type, Config), got {requested!r}")
    driver = requested.get("Type") or settings.log_driver
    if not isinstance(driver, str):
        raise InvalidParameter(f"invalid HostConfig.LogConfig.Type: expected a driver name, got {driver!r}")
    given = requested.get("Config") or {}
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise InvalidParameter("invalid LogConfig.Config: log-opts values must be strings")
    opts: dict[str, str] = {}
    for key, value in settings.log_opts.items():
        if driver == settings.log_driver or key.startswith("cache-"):
            opts[key] = value
    opts.update(given)
    options.validate(driver, opts)
    return {"Type": driver, "Config": opts}


# Docker create fields logship does not implement, with what users call them: a request that sets one is
# refused (400) rather than silently run without it.
UNSUPPORTED_HOST_CONFIG = {
    "VolumesFrom": "--volumes-from",
    "Devices": "--device",
    "DeviceRequests": "--gpus",
    "Links": "--link",
    "Dns": "--dns",
    "DnsSearch": "--dns-search",
    "DnsOptions": "--dns-option",
    "ExtraHosts": "--add-host",
    "PidMode": "--pid",
    "IpcMode": "--ipc",
    "UTSMode": "--uts",
    "UsernsMode": "--userns",
    "CgroupnsMode": "--cgroupns",
    "Sysctls": "--sysctl",
    "Runtime": "--runtime",
    "CgroupParent": "--cgroup-parent",
    "CpuShares": "-c/--cpu-shares",
    "CpusetCpus": "--cpuset-cpus",
    "CpusetMems": "--cpuset-mems",
    "CpuQuota": "--cpu-quota (use --cpus)",
    "CpuPeriod": "--cpu-period (use --cpus)",
    "BlkioWeight": "--blkio-weight",
    "MemoryReservation": "--memory-reservation",
    "OomKillDisable": "--oom-kill-disable",
}
UNSUPPORTED_CONFIG = {
    "Healthcheck": "--health-cmd",
}
# Values the docker CLI and docker-py send when an option is not used.
_UNSET: tuple[object, ...] = (None, "", 0, False, [], {}, "default", "private", "host-default", "shareable", -1)


def check_supported(body: dict[str, Any], host_config: dict[str, Any]) -> None:
    """Docker create fields logship does not implement are refused (400), never silently ignored."""
    for section_name, fields, section in (
        ("HostConfig", UNSUPPORTED_HOST_CONFIG, host_config),
        ("Config", UNSUPPORTED_CONFIG, body),
    ):
        for key, flag in fields.items():
            if section.get(key) not in _UNSET:
                raise InvalidParameter(f"{flag} ({section_name}.{key}) is not supported by logship")


def restart_policy(host_config: dict[str, Any]) -> restart.Policy:
    """HostConfig.RestartPolicy checked as dockerd checks it; --rm cannot go with a policy (the container
    would be removed at the very exit the policy is meant to act on)."""
    policy = restart.normalize(host_config.get("RestartPolicy"))
    if host_config.get("AutoRemove") and policy.name != restart.NO:
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    return policy


def build_record(
    body: dict[str, Any],
    name: str,
    image_ref: str,
    image_id: str,
    image_config: dict[str, Any],
    settings: Settings,
    container_id: str,
) -> ContainerRecord:
    host_config = body.get("HostConfig") or {}
    if not isinstance(host_config, dict):
        raise InvalidParameter("invalid HostConfig: expected a JSON object")
    check_supported(body, host_config)
    policy = restart_policy(host_config)

    entrypoint = _strings(body, "Entrypoint")
    cmd = _strings(body, "Cmd")
    if entrypoint is None:
        entrypoint = image_config.get("Entrypoint") or []
        if cmd is None:
            cmd = image_config.get("Cmd") or []
    elif cmd is None:
        cmd = []  # an explicit entrypoint drops the image's Cmd, as Docker does
    argv = [*entrypoint, *(cmd or [])]
    if not argv or argv == [""]:
        raise InvalidParameter("no command specified: give one after the image name, or use an image with a Cmd")

    memory = _int(host_config, "Memory")
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    nano_cpus = _int(host_config, "NanoCpus")
    ncpu = os.cpu_count() or 1
    if nano_cpus and not (10_000_000 <= nano_cpus <= ncpu * 1_000_000_000):
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    pids_limit = host_config.get("PidsLimit")
    if pids_limit is not None and (not isinstance(pids_limit, int) or isinstance(pids_limit, bool)):
        raise InvalidParameter(f"invalid HostConfig.PidsLimit: expected an integer, got {pids_limit!r}")
    # Local import keeps the runtime (ctypes, cgroups) out of modules that only build records.
    from logship.runtime import cgroups

    refused = cgroups.refusal(cgroups.Limits(memory, pids_limit or 0, nano_cpus))  # a rootless daemon's
    if refused:
        raise InvalidParameter(refused)
    # NetworkMode and EndpointsConfig are checked against the networks by the container manager
    # (logship.daemon.netattach); the ports' shapes here.
    exposed = ports.exposed_ports(body, image_config)
    port_bindings = ports.port_bindings(host_config)
    cap_add = _strings(host_config, "CapAdd") or []
    cap_drop = _strings(host_config, "CapDrop") or []
    from logship.runtime.capabilities import validate_capabilities

    validate_capabilities(cap_add, cap_drop)

    mount_points = mounts.parse_all(host_config, body.get("Volumes"), (image_config.get("Volumes") or {}).keys())
    confining = security.security_host_config(host_config, _strings(host_config, "SecurityOpt") or [])
    user = security.check_user(_string(body, "User"))

    labels = body.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise InvalidParameter("invalid Labels: expected an object of strings")
    env = merge_env(image_config.get("Env") or [], _strings(body, "Env") or [])
    tty = bool(body.get("Tty"))
    open_stdin = bool(body.get("OpenStdin"))
    working_dir = _string(body, "WorkingDir") or image_config.get("WorkingDir") or ""
    if working_dir and not working_dir.startswith("/"):
        raise InvalidParameter(f"the working directory '{working_dir}' is invalid, it needs to be an absolute path")
    hostname, domainname = _string(body, "Hostname"), _string(body, "Domainname")
    stop_signal = _string(body, "StopSignal")
    if stop_signal:
        parse_signal(stop_signal)  # Docker checks the signal at create too

    config = {
        "Hostname": hostname or container_id[:12],
        "Domainname": domainname,
        "User": user,
        "AttachStdin": bool(body.get("AttachStdin")),
        "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")),
        "Tty": tty,
        "OpenStdin": open_stdin,
        "StdinOnce": bool(body.get("StdinOnce")),
        "Env": env,
        "Cmd": cmd or None,
        "Image": image_ref,
        "Volumes": body.get("Volumes") or None,
        **({"ExposedPorts": exposed} if exposed else {}),
        "WorkingDir": working_dir,
        "Entrypoint": entrypoint or None,
        "OnBuild": None,
        "Labels": labels,
        "StopSignal": stop_signal or "SIGTERM",
    }
    logging_config = log_config(host_config.get("LogConfig"), settings)
    normalized_host_config = {
        "LogConfig": logging_config,
        "NetworkMode": host_config.get("NetworkMode") or "default",
        "PortBindings": port_bindings,
        "PublishAllPorts": bool(host_config.get("PublishAllPorts")),
        "Memory": memory,
        "MemorySwap": memory * 2 if memory else 0,
        "NanoCpus": nano_cpus,
        "PidsLimit": pids_limit if pids_limit and pids_limit > 0 else None,
        "CapAdd": cap_add or None,
        "CapDrop": cap_drop or None,
        "AutoRemove": bool(host_config.get("AutoRemove")),
        "RestartPolicy": policy.to_api(),
        "Binds": host_config.get("Binds") or None,
        "Mounts": host_config.get("Mounts") or None,
        "Tmpfs": host_config.get("Tmpfs") or None,
        **confining,
    }
    container_dir = settings.data_root / "containers" / container_id
    return ContainerRecord(
        id=container_id,
        name=name,
        created_ns=time.time_ns(),
        image=image_ref,
        image_id=image_id,
        path=argv[0],
        args=argv[1:],
        config=config,
        host_config=normalized_host_config,
        # Docker shows LogPath for json-file only (the local driver's files are deliberately not exposed).
        log_path=str(container_dir / f"{container_id}-json.log") if logging_config["Type"] == "json-file" else "",
        mount_points=mount_points,
    )


def runtime_env(record: ContainerRecord) -> list[str]:
    """The environment the command starts with: Docker adds PATH, HOSTNAME and TERM (with a tty). HOME, when
    nobody set it, comes from the user's entry in the container's /etc/passwd (init, as runc does)."""
    return _base_env(record, list(record.config.get("Env") or []), record.tty, home="")


def exec_env(record: ContainerRecord, extra: list[str], tty: bool) -> list[str]:
    """An exec's environment: the container's, then the exec's own entries (`exec -e`), TERM with the exec's
    tty. HOME, when nobody set it, comes from the exec's user in the container (runtime/execinit.py)."""
    return _base_env(record, merge_env(list(record.config.get("Env") or []), extra), tty, home="")


def _base_env(record: ContainerRecord, env: list[str], tty: bool, home: str) -> list[str]:
    keys = {entry.split("=", 1)[0] for entry in env}
    extra = []
    if "PATH" not in keys:
        extra.append(f"PATH={DEFAULT_PATH}")
    extra.append(f"HOSTNAME={record.config['Hostname']}")
    if tty and "TERM" not in keys:
        extra.append("TERM=xterm")
    if home and "HOME" not in keys:
        extra.append(f"HOME={home}")
    return merge_env(extra, env)


# The same checks for exec's fields.
strings_field = _strings
string_field = _string
