"""Container commands: run, create, start, restart, ps, inspect, wait, stop, kill, rm, rename."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import click

from logship.cli import attach as attaching
from logship.cli import netflags, runflags
from logship.cli.common import ago, for_each, get_client, print_table
from logship.client import APIError, Client, path_quote

_RUN_CONTEXT = {"ignore_unknown_options": False, "allow_interspersed_args": False}


def _exit_code_for(message: str) -> int:
    """The docker CLI's mapping of start failures to exit codes."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return 125


def parse_env(values: tuple[str, ...]) -> list[str]:
    """`-e KEY=value`, or `-e KEY` to pass KEY from our own environment (dropped when unset), as docker."""
    env = []
    for value in values:
        if "=" in value:
            env.append(value)
        elif value in os.environ:
            env.append(f"{value}={os.environ[value]}")
    return env


def _parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise click.BadParameter(f"invalid {what} {value!r}: expected KEY=VALUE")
        pairs[key] = val if sep else ""
    return pairs


def _parse_memory(value: str | None) -> int:
    if not value:
        return 0
    from logship.units import SizeError, ram_in_bytes

    try:
        return ram_in_bytes(value)
    except SizeError as err:
        raise click.BadParameter(f"{err} (examples: 64m, 1g)", param_hint="--memory") from None


def _parse_cpus(value: str | None) -> int:
    if not value:
        return 0
    try:
        return round(float(value) * 1e9)
    except ValueError:
        raise click.BadParameter(
            f"invalid value {value!r}: give a number of CPUs such as 1.5", param_hint="--cpus"
        ) from None


def _parse_restart(value: str | None, auto_remove: bool) -> dict[str, Any] | None:
    """`--restart no|on-failure[:N]|always|unless-stopped`; the daemon checks names and counts."""
    if not value:
        return None
    from logship.daemon.restart import NO, parse_flag

    try:
        policy = parse_flag(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--restart") from None
    if auto_remove and policy["Name"] not in ("", NO):
        raise click.UsageError("conflicting options: cannot specify both --restart and --rm")
    return policy


def create_options(f: Any) -> Any:
    """The options `create` and `run` share."""
    options = [
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY (stdout and stderr merged)."),
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, help="Set an environment variable (KEY=value, or KEY)."),
        click.option("-l", "--label", multiple=True, help="Set a label (KEY=value)."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("--hostname", help="Container host name (default: the short id)."),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
        click.option("--log-driver", help="Logging driver for the container."),
        click.option("--log-opt", multiple=True, help="Log driver option (KEY=value)."),
        click.option("-m", "--memory", help="Memory limit (e.g. 64m)."),
        click.option("--pids-limit", type=int, help="Tune container pids limit (-1 for unlimited)."),
        click.option("--cpus", help="Number of CPUs (e.g. 1.5)."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("--rm", "auto_remove", is_flag=True, help="Remove the container when it exits."),
        click.option(
            "--restart",
            "restart_policy",
            help="Restart policy when the container exits: no, on-failure[:max-retries], always, unless-stopped.",
        ),
        click.option("--stop-signal", help="Signal to stop the container (default SIGTERM)."),
        click.option(
            "--pull",
            type=click.Choice(["always", "missing", "never"]),
            default="missing",
            show_default=True,
            help="Pull image before running.",
        ),
        click.option("--platform", help="Set platform if server is multi-platform capable (os/arch[/variant])."),
        *runflags.options(),
        *netflags.options(),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _create_body(params: dict[str, Any], attach_output: bool) -> dict[str, Any]:
    command = list(params["command"])
    body: dict[str, Any] = {
        "Image": params["image"],
        "Cmd": command or None,
        "Env": parse_env(params["env"]),
        "Labels": _parse_pairs(params["label"], "label"),
        "Tty": params["tty"],
        "OpenStdin": params["interactive"],
        "StdinOnce": params["interactive"] and attach_output,
        "AttachStdin": params["interactive"] and attach_output,
        "AttachStdout": attach_output,
        "AttachStderr": attach_output,
        "WorkingDir": params["workdir"] or "",
        "HostConfig": {
            "LogConfig": {"Type": params["log_driver"] or "", "Config": _parse_pairs(params["log_opt"], "log-opt")},
            "Memory": _parse_memory(params["memory"]),
            "NanoCpus": _parse_cpus(params["cpus"]),
            "PidsLimit": params["pids_limit"],
            "CapAdd": list(params["cap_add"]) or None,
            "CapDrop": list(params["cap_drop"]) or None,
            "AutoRemove": params["auto_remove"],
        },
    }
    if params["hostname"]:
        body["Hostname"] = params["hostname"]
    if params["entrypoint"] is not None:
        body["Entrypoint"] = [params["entrypoint"]] if params["entrypoint"] else [""]
    if params["stop_signal"]:
        body["StopSignal"] = params["stop_signal"]
    policy = _parse_restart(params["restart_policy"], params["auto_remove"])
    if policy is not None:
        body["HostConfig"]["RestartPolicy"] = policy
    runflags.apply(params, body)
    netflags.apply(params, body)
    return body


def _create(client: Client, params: dict[str, Any], attach_output: bool) -> str:
    """Create the container, pulling its image first (`--pull always`) or when it is missing (the
    default, as docker's CLI does it: the pull's progress on stderr)."""
    from logship.cli.registry import pull_image  # only when creating: the pull code is not small

    body = _create_body(params, attach_output)
    query = {"name": params["name"]} if params["name"] else None
    if params["pull"] == "always":
        pull_image(client, params["image"], params["platform"], False, sys.stderr)
    try:
        created = client.json("POST", "/containers/create", query, body)
    except APIError as err:
        if not (err.status == 404 and "image" in str(err).lower()):
            raise
        image = params["image"] if ":" in params["image"].rsplit("/", 1)[-1] else params["image"] + ":latest"
        click.echo(f"Unable to find image '{image}' locally", err=True)
        if params["pull"] != "missing":
            raise
        pull_image(client, params["image"], params["platform"], False, sys.stderr)
        created = client.json("POST", "/containers/create", query, body)
    for warning in created.get("Warnings") or []:
        click.echo(f"WARNING: {warning}", err=True)
    return str(created["Id"])


@click.command(context_settings=_RUN_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Run in the background and print the container ID.")
@create_options
def run(detach: bool, **params: Any) -> None:
    """Create and start a container: IMAGE [COMMAND] [ARG...]."""
    client = get_client()
    try:
        container_id = _create(client, params, attach_output=not detach)
    except APIError as err:
        click.echo(f"logship: Error response from daemon: {err}", err=True)
        sys.exit(125)
    if detach:
        _start(client, container_id, params["auto_remove"])
        click.echo(container_id)
        return
    sys.exit(_run_attached(client, container_id, params))


def _start(client: Client, container_id: str, auto_remove: bool) -> None:
    try:
        client.request("POST", f"/containers/{container_id}/start").read()
    except APIError as err:
        click.echo(f"logship: Error response from daemon: {err}", err=True)
        if auto_remove:
            try:
                client.request("DELETE", f"/containers/{container_id}", {"force": "1"}).read()
            except APIError:
                pass
        sys.exit(_exit_code_for(str(err)))


def _run_attached(client: Client, container_id: str, params: dict[str, Any]) -> int:
    """docker run's attached flow: wait registered first, attach, start, copy, exit with the exit code."""
    condition = "removed" if params["auto_remove"] else "next-exit"
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome.update(client.json("POST", f"/containers/{container_id}/wait", {"condition": condition}))
        except Exception as err:  # reported after the output is copied
            outcome["error"] = err

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    query = {"stream": "1", "stdout": "1", "stderr": "1", "stdin": "1" if params["interactive"] else None}
    sock, first = client.hijack(f"/containers/{container_id}/attach", query)
    _start(client, container_id, params["auto_remove"])
    tty = bool(params["tty"])
    if tty:
        resize = f"/containers/{container_id}/resize"
        attaching.send_resize(client, resize)
        attaching.on_resize(lambda: attaching.send_resize(client, resize))
    else:
        attaching.proxy_signals(lambda sig: _forward_signal(client, container_id, sig))
    with attaching.raw_terminal(tty and params["interactive"]):
        attaching.stream(sock, first, tty, send_stdin=params["interactive"])
    waiter.join()
    if "error" in outcome:
        click.echo(f"logship: error waiting for the container: {outcome['error']}", err=True)
        return 125
    return int(outcome.get("StatusCode", 125))


def _forward_signal(client: Client, container_id: str, sig: int) -> None:
    """docker run's --sig-proxy: a signal we receive goes to the container instead of ending us."""
    try:
        client.request("POST", f"/containers/{container_id}/kill", {"signal": str(sig)}).read()
    except APIError:
        pass


@click.command(context_settings=_RUN_CONTEXT)
@create_options
def create(**params: Any) -> None:
    """Create a container without starting it: IMAGE [COMMAND] [ARG...]."""
    client = get_client()
    click.echo(_create(client, params, attach_output=False))


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach stdout/stderr and wait for the exit.")
@click.argument("containers", nargs=-1, required=True)
def start(attach: bool, containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    client = get_client()
    failed = False
    for ref in containers:
        try:
            if attach:
                info = client.json("GET", f"/containers/{path_quote(ref)}/json")
                sock, first = client.hijack(
                    f"/containers/{info['Id']}/attach", {"stream": "1", "stdout": "1", "stderr": "1"}
                )
                client.request("POST", f"/containers/{info['Id']}/start").read()
                attaching.stream(sock, first, bool(info["Config"]["Tty"]), send_stdin=False)
                result = client.json("POST", f"/containers/{info['Id']}/wait")
                sys.exit(int(result["StatusCode"]))
            client.request("POST", f"/containers/{path_quote(ref)}/start").read()
            click.echo(ref)
        except APIError as err:
            click.echo(f"Error response from daemon: {err}", err=True)
            failed = True
    if failed:
        sys.exit(1)


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (e.g. status=exited, name=web).")
def ps(show_all: bool, quiet: bool, no_trunc: bool, filters: tuple[str, ...]) -> None:
    """List containers."""
    query: dict[str, Any] = {"all": "1" if show_all else None}
    if filters:
        grouped: dict[str, list[str]] = {}
        for item in filters:
            key, _, value = item.partition("=")
            grouped.setdefault(key, []).append(value)
        query["filters"] = json.dumps(grouped)
    containers = get_client().json("GET", "/containers/json", query)
    if quiet:
        for c in containers:
            click.echo(c["Id"] if no_trunc else c["Id"][:12])
        return
    rows = []
    for c in containers:
        command = c["Command"] if no_trunc else _truncate(c["Command"], 20)
        rows.append(
            [
                c["Id"] if no_trunc else c["Id"][:12],
                c["Image"],
                f'"{command}"',
                ago(c["Created"]),
                c["Status"],
                _ports_column(c.get("Ports") or []),
                ",".join(n.lstrip("/") for n in c["Names"]),
            ]
        )
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)


def _ports_column(ports: list[dict[str, Any]]) -> str:
    """docker ps's PORTS: exposed-only ports first, then each binding as ip:public->private/proto."""
    exposed = sorted((p["PrivatePort"], p["Type"]) for p in ports if "PublicPort" not in p)
    published = sorted((p["PrivatePort"], p["Type"], p["IP"], p["PublicPort"]) for p in ports if "PublicPort" in p)
    return ", ".join(
        [f"{port}/{kind}" for port, kind in exposed]
        + [f"{ip}:{public}->{port}/{kind}" for port, kind, ip, public in published]
    )


def render_format(template: str, data: Any) -> str:
    """The `{{.Path.To.Field}}` and `{{json .Field}}` forms of docker's --format, enough for scripts."""
    import re

    def value(path: str) -> Any:
        current = data
        for part in [p for p in path.strip().lstrip(".").split(".") if p]:
            if not isinstance(current, dict) or part not in current:
                raise click.ClickException(f"template: can't evaluate field {part} (in {template!r})")
            current = current[part]
        return current

    def action(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(value(expr[5:]))
        result = value(expr)
        if isinstance(result, bool):
            return "true" if result else "false"
        if isinstance(result, dict | list):
            return json.dumps(result)
        return "<no value>" if result is None else str(result)

    return re.sub(r"\{\{(.*?)\}\}", action, template)


INSPECT_PATHS = {"container": "/containers/{}/json", "image": "/images/{}/json", "network": "/networks/{}"}


@click.command()
@click.option("-f", "--format", "fmt", help="Format the output using a template ({{.State.Status}}, {{json .X}}).")
@click.option("--type", "kind", type=click.Choice(sorted(INSPECT_PATHS)), help="Only look for this kind of object.")
@click.argument("objects", nargs=-1, required=True)
def inspect(fmt: str | None, kind: str | None, objects: tuple[str, ...]) -> None:
    """Display detailed information on containers, images or networks (in that order, as docker looks)."""
    inspect_objects(fmt, [kind] if kind else list(INSPECT_PATHS), objects)


def inspect_objects(fmt: str | None, kinds: list[str], objects: tuple[str, ...]) -> None:
    """Each object as the first kind that has it: its JSON (or `fmt` filled), `No such ...` otherwise."""
    client = get_client()
    kind = kinds[0] if len(kinds) == 1 else None
    results, failed = [], False
    for ref in objects:
        for each in kinds:
            try:
                results.append(client.json("GET", INSPECT_PATHS[each].format(path_quote(ref))))
                break
            except APIError as err:
                if err.status != 404:
                    click.echo(f"Error: {err}", err=True)
                    failed = True
                    break
        else:
            click.echo(f"Error: No such {kind or 'object'}: {ref}", err=True)
            failed = True
    if fmt:
        for result in results:
            click.echo(render_format(fmt, result))
    else:
        click.echo(json.dumps(results, indent=4, ensure_ascii=False))
    if failed:
        sys.exit(1)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def wait(containers: tuple[str, ...]) -> None:
    """Block until containers stop, then print their exit codes."""

    def one(client: Client, ref: str) -> None:
        result = client.json("POST", f"/containers/{path_quote(ref)}/wait")
        click.echo(result["StatusCode"])

    for_each(containers, one)


@click.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "sig", help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
def stop(timeout: int | None, sig: str | None, containers: tuple[str, ...]) -> None:
    """Stop one or more running containers (SIGTERM, then SIGKILL after the timeout)."""

    def one(client: Client, ref: str) -> None:
        client.request("POST", f"/containers/{path_quote(ref)}/stop", {"t": timeout, "signal": sig}).read()
        click.echo(ref)

    for_each(containers, one)


@click.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "sig", help="Signal to send to the container to stop it.")
@click.argument("containers", nargs=-1, required=True)
def restart(timeout: int | None, sig: str | None, containers: tuple[str, ...]) -> None:
    """Restart one or more containers (stop if running, then start; resets the restart count)."""

    def one(client: Client, ref: str) -> None:
        client.request("POST", f"/containers/{path_quote(ref)}/restart", {"t": timeout, "signal": sig}).read()
        click.echo(ref)

    for_each(containers, one)


@click.command()
@click.option("-s", "--signal", "sig", default="SIGKILL", show_default=True, help="Signal to send.")
@click.argument("containers", nargs=-1, required=True)
def kill(sig: str, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""

    def one(client: Client, ref: str) -> None:
        client.request("POST", f"/containers/{path_quote(ref)}/kill", {"signal": sig}).read()
        click.echo(ref)

    for_each(containers, one)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.argument("containers", nargs=-1, required=True)
def rm(force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers."""

    def one(client: Client, ref: str) -> None:
        query = {"force": "1" if force else None, "v": "1" if volumes else None}
        client.request("DELETE", f"/containers/{path_quote(ref)}", query).read()
        click.echo(ref)

    for_each(containers, one)


@click.command()
@click.argument("container")
@click.argument("new_name")
def rename(container: str, new_name: str) -> None:
    """Rename a container: CONTAINER NEW_NAME."""
    try:
        get_client().request("POST", f"/containers/{path_quote(container)}/rename", {"name": new_name}).read()
    except APIError as err:
        click.echo(f"Error response from daemon: {err}", err=True)
        sys.exit(1)


COMMANDS = [run, create, start, restart, ps, inspect, wait, stop, kill, rm, rename]
