"""`logship daemon`: settings, the daemon log, the stores, the API sockets, and an orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import grp
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO

from aiohttp import web

from logship import __version__, paths
from logship.daemon import daemonlog
from logship.daemon.containers import ContainerManager
from logship.settings import Flags, Settings, SettingsError, load

log = logging.getLogger("logship.daemon")

SOCKET_GROUP = "logship"


class DaemonError(Exception):
    """The daemon cannot run; the message says why and what to do."""


def _lock_data_root(settings: Settings) -> IO[str]:
    """One daemon per data root: a second one would fight over the same containers."""
    settings.data_root.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_root, 0o711)
    pid_file = open(settings.data_root / "logship.pid", "a+")  # noqa: SIM115 - held for the daemon's life
    try:
        fcntl.flock(pid_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid_file.seek(0)
        other = pid_file.read().strip() or "?"
        raise DaemonError(
            f"another logship daemon (pid {other}) is already using data root {settings.data_root}; "
            "stop it first or give this one another --data-root"
        ) from None
    pid_file.seek(0)
    pid_file.truncate()
    pid_file.write(f"{os.getpid()}\n")
    pid_file.flush()
    return pid_file


def _prepare_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # a socket left behind by a daemon that died
        return
    finally:
        probe.close()
    raise DaemonError(f"another daemon is already listening on {path}; stop it or use another -H unix://PATH")


def _secure_socket(path: Path) -> None:
    """0660 and group `logship` when that group exists, like docker.sock with group docker."""
    os.chmod(path, 0o660)
    with contextlib.suppress(KeyError, PermissionError):
        os.chown(path, -1, grp.getgrnam(SOCKET_GROUP).gr_gid)


async def serve(settings: Settings, announce: IO[str] | None) -> None:
    # Local imports keep `logship daemon --help` and settings errors fast.
    from logship.api.app import Backend, make_app
    from logship.runtime.images import ImageStore

    images = ImageStore(settings.data_root)
    containers = ContainerManager(settings, images)
    await containers.load()
    app = make_app(Backend(settings, containers, images, time.time_ns()))
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    for host in settings.hosts:
        path = paths.socket_path_of(host)
        _prepare_socket(path)
        await web.UnixSite(runner, str(path)).start()
        _secure_socket(path)
    log.info(
        "logship %s daemon ready: API on %s, data root %s, default log driver %s",
        __version__,
        ", ".join(settings.hosts),
        settings.data_root,
        settings.log_driver,
    )
    if announce is not None:
        print(
            f"logship daemon ready on {', '.join(settings.hosts)} (data root {settings.data_root}; "
            f"daemon log {daemonlog.location(settings.daemon_log, settings.daemon_log_path)})",
            file=announce,
            flush=True,
        )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down%s", " (live-restore: containers keep running)" if settings.live_restore else "")
    await containers.shutdown(stop_containers=not settings.live_restore, timeout=settings.shutdown_timeout)
    await runner.cleanup()
    for host in settings.hosts:
        with contextlib.suppress(OSError):
            paths.socket_path_of(host).unlink()
    log.info("daemon stopped")


def _daemon_log_problem(settings: Settings) -> str:
    if settings.daemon_log != "journald":
        return ""
    try:
        import systemd.journal  # noqa: F401
    except ImportError:
        return "daemon-log is journald but systemd-python is not installed: pip install 'logship[journald]'"
    from logship.drivers.journald import journal_problem

    problem = journal_problem()
    return f"daemon-log is journald but {problem}" if problem else ""


def run(flags: Flags) -> int:
    try:
        settings = load(flags)
        pid_file = _lock_data_root(settings)
    except (SettingsError, DaemonError) as err:
        print(f"logship daemon: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"logship daemon: cannot prepare the data root: {err}", file=sys.stderr)
        return 1
    problem = _daemon_log_problem(settings)
    if problem:
        print(f"logship daemon: {problem}", file=sys.stderr)
        pid_file.close()
        return 1
    daemonlog.setup(settings.daemon_log_path, settings.log_level, settings.log_format, settings.daemon_log)
    try:
        asyncio.run(serve(settings, sys.stderr))
    except DaemonError as err:
        log.error("%s", err)
        print(f"logship daemon: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        log.exception("daemon failed")
        hint = (
            " (are you root? the default paths need root; non-root users get XDG paths)"
            if err.errno in (errno.EACCES, errno.EPERM)
            else ""
        )
        print(f"logship daemon: {err}{hint}", file=sys.stderr)
        return 1
    finally:
        pid_file.close()
    return 0
