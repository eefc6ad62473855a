"""Capture the keys a real dockerd sends (inspect, exec, stats, events, system df) into the suite's fixture.

    .venv/bin/python bench/docker_shapes.py [--install] [--output tests/fixtures/docker-api/dockerd-keys.json]

Starts Debian's dockerd by hand (bench/dockerd.py: private socket and data root, iptables off), inside a
network namespace of its own (the script runs itself again under `unshare --net`), so that its default
bridge and a user-defined network exist without touching the host's network; runs a container, an exec, a
network and a few changes, and writes the key list of each answer. The suite never
talks to dockerd: `tests/test_inspect_and_disk.py` compares logship's answers with this file. Keys that
dockerd 24+ (API 1.44+) added are listed by hand under `api_1_44`, since Debian packages 20.10.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import Dockerd, UnixConnection

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/docker-api/dockerd-keys.json"
API_1_44 = {"NetworkSettings.Networks.*": ["DNSNames"]}


def api(docker: Dockerd, method: str, path: str, body: object = None) -> Any:
    connection = UnixConnection(docker.socket)
    payload = json.dumps(body) if body is not None else None
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    if path.startswith("/v1.41/events"):
        return [json.loads(line) for line in data.splitlines()]
    return json.loads(data) if data else None


def keys(data: dict[str, Any]) -> list[str]:
    return sorted(data)


def capture(docker: Dockerd) -> dict[str, Any]:
    docker.import_busybox()
    since = int(time.time()) - 1
    # It writes a file: dockerd leaves SizeRw out of `system df` for a container that wrote nothing.
    script = "echo x > /written; sleep 300"
    docker.cli("run", "-d", "--name", "shapes", "--network", "none", "-l", "a=b", "busybox", "sh", "-c", script)
    docker.cli("network", "create", "--label", "k=v", "shapes-net")
    docker.cli("run", "-d", "--name", "on-net", "--network", "shapes-net", "busybox", "sleep", "300")
    network = api(docker, "GET", "/v1.41/networks/shapes-net")
    listed = api(docker, "GET", "/v1.41/networks")
    container = api(docker, "GET", "/v1.41/containers/shapes/json")
    image = api(docker, "GET", "/v1.41/images/busybox/json")
    created = api(docker, "POST", "/v1.41/containers/shapes/exec", {"Cmd": ["true"], "AttachStdout": True})
    api(docker, "POST", f"/v1.41/exec/{created['Id']}/start", {"Detach": True})
    time.sleep(0.5)
    exec_info = api(docker, "GET", f"/v1.41/exec/{created['Id']}/json")
    stats = api(docker, "GET", "/v1.41/containers/shapes/stats?stream=0")
    df = api(docker, "GET", "/v1.41/system/df")
    events = api(docker, "GET", f"/v1.41/events?since={since}&until={int(time.time()) + 1}")
    container_event = next(e for e in events if e.get("Type") == "container")
    image_event = next(e for e in events if e.get("Type") == "image")
    docker.cli("rm", "-f", "shapes", "on-net")
    return {
        "_source": "dockerd 20.10.24 (Debian docker.io) answering API v1.41, captured by bench/docker_shapes.py; "
        "API 1.44+ additions listed under api_1_44",
        "container": {
            "": keys(container),
            "State": keys(container["State"]),
            "HostConfig": keys(container["HostConfig"]),
            "Config": keys(container["Config"]),
            "GraphDriver": keys(container["GraphDriver"]),
            "NetworkSettings": keys(container["NetworkSettings"]),
            "NetworkSettings.Networks.*": keys(next(iter(container["NetworkSettings"]["Networks"].values()))),
        },
        "image": {section: keys(image[section] if section else image) for section in ("", "Config", "RootFS")}
        | {"Metadata": keys(image["Metadata"]), "GraphDriver": keys(image["GraphDriver"])},
        "exec": {"": keys(exec_info), "ProcessConfig": keys(exec_info["ProcessConfig"])},
        "stats": {
            "": keys(stats),
            "cpu_stats": keys(stats["cpu_stats"]),
            "cpu_stats.cpu_usage": keys(stats["cpu_stats"]["cpu_usage"]),
            "memory_stats": keys(stats["memory_stats"]),
            "blkio_stats": keys(stats["blkio_stats"]),
            "pids_stats": keys(stats["pids_stats"]),
        },
        "event": {
            "container": list(container_event),
            "image": list(image_event),
            "Actor": keys(container_event["Actor"]),
        },
        "network": {
            "": keys(network),
            "IPAM": keys(network["IPAM"]),
            "IPAM.Config": keys(network["IPAM"]["Config"][0]),
            "Containers.*": keys(next(iter(network["Containers"].values()))),
            "list": keys(listed[0]),
        },
        "system_df": {"": keys(df), "Containers.*": keys(df["Containers"][0]), "Images.*": keys(df["Images"][0])},
        "api_1_44": API_1_44,
    }


def main() -> None:
    if os.environ.get("DOCKER_SHAPES_NETNS") != "1":  # dockerd's bridges in a namespace of their own
        env = {**os.environ, "DOCKER_SHAPES_NETNS": "1"}
        os.execvpe("unshare", ["unshare", "--net", "--", sys.executable, *sys.argv], env)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="apt-get install docker.io when it is missing")
    parser.add_argument("--output", type=Path, default=FIXTURE)
    args = parser.parse_args()
    directory = tempfile.TemporaryDirectory(prefix="docker-shapes-")
    with directory as tmp, Dockerd(Path(tmp), args.install, bridge=True) as docker:
        shapes = capture(docker)
    args.output.write_text(json.dumps(shapes, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
