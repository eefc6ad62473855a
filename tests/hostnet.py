"""The host's own network, as the tests check it is left alone: its interfaces, addresses, routes and
firewall rules (iptables, ip6tables, nftables), read with the system's tools.

logship's bridges, veths and rules live inside its own network namespace; nothing of them may show here.
"""

from __future__ import annotations

import re
import shutil
import subprocess

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
