"""A busybox root filesystem, and a small harness, for tests that start real containers.

`/bin/busybox` must be the static build (`apt-get install -y busybox-static`): the rootfs has no
libraries. Every applet becomes a symlink `/bin/<applet> -> /bin/busybox`, made by busybox itself run
chrooted in the new tree, so the links are exactly what busybox expects.

`Containers` starts containers in a test's temporary directory and, on leaving its `async with`,
kills and reaps every one it started, so no test leaves a process behind.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from logship.asyncfd import wait_readable
from logship.runtime import spawn

HOST_BUSYBOX = Path("/bin/busybox")
HANG_GUARD_SECONDS = 120
T = TypeVar("T")
DIRS = ("bin", "etc", "dev", "proc", "sys", "tmp", "root", "var", "usr/bin", "usr/sbin", "sbin")


def container_problem() -> str:
    """Why containers cannot be started by these tests here, or "" when they can."""
    if os.geteuid() != 0:
        return "needs root (namespaces, mounts, cgroups)"
    if not HOST_BUSYBOX.exists():
        return "needs /bin/busybox (apt-get install -y busybox-static)"
    if _has_interpreter(HOST_BUSYBOX.read_bytes()):
        return "/bin/busybox is dynamically linked; install busybox-static"
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        return "needs unshare (util-linux) and chroot (coreutils)"
    return ""


def _has_interpreter(elf: bytes) -> bool:
    """True for a dynamically linked (64-bit little-endian) ELF: it has a PT_INTERP program header."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize = int.from_bytes(elf[0x36:0x38], "little")
    phnum = int.from_bytes(elf[0x38:0x3A], "little")
    pt_interp = 3
    return any(
        int.from_bytes(elf[phoff + i * phentsize : phoff + i * phentsize + 4], "little") == pt_interp
        for i in range(phnum)
    )


def build_busybox_rootfs(root: Path) -> Path:
    """Create the rootfs at `root` and return it."""
    for name in DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(HOST_BUSYBOX, root / "bin" / "busybox")
    subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s", "/bin"], check=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    return root


async def read_to_eof(fd: int) -> bytes:
    """Everything a non-blocking FIFO or pty master delivers until EOF (EIO on a pty master)."""
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            await wait_readable(fd)
            continue
        except OSError as err:
            if err.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


async def read_line(fd: int) -> bytes:
    """Read byte by byte up to and including the first newline (for step-by-step conversations)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        try:
            byte = os.read(fd, 1)
        except BlockingIOError:
            await wait_readable(fd)
            continue
        if not byte:
            break
        line.extend(byte)
    return bytes(line)


async def _nothing() -> bytes:
    return b""


@dataclass
class Result:
    stdout: bytes
    stderr: bytes
    exit: spawn.ExitStatus


class Containers:
    """Starts containers from one image, state dirs under `base_dir`; stops all of them on exit."""

    def __init__(self, rootfs: Path, base_dir: Path) -> None:
        self.rootfs = rootfs
        self.base_dir = base_dir
        self.started: list[spawn.Process] = []
        self.foreign: list[Path] = []

    def spec(self, argv: list[str], **options: Any) -> spawn.ContainerSpec:
        container_id = options.pop("container_id", secrets.token_hex(32))
        options.setdefault("env", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        state_dir = options.pop("state_dir", self.base_dir / container_id[:12])
        return spawn.ContainerSpec(container_id, state_dir, self.rootfs, argv, **options)

    async def start(self, argv: list[str], **options: Any) -> spawn.Process:
        return await self.start_spec(self.spec(argv, **options))

    async def start_spec(self, spec: spawn.ContainerSpec) -> spawn.Process:
        process = await spawn.start(spec)
        self.started.append(process)
        return process

    def adopt(self, state_dir: Path) -> None:
        """Also stop, at the end, the container of `state_dir` (started by another process)."""
        self.foreign.append(state_dir)

    async def run(self, argv: list[str], **options: Any) -> Result:
        """Start, read both streams to EOF, wait for the exit."""
        process = await self.start(argv, **options)
        stderr = read_to_eof(process.stderr_fd) if process.stderr_fd is not None else _nothing()
        out, err, exit_status = await asyncio.gather(read_to_eof(process.stdout_fd), stderr, process.wait())
        return Result(out, err, exit_status)

    async def __aenter__(self) -> Containers:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop everything, even if stopping one fails; report the first failure afterwards."""
        failures: list[BaseException] = []
        for process in self.started:
            try:
                if not process.closed:
                    await _stop(process)
            except Exception as err:
                failures.append(err)
        for state_dir in self.foreign:
            try:
                found = spawn.reattach(state_dir)
                if found is not None:
                    await _stop(found)
            except Exception as err:
                failures.append(err)
        if failures and exc_info[0] is None:
            raise failures[0]


async def _stop(process: spawn.Process) -> None:
    process.signal(signal.SIGKILL)
    await process.wait()
    process.close_fds()


def run_scenario(scenario: Coroutine[Any, Any, T]) -> T:
    """asyncio.run with a guard: a broken runtime makes a test fail, not hang. Not a speed check:
    the guard is far above anything a working runtime needs, and cancelling still stops the containers."""
    return asyncio.run(asyncio.wait_for(scenario, HANG_GUARD_SECONDS))


def run(argv: list[str], rootfs: Path, base_dir: Path, **options: Any) -> Result:
    """Run one container to completion (for tests that need nothing in between)."""

    async def scenario() -> Result:
        async with Containers(rootfs, base_dir) as containers:
            return await containers.run(argv, **options)

    return run_scenario(scenario())
