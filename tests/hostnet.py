"""The host's own network, as the tests check it is left alone: its interfaces, addresses, routes and
firewall rules (iptables, ip6tables, nftables), read with the system's tools; and the host's loopback,
the only address of the host the network tests connect to (`free_port`, `fetch`).

logship's bridges, veths and rules live inside its own network namespace; nothing of them may show here.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time

COMMANDS = {
    "links": ["ip", "-br", "link"],
    "addresses": ["ip", "-br", "addr"],
    "routes": ["ip", "route", "show", "table", "all"],
    "iptables": ["iptables-save"],
    "ip6tables": ["ip6tables-save"],
    "nftables": ["nft", "list", "ruleset"],
}
_COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+| expires \d+sec")


def host_network() -> dict[str, str]:
    """What each tool shows, without what changes by itself (comments with dates, packet counters)."""
    state = {}
    for name, argv in COMMANDS.items():
        if shutil.which(argv[0]) is None:
            continue
        done = subprocess.run(argv, capture_output=True, text=True)
        lines = [_COUNTERS.sub("", line).rstrip() for line in done.stdout.splitlines() if not line.startswith("#")]
        state[name] = "\n".join(lines)
    return state


def differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changed = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changed.append(f"{name}:\n--- before\n{before.get(name, '')}\n--- after\n{after.get(name, '')}")
    return changed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(port: int, path: str = "/hostname", timeout: float = 10.0) -> str:
    """GET from the host's loopback; retried while the container's httpd is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                answer = b""
                while chunk := connection.recv(65536):
                    answer += chunk
            if answer:
                return answer.decode(errors="replace")
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answered on 127.0.0.1:{port}")
        time.sleep(0.1)
