"""`logship daemon`: settings, the daemon log, the stores, the API's hosts, and an orderly shutdown.

The API is the same on every host: unix sockets (0660, group `logship`), tcp:// hosts with TLS (mutual
with --tlsverify; see tlsserver.py for why TLS is not aiohttp's) and, only on request, plain TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import grp
import logging
import os
import resource
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import IO

from aiohttp import web

from logship import __version__, paths, tls
from logship.daemon import daemonlog
from logship.daemon.containers import ContainerManager
from logship.daemon.tlsserver import TLSListener
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


def _go_rootless(settings: Settings) -> None:
    """An ordinary user's daemon becomes root of its own user namespace before anything else runs (the
    kernel lets only a single-threaded process in); a restart joins the namespace its running containers
    are in, so that it controls them again (logship.runtime.userns). Its containers' cgroups go to the
    cgroup v2 subtree delegated to the user, if there is one (logship.runtime.cgroupdelegation)."""
    from logship.runtime import cgroupdelegation, cgroups, userns
    from logship.runtime.process import live_supervisors

    delegation = cgroupdelegation.settle(cgroupdelegation.discover())  # with the host's view of owners
    containers = settings.data_root / "containers"
    state_dirs = sorted(containers.iterdir()) if containers.is_dir() else []
    try:
        userns.enter(join=live_supervisors(state_dirs))
    except userns.UserNamespaceError as err:
        raise DaemonError(f"cannot run rootless: {err}") from None
    cgroups.configure(delegation.hierarchy())


def _log_rootless() -> None:
    from logship.runtime import cgroups, userns

    state = userns.current()
    if state is None:
        return
    hierarchy = cgroups.configured()
    log.info(
        "rootless: running as %s (uid %d) in %s; %s; containers' cgroups: %s",
        state.user,
        state.uid,
        "the user namespace of running containers (joined)" if state.joined else "a new user namespace",
        state.range_note(),
        hierarchy.unified_root
        if hierarchy and hierarchy.unified_root
        else f"none ({hierarchy.refusal if hierarchy else ''})",
    )


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
    """0660 and group `logship` when that group exists, like docker.sock with group docker. A rootless
    daemon's socket is its user's alone (0600): whoever reaches it acts as that user."""
    if paths.rootless():
        os.chmod(path, 0o600)
        return
    os.chmod(path, 0o660)
    with contextlib.suppress(KeyError, PermissionError):
        os.chown(path, -1, grp.getgrnam(SOCKET_GROUP).gr_gid)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for tcp:// hosts with TLS, made before anything starts so that a missing or bad file
    stops the daemon at once, naming the file. None when no host needs one."""
    if not settings.tls or not any(isinstance(host, paths.TcpHost) for host in settings.listen_hosts()):
        return None
    client_ca = settings.tls_ca_cert if settings.tls_verify else None
    try:
        return tls.server_context(settings.tls_cert, settings.tls_key, client_ca)
    except tls.TLSFileError as err:
        raise DaemonError(str(err)) from None


def _describe(host: paths.Host, settings: Settings) -> str:
    if isinstance(host, paths.UnixHost):
        return str(host)
    if settings.tls_verify:
        return f"{host} (TLS, clients need a certificate signed by {settings.tls_ca_cert})"
    if settings.tls:
        return f"{host} (TLS, clients not verified)"
    return f"{host} (plain TCP)"


def _warnings(settings: Settings) -> list[str]:
    """dockerd warns about these too: either way, whoever reaches the port is root on this machine."""
    warnings = []
    for host in settings.listen_hosts():
        if not isinstance(host, paths.TcpHost) or settings.tls_verify:
            continue
        if settings.tls:
            warnings.append(
                f"{host} serves the API over TLS without verifying clients: anyone who can connect to it "
                "controls this machine as root; use --tlsverify with --tlscacert to require client certificates"
            )
        else:
            warnings.append(
                f"{host} serves the API over plain TCP (--insecure-tcp), unencrypted and unauthenticated: "
                "anyone who can connect to it controls this machine as root; use --tlsverify instead"
            )
    return warnings


async def _listen(runner: web.AppRunner, settings: Settings, context: ssl.SSLContext | None) -> list[TLSListener]:
    tls_listeners = []
    assert runner.server is not None  # set up by runner.setup()
    for host in settings.listen_hosts():
        if isinstance(host, paths.UnixHost):
            _prepare_socket(host.path)
            await web.UnixSite(runner, str(host.path)).start()
            _secure_socket(host.path)
            continue
        try:
            if context is not None:
                listener = TLSListener(runner.server, context)
                await listener.start(host)
                tls_listeners.append(listener)
            else:
                await web.TCPSite(runner, host.address, host.port).start()
        except OSError as err:
            raise DaemonError(f"cannot listen on {host}: {err.strerror or err}") from None
    return tls_listeners


async def serve(settings: Settings, announce: IO[str] | None, context: ssl.SSLContext | None = None) -> None:
    """Serve the API until SIGTERM/SIGINT; `context` is `tls_context(settings)`."""
    # Local imports keep `logship daemon --help` and settings errors fast.
    from logship.api.app import Backend, make_app
    from logship.runtime.images import ImageStore

    images = ImageStore(settings.data_root)
    containers = ContainerManager(settings, images)
    await containers.load()
    app = make_app(Backend(settings, containers, images, time.time_ns()))
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    tls_listeners = await _listen(runner, settings, context)
    served = ", ".join(_describe(host, settings) for host in settings.listen_hosts())
    log.info(
        "logship %s daemon ready: API on %s, data root %s, default log driver %s",
        __version__,
        served,
        settings.data_root,
        settings.log_driver,
    )
    _log_rootless()
    for warning in _warnings(settings):
        log.warning("%s", warning)
        if announce is not None:
            print(f"WARNING: {warning}", file=announce, flush=True)
    if announce is not None:
        print(
            f"logship daemon ready on {served} (data root {settings.data_root}; "
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
    await runner.cleanup()  # closes aiohttp's side of the TLS connections too, which then say close_notify
    for listener in tls_listeners:
        await listener.close()
    for host in settings.listen_hosts():
        if isinstance(host, paths.UnixHost):
            with contextlib.suppress(OSError):
                host.path.unlink()
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


def _raise_open_files_limit() -> None:
    """A container holds about ten descriptors in the daemon (its FIFOs, spool segments, read times, log
    files, ledgers): the soft limit many systems give (1024) would stop at ~100 containers. Raise it to the
    hard limit, as Go's runtime does for dockerd."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(flags: Flags) -> int:
    # The CLI's main() lets SIGPIPE end it quietly (`logship logs x | head`); the daemon writes to clients
    # that may hang up at any time, which must be an error on that one connection, not the daemon's death.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    _raise_open_files_limit()
    try:
        settings = load(flags)
        context = tls_context(settings)
        pid_file = _lock_data_root(settings)
    except (SettingsError, DaemonError) as err:
        print(f"logship daemon: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"logship daemon: cannot prepare the data root: {err}", file=sys.stderr)
        return 1
    try:
        if os.geteuid() != 0:
            _go_rootless(settings)
    except (DaemonError, OSError) as err:
        pid_file.close()
        print(f"logship daemon: {err}", file=sys.stderr)
        return 1
    problem = _daemon_log_problem(settings)
    if problem:
        print(f"logship daemon: {problem}", file=sys.stderr)
        pid_file.close()
        return 1
    daemonlog.setup(settings.daemon_log_path, settings.log_level, settings.log_format, settings.daemon_log)
    try:
        asyncio.run(serve(settings, sys.stderr, context))
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
