"""logship's own network namespace: where the bridges, the containers' veth ends, netavark's firewall rules
and aardvark-dns live, joined to the host by pasta. The host gets no interface, no address, no rule.

    <data-root>/network/
        netns/logship        the namespace (a mounted nsfs file, `logship.runtime.netns`)
        netns/<container>    each running container's own namespace on the bridges
        netavark/            netavark's and aardvark-dns's configuration (which names each network answers)
        uplink.pid, .log     the pasta that carries outbound connections
        ports/<container>.*  the pasta forwarding a container's published ports

It is created when the first container joins a bridge network and removed when the last one has left, so
a host with no such container holds nothing of it. Everything here outlives the daemon: a daemon killed
and started again finds the namespace, the pastas and the containers' namespaces where they were.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from logship.errors import SystemError_
from logship.runtime import netns, pasta

log = logging.getLogger("logship.network")


class NetworkHost:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.netns = root / "netns" / "logship"
        self.config_dir = root / "netavark"
        self.ports_dir = root / "ports"
        self.uplink_pid = root / "uplink.pid"
        self.uplink_log = root / "uplink.log"
        self._uplink_failed = False  # said once per namespace, not at every start

    def container_netns(self, container_id: str) -> Path:
        return self.root / "netns" / container_id

    def exists(self) -> bool:
        return netns.exists(self.netns)

    def prefix(self) -> list[str]:
        """Runs a command inside the namespace (its network only: the host's files and processes)."""
        return netns.enter(self.netns)

    async def ensure(self) -> None:
        """The namespace with its loopback up and its uplink running (started again if it died)."""
        if not self.exists():
            netns.create(self.netns)
            self._loopback_up()
            self._uplink_failed = False
            log.info("created logship's network namespace %s", self.netns)
        if not self._uplink_failed and not pasta.running(self.uplink_pid):
            try:
                pid = await pasta.start_uplink(self.netns, self.uplink_pid, self.uplink_log)
            except SystemError_ as err:
                # Containers still reach each other and their published ports; only the way out is missing.
                self._uplink_failed = True
                log.error("containers on bridge networks have no outbound connectivity: %s", err)
            else:
                log.info("pasta (pid %d) connects logship's network namespace to the host", pid)

    def _loopback_up(self) -> None:
        """The forwarders splice connections into the namespace's 127.0.0.1: its loopback must be up."""
        ip = shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin")
        if ip is None:
            raise SystemError_("cannot set up networking: the `ip` program (iproute2) is not installed")
        result = subprocess.run([*self.prefix(), ip, "link", "set", "lo", "up"], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemError_(f"cannot bring up the loopback of {self.netns}: {result.stderr.strip()}")

    def remove(self) -> None:
        """Nothing uses the namespace any more: stop the uplink and unmount it (aardvark-dns was stopped by
        netavark with the last network; pastas watching the file quit)."""
        pasta.stop(self.uplink_pid)
        netns.remove(self.netns)
        self.uplink_log.unlink(missing_ok=True)
        log.info("removed logship's network namespace %s", self.netns)
