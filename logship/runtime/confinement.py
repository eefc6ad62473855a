"""The daemon's half of confining a container: what init.json says about capabilities, seccomp, the
user, limits, mounts and `--init`, computed before the container starts.

- Capabilities: Docker's default set with cap-add/cap-drop, or every capability with --privileged.
- Seccomp: Docker's default profile unless `seccomp=unconfined` or --privileged; a user's profile
  otherwise. The BPF program is compiled here (logship.runtime.seccomp) and written to the state
  directory, where init reads it before pivot_root.
- `--init`: Docker runs its docker-init (tini) as pid 1; logship bind-mounts the host's static tini
  (Debian's `tini` package) read-only at /sbin/docker-init, as dockerd does, and runs the command under it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from logship.errors import InvalidParameter
from logship.runtime import capabilities, seccomp
from logship.runtime.statedir import write_bytes_atomically

SECCOMP_PROGRAM = "seccomp.bpf"
INIT_TARGET = "/sbin/docker-init"
# A static tini works in any image (no libc needed inside); Debian's docker.io names its copy docker-init.
INIT_CANDIDATES = ("tini-static", "docker-init")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/libexec/docker"


def find_init() -> str:
    for name in INIT_CANDIDATES:
        found = shutil.which(name, path=HOST_PATH)
        if found:
            return os.path.realpath(found)
    raise InvalidParameter(
        "--init needs a static tini on the host (docker-init): apt-get install tini (it provides tini-static)"
    )


def init_config(
    state_dir: Path,
    cap_add: list[str],
    cap_drop: list[str],
    privileged: bool,
    seccomp_profile: str,
) -> dict[str, Any]:
    """The capabilities and the seccomp filter of init.json (the program written to the state dir)."""
    caps = capabilities.for_container(["ALL"] if privileged else cap_add, [] if privileged else cap_drop)
    config: dict[str, Any] = {"capabilities": caps, "seccomp": None}
    if privileged or seccomp_profile == "unconfined":
        return config
    text = seccomp.default_profile_text() if seccomp_profile in ("", "default") else seccomp_profile
    names = [capabilities.CAPABILITY_NAMES[number] for number in caps if number < len(capabilities.CAPABILITY_NAMES)]
    program, flags = seccomp.compile_profile(text, names)
    path = state_dir / SECCOMP_PROGRAM
    state_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, program)
    config["seccomp"] = {"program": str(path), "flags": flags}
    return config


def init_mount(init_binary: str) -> dict[str, Any]:
    return {"type": "bind", "source": init_binary, "target": INIT_TARGET, "readonly": True, "copy_up": False}
