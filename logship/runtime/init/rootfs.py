"""The container's root: an overlay of the image, pivot_root into it, and the filesystems Docker gives
every container (/proc, /sys, a fresh /dev, /etc/hostname, hosts and resolv.conf, masked and read-only
paths), with the user's mounts (logship.runtime.init.mounts) among them.

The old root stays reachable until the container's mounts are done (their sources are host files),
but under a random name in the fresh /dev that the image cannot point a symlink at.
"""

from __future__ import annotations

import errno
import os
import stat

from logship.runtime.init import mounts
from logship.runtime.init.command import go_error
from logship.runtime.init.errors import InitError
from logship.runtime.init.syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_STRICTATIME,
    mount,
    pivot_root,
    umount,
)

# glibc has no pivot_root wrapper; the syscall number differs per architecture.
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

EXIT_SETUP_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's defaults: what a container must not read, and what it must not write.
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
HOST_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),
)
ETC_FILES = ("hostname", "hosts", "resolv.conf")  # written by the daemon in the state dir
# Host devices a --privileged container gets besides those above (as Docker: every device but these).
PRIVILEGED_SKIP = ("pts", "shm", "mqueue", "console", "ptmx", "tty", "fd", "stdin", "stdout", "stderr", "core")


class RootSetup:
    """What of the root depends on the container's configuration."""

    DEFAULT_SHM_SIZE = 64 * 1024 * 1024

    def __init__(self, shm_size: int, privileged: bool, user_mounts: list[mounts.Mount]) -> None:
        self.shm_size = shm_size or self.DEFAULT_SHM_SIZE
        self.privileged = privileged
        self.mounts = user_mounts
        self.devices: list[tuple[str, int, int, int, int]] = []  # path, mode, rdev, uid, gid (--privileged)


def mount_root(state_dir: str, image_rootfs: str) -> str:
    """Overlay the image with the container's private layer; return the mount point."""
    merged = os.path.join(state_dir, "merged")
    options = f"lowerdir={image_rootfs},upperdir={state_dir}/diff,workdir={state_dir}/work"
    mount("overlay", merged, "overlay", 0, options)
    return merged


def prepare_dev(root: str) -> str:
    """Mount a fresh tmpfs on <root>/dev and make a hidden directory in it to pivot the old root into.

    The old root stays reachable there until the container's mounts are done (their sources are host
    files), but under a random name the image cannot point a symlink at.
    """
    dev = os.path.join(root, "dev")
    if os.path.islink(dev) or (os.path.lexists(dev) and not os.path.isdir(dev)):
        raise InitError("the image's /dev is not a directory; logship mounts a fresh /dev there")
    os.makedirs(dev, mode=0o755, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    old_root = os.path.join(dev, ".oldroot-" + os.urandom(8).hex())
    os.mkdir(old_root, 0o700)
    return "/dev/" + os.path.basename(old_root)


def ensure_dir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def ensure_file(path: str) -> None:
    if os.path.isdir(path):
        raise InitError(f"cannot mount a file on {path}: the image has a directory there")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def host_devices() -> list[tuple[str, int, int, int, int]]:
    """--privileged: the host's device nodes, read before pivot_root (as Docker, not its pseudo-terminals)."""
    found = []
    for directory, subdirs, files in os.walk("/dev"):
        subdirs[:] = [name for name in subdirs if not (directory == "/dev" and name in PRIVILEGED_SKIP)]
        for name in files:
            if directory == "/dev" and (name in PRIVILEGED_SKIP or name in HOST_DEVICES):
                continue
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                found.append((path, info.st_mode, info.st_rdev, info.st_uid, info.st_gid))
    return found


def make_devices(devices: list[tuple[str, int, int, int, int]], old_root: str) -> None:
    """--privileged: the host's device nodes. In a user namespace (rootless) the kernel refuses mknod, so
    each node is bound from the host instead, as rootless Podman does; access is still the user's."""
    for path, mode, rdev, uid, gid in devices:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if os.path.lexists(path):
            continue
        try:
            os.mknod(path, mode, rdev)
            os.chown(path, uid, gid)
        except PermissionError:
            ensure_file(path)
            mount(f"{old_root}{path}", path, None, MS_BIND)


def mount_sysfs(old_root: str, privileged: bool) -> None:
    """A fresh sysfs, read-only unless --privileged. The kernel mounts sysfs only for a network namespace
    owned by the caller's user namespace: a rootless container on the host's network (--network host) gets
    the host's /sys bound instead, as crun and runc give rootless Podman."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    try:
        mount("sysfs", "/sys", "sysfs", (0 if privileged else MS_RDONLY) | flags)
    except PermissionError:
        mount(f"{old_root}/sys", "/sys", None, MS_BIND | MS_REC)
        if not privileged:
            mounts.make_readonly("/sys")


def mount_devpts() -> None:
    """A private devpts whose terminals belong to group tty (5), as Docker's. A rootless daemon without a
    subordinate range maps gid 0 only, and the kernel refuses an unmapped gid=: the terminals keep gid 0."""
    options = "newinstance,ptmxmode=0666,mode=0620"
    try:
        mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, options + ",gid=5")
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, options)


def mount_container_filesystems(old_root: str, state_dir: str, tty_path: str | None, setup: RootSetup) -> None:
    """Docker's mounts, done after pivot_root so every target resolves inside the container's root:
    /proc, /sys, /dev, /etc's three files, the user's mounts, then the masked and read-only paths
    (none with --privileged, which also gets a writable /sys and the host's devices)."""
    ensure_dir("/proc")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    ensure_dir("/sys")
    mount_sysfs(old_root, setup.privileged)
    for name in HOST_DEVICES:
        ensure_file(f"/dev/{name}")
        mount(f"{old_root}/dev/{name}", f"/dev/{name}", None, MS_BIND)
    ensure_dir("/dev/pts")
    mount_devpts()
    ensure_dir("/dev/shm")
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=1777,size={setup.shm_size // 1024}k")
    ensure_dir("/dev/mqueue")
    mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if tty_path:  # as runc does: the container's terminal is also its /dev/console
        ensure_file("/dev/console")
        mount(f"{old_root}{tty_path}", "/dev/console", None, MS_BIND)
    for target, link in DEV_SYMLINKS:
        os.symlink(target, link)
    ensure_dir("/etc")
    for name in ETC_FILES:
        ensure_file(f"/etc/{name}")
        mount(f"{old_root}{state_dir}/{name}", f"/etc/{name}", None, MS_BIND)
    make_devices(setup.devices, old_root)
    mounts.mount_all(setup.mounts)
    if setup.privileged:
        return
    for path in MASKED_PATHS:
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            mount("/dev/null", path, None, MS_BIND)
    for path in READONLY_PATHS:
        if not os.path.lexists(path):
            continue
        mount(path, path, None, MS_BIND | MS_REC)
        mount(path, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def enter_root(state_dir: str, image_rootfs: str, tty_path: str | None, setup: RootSetup) -> None:
    root = mount_root(state_dir, image_rootfs)
    old_root = prepare_dev(root)
    pivot_root(root, root + old_root)
    os.chdir("/")
    mount_container_filesystems(old_root, state_dir, tty_path, setup)
    umount(old_root, MNT_DETACH)
    os.rmdir(old_root)


def enter_workdir(workdir: str) -> None:
    """Docker creates a missing working directory."""
    try:
        try:
            os.chdir(workdir)
        except FileNotFoundError:
            os.makedirs(workdir, mode=0o755)
            os.chdir(workdir)
    except OSError as err:
        raise InitError(f'cannot use working directory "{workdir}": {go_error(err)}') from err
