"""The processes of a running container, as the host sees them: every process in its pid namespace (its
pid 1, what it started, and what `exec` started in it). Read from /proc, so it needs no cgroup."""

from __future__ import annotations

import os


def pids_of(init_pid: int) -> list[int]:
    """Host pids sharing `init_pid`'s pid namespace, sorted; [] when that process is gone."""
    try:
        namespace = os.stat(f"/proc/{init_pid}/ns/pid").st_ino
    except OSError:
        return []
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}/ns/pid").st_ino == namespace:
                found.append(int(name))
        except OSError:
            continue  # it exited meanwhile, or is a kernel thread we may not look at
    return sorted(found)
