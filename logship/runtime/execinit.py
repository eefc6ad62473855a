"""The process `exec` starts in a running container: it enters the container's root, cgroup, limits, user,
capability set and seccomp filter, then becomes the command.

The daemon runs it as

    nsenter --target <container pid 1> --mount --uts --ipc --net --pid --root=/ -- \\
        python -I -S execinit.py <exec config>

util-linux's nsenter joins the container's namespaces and forks (a process joins a pid namespace only
through a child); `--root=/` is the host's root, opened before the namespaces are entered, so this Python
and its standard library are still reachable. The steps are the container init's own modules
(logship.runtime.init: identity, confine, command), imported here before the root changes; like them,
this file imports the standard library only (`-I -S`: no site-packages).

In order:
1. report its host pid on the exec's status FIFO (the daemon shows it as the exec's Pid);
2. open the container's cgroup.procs files, read the container's seccomp program (from its state
   directory), open its root (`/proc/<pid 1>/root`), then chroot there: the container's own mounts
   (/proc, /dev, /etc/hosts ...) are what it sees from now on;
3. enter the working directory (never created, unlike at `run`: Docker's exec fails instead);
4. with a tty, start a session with the terminal; join the cgroup;
5. as the container's init does (`confine`): its ulimits, the user (`-u`, else the container's) and
   groups found in the container's /etc/passwd and /etc/group, the capability set (a user other than
   root keeps none after exec, as in Docker), no_new_privs as the container has it, its seccomp filter;
6. exec the command. A failure is one JSON line on the status FIFO, `{"error": ..., "exit_code": N}`
   (127: not found, 126: cannot execute or any other setup failure, as dockerd's exec), and we exit N.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from collections.abc import Sequence
from typing import Any, NoReturn

from logship.runtime.init import confine
from logship.runtime.init.command import environment, go_error, run_command
from logship.runtime.init.errors import EXIT_SETUP_FAILED, InitError
from logship.runtime.init.main import (
    Status,
    close_inherited_fds,
    describe,
    host_identity,
    join_cgroups,
    shield_setup,
    take_terminal,
)
from logship.runtime.init.syscalls import PR_SET_PDEATHSIG, prctl

EXIT_CANNOT_EXECUTE = 126


def setup_and_exec(config: dict[str, Any], status: Status) -> NoReturn:
    prctl(PR_SET_PDEATHSIG, 9)  # the daemon's nsenter going away takes us with it before the exec
    pid, _, start_time = host_identity()
    status.send({"pid": pid, "start_time": start_time})
    with open("/proc/sys/kernel/cap_last_cap") as last_cap_file:
        last_cap = int(last_cap_file.read())
    procs_fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in config["cgroup_procs"]]
    program = confine.read_seccomp(config)
    root = os.open(f"/proc/{int(config['container_pid'])}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    os.chdir("/")
    workdir = config["workdir"]
    try:
        os.chdir(workdir)
    except OSError as err:
        raise InitError(
            f'chdir to cwd ("{workdir}") set in config.json failed: {go_error(err)}', EXIT_CANNOT_EXECUTE
        ) from err
    if config["tty"]:
        take_terminal()
    os.umask(0o022)
    close_inherited_fds()
    join_cgroups(procs_fds)
    env = environment(config["env"])
    who = confine.confine(config, program, config["capabilities"], last_cap)
    env.setdefault("HOME", who.home)
    run_command(config["argv"], env)


def main(argv: Sequence[str]) -> NoReturn:
    if len(argv) != 2:
        sys.stderr.write("usage: execinit.py <exec config>\n")
        os._exit(EXIT_SETUP_FAILED)
    with open(argv[1]) as config_file:
        config = json.load(config_file)
    shield_setup()
    status = Status(config["status_fifo"])
    try:
        setup_and_exec(config, status)
    except InitError as err:  # dockerd's exec reports a failed setup as 126, where run says 125
        code = EXIT_CANNOT_EXECUTE if err.exit_code == EXIT_SETUP_FAILED else err.exit_code
        status.send({"error": err.message, "exit_code": code})
        os._exit(code)
    except Exception as err:  # anything else: the exec could not start, with its cause
        status.send({"error": f"exec setup failed: {describe(err)}", "exit_code": EXIT_CANNOT_EXECUTE})
        os._exit(EXIT_CANNOT_EXECUTE)


if __name__ == "__main__":
    main(sys.argv)
