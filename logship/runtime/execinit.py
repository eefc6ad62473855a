"""The process `exec` starts in a running container: it enters the container's root, cgroup, user and
capability set, then becomes the command.

The daemon runs it as

    nsenter --target <container pid 1> --mount --uts --ipc --net --pid --root=/ -- \\
        python -I -S execinit.py <exec config>

util-linux's nsenter joins the container's namespaces and forks (a process joins a pid namespace only
through a child); `--root=/` is the host's root, opened before the namespaces are entered, so this Python
and its standard library are still reachable. Everything is imported here before the root changes, as in
init.py, whose steps this file reuses (it loads init.py by path: `-I` keeps the script's directory off
sys.path, and this file must stay standard library only, like init.py).

In order:
1. report its host pid on the exec's status FIFO (the daemon shows it as the exec's Pid);
2. open the container's cgroup.procs files and its root (`/proc/<pid 1>/root`), then chroot there: the
   container's own mounts (/proc, /dev, /etc/hosts ...) are what it sees from now on;
3. find the user (`-u name|uid[:group|gid]`) in the container's /etc/passwd and /etc/group;
4. enter the working directory (never created, unlike at `run`: Docker's exec fails instead);
5. with a tty, start a session with the terminal; join the cgroup; drop the bounding set to the
   container's capabilities; switch user (a user other than root keeps no capabilities, as in Docker);
   set no_new_privs;
6. exec the command. A failure is one JSON line on the status FIFO, `{"error": ..., "exit_code": N}`
   (127: not found, 126: cannot execute or any other setup failure, as dockerd's exec), and we exit N.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

EXIT_CANNOT_EXECUTE = 126


def load_init() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "logship_container_init", os.path.join(os.path.dirname(__file__), "init.py")
    )
    if spec is None or spec.loader is None:
        raise ImportError("cannot load init.py beside execinit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


init = load_init()


class User:
    def __init__(self, uid: int, gid: int, groups: list[int], home: str) -> None:
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.home = home


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return [line.rstrip("\n").split(":") for line in file if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(spec: str) -> User:
    """Docker's `-u` lookup in the container's files: a name or a uid, optionally `:group` or `:gid`.
    A number that is not in /etc/passwd is still used (home "/"), a name that is not is an error."""
    user_part, _, group_part = spec.partition(":")
    user_part = user_part or "0"
    passwd = [entry for entry in _entries("/etc/passwd") if len(entry) >= 7]
    groups = [entry for entry in _entries("/etc/group") if len(entry) >= 4]
    match = next((e for e in passwd if e[0] == user_part or (user_part.isdigit() and e[2] == user_part)), None)
    if match is not None:
        uid, gid, home, name = int(match[2]), int(match[3]), match[5] or "/", match[0]
    elif user_part.isdigit():
        uid, gid, home, name = int(user_part), 0 if not group_part else -1, "/", ""
    else:
        raise init.InitError(
            f"unable to find user {user_part}: no matching entries in passwd file", EXIT_CANNOT_EXECUTE
        )
    if group_part:
        found = next((g for g in groups if g[0] == group_part or (group_part.isdigit() and g[2] == group_part)), None)
        if found is not None:
            gid = int(found[2])
        elif group_part.isdigit():
            gid = int(group_part)
        else:
            raise init.InitError(
                f"unable to find group {group_part}: no matching entries in group file", EXIT_CANNOT_EXECUTE
            )
    gid = max(gid, 0)
    supplementary = sorted({int(g[2]) for g in groups if name and name in g[3].split(",")} - {gid})
    return User(uid, gid, supplementary, home)


def drop_bounding_set(keep: Sequence[int], last_cap: int) -> None:
    kept = set(keep)
    for number in range(last_cap + 1):
        if number not in kept:
            init.prctl(init.PR_CAPBSET_DROP, number)


def setup_and_exec(config: dict[str, Any], status: Any) -> NoReturn:
    init.prctl(init.PR_SET_PDEATHSIG, 9)  # the daemon's nsenter going away takes us with it before the exec
    pid, _, start_time = init.host_identity()
    status.send({"pid": pid, "start_time": start_time})
    with open("/proc/sys/kernel/cap_last_cap") as last_cap_file:
        last_cap = int(last_cap_file.read())
    procs_fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in config["cgroup_procs"]]
    root = os.open(f"/proc/{int(config['container_pid'])}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    os.chdir("/")
    user = resolve_user(config["user"])
    workdir = config["workdir"]
    try:
        os.chdir(workdir)
    except OSError as err:
        raise init.InitError(
            f'chdir to cwd ("{workdir}") set in config.json failed: {init.go_error(err)}', EXIT_CANNOT_EXECUTE
        ) from err
    if config["tty"]:
        init.take_terminal()
    os.umask(0o022)
    init.close_inherited_fds()
    init.join_cgroups(procs_fds)
    capabilities = config["capabilities"]
    drop_bounding_set(capabilities, last_cap)
    os.setgroups(user.groups)
    os.setgid(user.gid)
    if user.uid == 0:
        init.apply_capabilities(capabilities, last_cap)  # also sets no_new_privs
    else:
        os.setuid(user.uid)  # leaving uid 0 clears the permitted and effective sets: no capabilities
        init.prctl(init.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    env = init.environment(config["env"])
    env.setdefault("HOME", user.home)
    init.run_command(config["argv"], env)
    raise AssertionError("run_command returned")  # it execs or raises


def main(argv: Sequence[str]) -> NoReturn:
    if len(argv) != 2:
        sys.stderr.write("usage: execinit.py <exec config>\n")
        os._exit(init.EXIT_SETUP_FAILED)
    with open(argv[1]) as config_file:
        config = json.load(config_file)
    init.shield_setup()
    status = init.Status(config["status_fifo"])
    try:
        setup_and_exec(config, status)
    except init.InitError as err:
        status.send({"error": err.message, "exit_code": err.exit_code})
        os._exit(err.exit_code)
    except Exception as err:  # anything else: the exec could not start, with its cause
        status.send({"error": f"exec setup failed: {init.describe(err)}", "exit_code": EXIT_CANNOT_EXECUTE})
        os._exit(EXIT_CANNOT_EXECUTE)


if __name__ == "__main__":
    main(sys.argv)
