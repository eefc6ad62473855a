"""Which device nodes a container may open: the cgroup v1 `devices` controller, as runc sets it for Docker.

A container keeps CAP_MKNOD (Docker's default set), so its root can make a node for any device, the host's
disks included. Capabilities cannot stop it from opening one; the device cgroup does: everything is denied,
then runc's default list is allowed again (mknod of any node, and read/write/mknod of null, zero, full,
random, urandom, tty, console, ptmx, the pty slaves and tun). `--privileged` keeps every device, as with
Docker.

cgroup v2 has no devices controller: there runc attaches an eBPF program, which needs a BPF loader logship
does not have, so on a v2-only host (and in rootless mode) containers run without this policy, as before.
"""

from __future__ import annotations

import errno
from pathlib import Path

CONTROLLER = "devices"
# runc's DefaultAllowedDevices (what Docker 20.10 gives a container that is not privileged).
DEFAULT_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:1 rwm",  # console
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # the pty slaves
    "c 10:200 rwm",  # tun
)


class DeviceCgroupError(Exception):
    """The policy could not be written: the container must not start without it."""


def confine(directory: Path, privileged: bool) -> None:
    """Write the policy into a new cgroup `directory` of the devices hierarchy (a new cgroup inherits its
    parent's list, so a privileged container's is left as it is)."""
    if privileged:
        return
    try:
        (directory / "devices.deny").write_text("a")
    except OSError as err:
        raise DeviceCgroupError(
            f"cannot confine the container's devices: writing 'a' to {directory / 'devices.deny'} failed: "
            f"{err.strerror}; run the daemon as root on the host, or with a writable devices cgroup"
        ) from err
    for rule in DEFAULT_RULES:
        try:
            (directory / "devices.allow").write_text(rule)
        except OSError as err:
            if err.errno != errno.EPERM:  # EPERM: the daemon's own cgroup denies it too, so it stays denied
                raise DeviceCgroupError(
                    f"cannot allow '{rule}' in {directory / 'devices.allow'}: {err.strerror}"
                ) from err
