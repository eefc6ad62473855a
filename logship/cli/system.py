"""System commands: info, version, daemon."""

from __future__ import annotations

import platform

import click

from logship import API_VERSION, __version__
from logship.cli.common import get_client
from logship.client import APIError, DaemonUnreachable
from logship.humanize import human_size


@click.command()
def info() -> None:
    """Display system-wide information: containers, the default log driver, data root, daemon log."""
    data = get_client().json("GET", "/info")
    lines = [
        "Server:",
        f" Containers: {data['Containers']}",
        f"  Running: {data['ContainersRunning']}",
        f"  Paused: {data['ContainersPaused']}",
        f"  Stopped: {data['ContainersStopped']}",
        f" Images: {data['Images']}",
        f" Server Version: {data['ServerVersion']}",
        f" Storage Driver: {data['Driver']}",
        f" Logging Driver: {data['LoggingDriver']}",
    ]
    if data.get("LogOpts"):
        lines.append(" Log Opts: " + ", ".join(f"{k}={v}" for k, v in sorted(data["LogOpts"].items())))
    lines += [
        f" Cgroup Driver: {data['CgroupDriver']}",
        f" Cgroup Version: {data['CgroupVersion']}",
        " Plugins:",
        f"  Log: {' '.join(data['Plugins']['Log'])}",
        f"  Network: {' '.join(data['Plugins']['Network'])}",
        " Log Drivers:",
        *(
            f"  {d['Name']}: {d['Origin']}" + (f" (unusable: {d['Error']})" if d["Error"] else "")
            for d in data.get("LogDrivers", [])
        ),
        f" Kernel Version: {data['KernelVersion']}",
        f" Operating System: {data['OperatingSystem']}",
        f" Architecture: {data['Architecture']}",
        f" CPUs: {data['NCPU']}",
        f" Total Memory: {data['MemTotal'] / 2**30:.4g}GiB",
        f" Name: {data['Name']}",
        f" Data Root: {data['DockerRootDir']}",
        f" Daemon Log: {data['DaemonLogPath']}",
        f" Config File: {data.get('ConfigFile') or '(none, defaults)'}",
        f" Live Restore Enabled: {str(data['LiveRestoreEnabled']).lower()}",
        " Security Options:",
        *(f"  {option.removeprefix('name=')}" for option in data.get("SecurityOptions") or []),
    ]
    rootless = data.get("Rootless")
    if rootless:
        cgroup = rootless["Cgroup"]
        lines += [
            " Rootless:",
            f"  User: {rootless['User']} (uid {rootless['UID']}, gid {rootless['GID']})",
            f"  Subordinate Range: {'yes' if rootless['SubordinateRange'] else 'no'}",
            f"  ID Mapping: {rootless['Mapping']}",
            "  Cgroup: "
            + (
                f"{cgroup['Path']} ({', '.join(cgroup['Controllers']) or 'no controllers'})"
                if cgroup["Path"]
                else "none"
            ),
        ]
    buffers = data.get("LogBuffers")
    if buffers:
        limit = human_size(buffers["TotalLimit"]) if buffers["TotalLimit"] else "no daemon-wide limit"
        lines.append(f" Log Disk Buffers: {buffers['Buffers']}, {human_size(buffers['Used'])} used ({limit})")
        lines.append(f"  Pending Deliveries: {buffers['Pending']}")
        lines += [f"   {container_id[:12]}" for container_id in buffers["PendingContainers"]]
    click.echo("\n".join(lines))
    for warning in data.get("Warnings") or []:  # as docker info: on stderr, after the rest
        click.echo(warning, err=True)


@click.command()
def version() -> None:
    """Show the logship version information."""
    click.echo(
        "\n".join(
            [
                "Client:",
                f" Version:           {__version__}",
                f" API version:       {API_VERSION}",
                f" Python version:    {platform.python_version()}",
                f" OS/Arch:           linux/{platform.machine()}",
            ]
        )
    )
    try:
        data = get_client().json("GET", "/version")
    except (APIError, DaemonUnreachable) as err:
        click.echo(f"\n{err}", err=True)
        raise SystemExit(1) from None
    click.echo(
        "\n".join(
            [
                "",
                "Server: logship",
                " Engine:",
                f"  Version:          {data['Version']}",
                f"  API version:      {data['ApiVersion']} (minimum version {data['MinAPIVersion']})",
                f"  Python version:   {data['GoVersion']}",
                f"  OS/Arch:          {data['Os']}/{data['Arch']}",
                f"  Kernel version:   {data['KernelVersion']}",
            ]
        )
    )


@click.command()
@click.option(
    "-H",
    "--host",
    "hosts",
    multiple=True,
    help="Where to serve the API: unix:///PATH or tcp://HOST:PORT (needs --tlsverify or --insecure-tcp); repeatable.",
)
@click.option("--data-root", help="Root of persistent state (default /var/lib/logship as root).")
@click.option("--config-file", help="daemon.json to read (default /etc/logship/daemon.json as root).")
@click.option(
    "-l",
    "--log-level",
    type=click.Choice(["panic", "fatal", "error", "warn", "info", "debug", "trace"]),
    help="Level of the daemon's own log.",
)
@click.option("--log-driver", help="Default log driver for containers.")
@click.option("--log-opt", multiple=True, help="Default log driver option (KEY=value); repeatable.")
@click.option("--tls", is_flag=True, default=None, help="Serve tcp:// hosts over TLS; implied by --tlsverify.")
@click.option(
    "--tlsverify",
    is_flag=True,
    default=None,
    help="Serve tcp:// hosts over TLS and accept only clients whose certificate --tlscacert signed.",
)
@click.option("--tlscacert", metavar="PATH", help="CA that signs client certificates (default ~/.logship/ca.pem).")
@click.option("--tlscert", metavar="PATH", help="The daemon's TLS certificate (default ~/.logship/cert.pem).")
@click.option("--tlskey", metavar="PATH", help="The daemon's TLS private key (default ~/.logship/key.pem).")
@click.option(
    "--insecure-tcp",
    is_flag=True,
    default=None,
    help="Serve tcp:// hosts without TLS: anyone who can connect controls this machine as root.",
)
def daemon(
    hosts: tuple[str, ...],
    data_root: str | None,
    config_file: str | None,
    log_level: str | None,
    log_driver: str | None,
    log_opt: tuple[str, ...],
    tls: bool | None,
    tlsverify: bool | None,
    tlscacert: str | None,
    tlscert: str | None,
    tlskey: str | None,
    insecure_tcp: bool | None,
) -> None:
    """Run the logship daemon in the foreground."""
    from logship.daemon.server import run
    from logship.settings import Flags

    opts = {}
    for item in log_opt:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected KEY=value", param_hint="--log-opt")
        opts[key] = value
    flags = Flags(
        hosts=list(hosts) or None,
        data_root=data_root,
        config_file=config_file,
        log_level=log_level,
        log_driver=log_driver,
        log_opts=opts or None,
        tls=tls,
        tls_verify=tlsverify,
        tls_ca_cert=tlscacert,
        tls_cert=tlscert,
        tls_key=tlskey,
        insecure_tcp=insecure_tcp,
    )
    raise SystemExit(run(flags))


COMMANDS = [info, version, daemon]
