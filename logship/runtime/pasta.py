"""pasta (Debian's passt package), run by the daemon: it joins logship's network namespace to the host
without touching the host's own network.

Two kinds of instance, both attached to logship's namespace (`--netns`) and both daemons of their own (they
outlive a killed logship daemon, which finds them again by their pid files):

- the uplink, one per namespace: a tap interface configured as a copy of the host's (`--config-net`), so
  that containers' outbound connections leave through ordinary sockets of the host. It forwards no port.
- a forwarder per container that publishes ports: it listens on the host's address and port (`-t`/`-u`)
  and splices each connection into the namespace's loopback, where netavark's port rules take it to the
  container. Its own tap stays down and unused: Debian 12's pasta (2023-03) can only forward ports given
  when it starts, and can only carry connections from the host's loopback this way, so the forwarders
  listen on loopback addresses only (see README, "Networks").

pasta quits by itself when the namespace's file is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from logship.errors import SystemError_
from logship.runtime.netns import path as netns_path

PASTA = os.environ.get("LOGSHIP_PASTA", "pasta")
TIMEOUT_S = 30.0
TUN = "/dev/net/tun"


class PastaError(SystemError_):
    pass


def find() -> str:
    found = shutil.which(PASTA, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    if found is None:
        raise PastaError(
            "container networking needs pasta: install Debian's netavark, aardvark-dns and passt packages "
            "(apt-get install netavark aardvark-dns passt)"
        )
    if not os.access(TUN, os.R_OK | os.W_OK):  # a rootless daemon's user, where the device is root's alone
        mode = oct(os.stat(TUN).st_mode & 0o777) if os.path.exists(TUN) else "missing"
        raise PastaError(
            f"pasta needs {TUN}, which this daemon's user may not open (its mode here: {mode}; Debian's default "
            f"is 0666): as root, chmod 0666 {TUN}, or a udev rule, to give rootless daemons outbound "
            "connections and published ports"
        )
    return found


@dataclass
class Forward:
    """Host address and port -> the namespace's loopback port (netavark's rules take it from there)."""

    host_ip: str
    host_port: int
    namespace_port: int
    protocol: str  # tcp | udp

    def spec(self) -> list[str]:
        option = "-t" if self.protocol == "tcp" else "-u"
        return [option, f"{self.host_ip}/{self.host_port}:{self.namespace_port}"]


def _base(netns: Path, pid_file: Path, log_file: Path) -> list[str]:
    # As root pasta would switch to "nobody" before joining the namespace, and could not join it.
    runas = ["--runas", "0"] if os.geteuid() == 0 else []
    return [find(), *runas, "--quiet", "--netns", str(netns_path(netns)), "-P", str(pid_file), "-l", str(log_file)]


async def start_uplink(netns: Path, pid_file: Path, log_file: Path) -> int:
    """Outbound connectivity: no port forwarded either way, and the host's loopback is not reachable
    through the gateway address (`--no-map-gw`), as in Docker, where a container cannot reach the host's
    127.0.0.1."""
    argv = [*_base(netns, pid_file, log_file), "--config-net", "--no-map-gw"]
    argv += ["-t", "none", "-u", "none", "-T", "none", "-U", "none"]
    return await _start(argv, pid_file, log_file, "the namespace's uplink")


async def start_forwarder(
    netns: Path, interface: str, forwards: Sequence[Forward], pid_file: Path, log_file: Path
) -> int:
    argv = [*_base(netns, pid_file, log_file), "-I", interface, "-T", "none", "-U", "none"]
    for protocol, option in (("tcp", "-t"), ("udp", "-u")):
        if not any(f.protocol == protocol for f in forwards):
            argv += [option, "none"]
    for forward in forwards:
        argv += forward.spec()
    return await _start(argv, pid_file, log_file, "the published ports' forwarder")


async def _start(argv: list[str], pid_file: Path, log_file: Path, what: str) -> int:
    pid_file.unlink(missing_ok=True)
    log_file.unlink(missing_ok=True)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:  # it forks to the background once it listens; the parent's exit says how that went
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise PastaError(f"pasta ({what}) did not start within {TIMEOUT_S:.0f}s") from None
    if process.returncode != 0:
        text = "\n".join(
            line for line in (stderr + stdout).decode(errors="replace").splitlines() if "syslog" not in line
        )
        raise PastaError(f"pasta ({what}) failed: {text.strip() or f'exit status {process.returncode}'}")
    pid = running(pid_file)
    if pid == 0:
        raise PastaError(f"pasta ({what}) exited right after starting: {log_file.read_text(errors='replace')[-500:]}")
    return pid


def running(pid_file: Path) -> int:
    """The pid in the file if that process still runs and is the pasta that wrote it (its command line names
    the file: a pid reused by another process is not it), else 0."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return 0
    return pid if os.fsencode(str(pid_file)) in cmdline else 0


def stop(pid_file: Path) -> None:
    pid = running(pid_file)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
