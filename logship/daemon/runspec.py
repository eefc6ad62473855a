"""A container record turned into what the runtime starts (logship.runtime.spawn.ContainerSpec): the
one place where Docker's Config and HostConfig meet the runtime's fields."""

from __future__ import annotations

from pathlib import Path

from logship.daemon import create, mounts, security
from logship.daemon.container import ContainerRecord
from logship.daemon.netattach import StartNetwork
from logship.runtime import spawn


def container_spec(
    record: ContainerRecord, state_dir: Path, image_rootfs: Path, network: StartNetwork | None = None
) -> spawn.ContainerSpec:
    host_config = record.host_config
    confining = security.parse_security_opts(list(host_config.get("SecurityOpt") or []))
    return spawn.ContainerSpec(
        container_id=record.id,
        state_dir=state_dir,
        image_rootfs=image_rootfs,
        argv=[record.path, *record.args],
        env=create.runtime_env(record),
        workdir=record.config.get("WorkingDir") or "/",
        hostname=record.config["Hostname"],
        tty=record.tty,
        open_stdin=bool(record.config.get("OpenStdin")),
        network="host" if host_config.get("NetworkMode") == "host" else "none",
        netns=network.netns if network else "",
        hosts=network.hosts if network else None,
        resolv_conf=network.resolv_conf if network else None,
        memory=host_config.get("Memory") or 0,
        pids_limit=host_config.get("PidsLimit") or 0,
        nano_cpus=host_config.get("NanoCpus") or 0,
        cap_add=list(host_config.get("CapAdd") or []),
        cap_drop=list(host_config.get("CapDrop") or []),
        privileged=bool(host_config.get("Privileged")),
        no_new_privs=confining["no_new_privs"],
        seccomp=confining["seccomp"],
        user=record.config.get("User") or "",
        group_add=list(host_config.get("GroupAdd") or []),
        mounts=mounts.runtime_mounts(record.mount_points),
        readonly_rootfs=bool(host_config.get("ReadonlyRootfs")),
        ulimits=list(host_config.get("Ulimits") or []),
        shm_size=host_config.get("ShmSize") or 0,
        init=bool(host_config.get("Init")),
        hold_output=True,  # until the copiers have spooled it all: see ContainerManager._release_when_drained
    )
