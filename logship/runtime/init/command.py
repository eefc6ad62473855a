"""The user's command: found on PATH as Go's exec.LookPath finds it (Docker's error texts and exit
codes 126/127), started with every signal at its default."""

from __future__ import annotations

import errno
import os
import signal
import stat
from collections.abc import Sequence
from typing import NoReturn

from logship.runtime.init.errors import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, InitError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def reset_signals() -> None:
    """The command starts with every signal at its default and none blocked: Python ignores SIGPIPE and
    SIGXFSZ, sh and shield_setup ignore others, and ignored signals survive exec."""
    for number in signal.valid_signals():
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def go_error(err: OSError) -> str:
    """Go prints syscall errors in lower case ("no such file or directory"); Docker's messages do too."""
    text = os.strerror(err.errno) if err.errno else str(err)
    return text[:1].lower() + text[1:]


def is_executable(path: str) -> bool:
    info = os.stat(path)
    return not stat.S_ISDIR(info.st_mode) and bool(info.st_mode & 0o111)


def find_executable(name: str, search_path: str) -> str:
    """Go's exec.LookPath, with the error texts Docker users know."""
    if "/" in name:
        try:
            executable = is_executable(name)
        except OSError as err:
            raise InitError(f'exec: "{name}": stat {name}: {go_error(err)}', EXIT_NOT_FOUND) from err
        if not executable:
            raise InitError(f'exec: "{name}": permission denied', EXIT_CANNOT_EXECUTE)
        return name
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            if is_executable(candidate):
                return candidate
        except OSError:
            continue
    raise InitError(f'exec: "{name}": executable file not found in $PATH', EXIT_NOT_FOUND)


def environment(entries: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if sep and key:  # "KEY" alone means "unset" at this level
            env[key] = value
    return env


def run_command(argv: Sequence[str], env: dict[str, str]) -> NoReturn:
    path = find_executable(argv[0], env.get("PATH", DEFAULT_PATH))
    reset_signals()
    try:
        os.execve(path, list(argv), env)
    except OSError as err:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # reporting must not kill us
        code = EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
        raise InitError(f'exec: "{argv[0]}": {go_error(err)}', code) from err
