"""Ordinary users for the rootless tests, and a logship daemon run as one of them.

`TestUser.create` makes a real user with `useradd` (a home under /home, and, unless told otherwise, the
subordinate uid and gid ranges useradd allocates from /etc/login.defs); `delete` removes it with its home
and ranges (`userdel --remove`). `RootlessDaemon` is tests/harness.py's Daemon with the daemon and every
CLI command run as that user through util-linux's `setpriv` (no sudo, no setuid helper but Debian's
newuidmap/newgidmap, which the daemon runs itself).

The interpreter: the user runs this virtualenv's Python when it can. Where that interpreter lives
somewhere the user cannot reach (pyenv under root's 0700 home, as on the development machines), the user
runs Debian's /usr/bin/python3 (the same 3.11 minor version, so the same compiled extensions) with this
checkout and this virtualenv's site-packages on PYTHONPATH. `interpreter_note()` says which.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.harness import Daemon, kill_and_wait
from tests.rootfs import build_busybox_rootfs

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")
USER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = 65534  # the probe's ordinary user (Debian's nobody)


@cache
def rootless_problem() -> str:
    """Why the rootless tests cannot run here, or "" when they can."""
    if os.geteuid() != 0:
        return "need root (they create users with useradd)"
    for program in ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap"):
        if shutil.which(program) is None:
            package = "uidmap" if program.startswith("new") else ("passwd" if "user" in program else "util-linux")
            return f"need {program} (apt-get install {package})"
    return out_of_reach(NOBODY)


def out_of_reach(uid: int) -> str:
    """Why user `uid` cannot import logship from this checkout (a clone in root's 0700 home, say), or ""."""
    python, path = user_python(uid)
    probe = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "env", f"PYTHONPATH={path}"]
    done = subprocess.run([*probe, python, "-c", "import logship.cli"], capture_output=True, text=True, cwd="/")
    if done.returncode == 0:
        return ""
    why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return (
        f"need this checkout ({REPO}) and its virtualenv where an ordinary user may read them: uid {uid} cannot "
        f"import logship with {python} ({why}); clone it elsewhere, or make the folders above it 0755"
    )


@dataclass
class TestUser:
    __test__ = False  # not a test class, whatever its name

    name: str
    uid: int
    gid: int
    home: Path

    @classmethod
    def create(cls, subordinate_range: bool = True) -> TestUser:
        name = "lsrl" + secrets.token_hex(4)
        command = ["useradd", "--create-home", "--shell", "/bin/sh", "--user-group"]
        if not subordinate_range:
            command += ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
        else:
            command += ["-K", "SUB_UID_COUNT=65536", "-K", "SUB_GID_COUNT=65536"]
        subprocess.run([*command, name], check=True, capture_output=True, timeout=60)
        entry = pwd.getpwnam(name)
        user = cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))
        os.chmod(user.home, 0o755)  # the tests (root) put files here that the user must reach
        return user

    def delete(self) -> None:
        kill_processes_of(self.uid)
        subprocess.run(["userdel", "--remove", "--force", self.name], capture_output=True, timeout=60)

    def prefix(self) -> list[str]:
        """Run what follows as this user, with its own groups and nothing of root's."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "env"]

    def env(self, **extra: str) -> dict[str, str]:
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "PATH": USER_PATH, "LANG": "C.UTF-8"}
        python_path = user_python(self.uid)[1]
        if python_path:
            env["PYTHONPATH"] = python_path
        return {**env, **extra}

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.prefix(), *argv], env=env or self.env(), capture_output=True, timeout=60)

    def give(self, path: Path) -> Path:
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(path)], check=True)
        return path


@cache
def user_python(uid: int) -> tuple[str, str]:
    """(interpreter, PYTHONPATH) with which user `uid` can import logship: this virtualenv's Python when the
    user can run it, else Debian's with this checkout and our site-packages on the path."""
    # Through env: setpriv itself execs with root's credentials still in force for the path lookup, which
    # would find an interpreter the user's own processes (the daemon's init, for one) cannot.
    probe = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "env"]
    done = subprocess.run([*probe, sys.executable, "-c", "import logship.cli"], capture_output=True, cwd="/")
    if done.returncode == 0:
        return sys.executable, ""
    path = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    return str(DEBIAN_PYTHON), path


def interpreter_note(user: TestUser) -> str:
    python, path = user_python(user.uid)
    if not path:
        return f"the user runs this virtualenv's {python}"
    return f"the user cannot run {sys.executable}; it runs {python} with this checkout on PYTHONPATH"


def kill_processes_of(uid: int) -> None:
    """SIGKILL every process of `uid` (a test user's: its daemons and containers), then wait for them."""
    victims = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    victims.append(int(entry.name))
            except OSError:
                continue
    kill_and_wait(victims)


class RootlessDaemon(Daemon):
    """A daemon and CLI run as `user`, its socket, data root and config in a folder of the user's home."""

    def __init__(self, user: TestUser, name: str = "logship") -> None:
        super().__init__(user.home / name)
        self.user = user
        self.root.mkdir(parents=True, exist_ok=True)
        user.give(self.root)

    @property
    def logship(self) -> list[str]:
        return [*self.user.prefix(), user_python(self.user.uid)[0], "-m", "logship"]

    def env(self) -> dict[str, str]:
        return self.user.env(LOGSHIP_NO_AUTOSTART="1", LOGSHIP_HOST=self.host)

    def import_busybox(self, name: str = "busybox") -> str:
        rootfs = build_busybox_rootfs(self.root / f"rootfs-{name.replace(':', '-')}")
        self.user.give(rootfs)  # the user's CLI reads it; the daemon records the user's files as root's
        return self.ok("import", str(rootfs), name).strip()
