"""`events`: every lifecycle change, from whoever caused it, in dockerd's shapes, with Docker's filters and
time range; the real docker CLI, docker-py and logship's CLI read them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from logship.daemon.events import CONTAINER, HISTORY, IMAGE, Event, EventFilter, Events
from logship.errors import InvalidParameter
from tests.harness import DOCKER, Daemon, docker, docker_env, docker_ok, needs_docker

# ---- the filters and the history, on their own ---------------------------------------------------------


def container_event(action: str, name: str = "web", **attributes: str) -> Event:
    return Event(CONTAINER, action, "c0ffee" + "0" * 58, {"image": "busybox", "name": name, **attributes}, 1, "busybox")


@pytest.mark.parametrize(
    ("filters", "event", "matches"),
    [
        ({"container": ["web"]}, container_event("start"), True),
        ({"container": ["c0ff"]}, container_event("start"), True),  # an id prefix
        ({"container": ["db"]}, container_event("start"), False),
        ({"container": ["web", "db"]}, container_event("start"), True),  # values of one key: alternatives
        ({"event": ["die"]}, container_event("start"), False),
        ({"event": ["exec_start"]}, container_event("exec_start: sh -c true"), True),  # moby#25798
        ({"event": ["die"], "container": ["web"]}, container_event("die"), True),  # keys: all must match
        ({"event": ["die"], "container": ["db"]}, container_event("die"), False),
        ({"image": ["busybox:latest"]}, container_event("start"), True),  # busybox means busybox:latest
        ({"label": ["team"]}, container_event("start", team="x"), True),
        ({"label": ["team=y"]}, container_event("start", team="x"), False),
        ({"type": ["image"]}, container_event("start"), False),
        ({"type": ["image"]}, Event(IMAGE, "tag", "sha256:ab", {"name": "busybox:2"}), True),
        ({"image": ["busybox:2"]}, Event(IMAGE, "tag", "sha256:ab", {"name": "busybox:2"}), True),
    ],
)
def test_filters_follow_dockers_rules(filters: dict[str, list[str]], event: Event, matches: bool) -> None:
    assert EventFilter(filters).matches(event) is matches


def test_an_unknown_filter_is_refused_with_dockerds_message() -> None:
    with pytest.raises(InvalidParameter, match="Invalid filter 'colour'"):
        EventFilter({"colour": ["red"]})


def test_the_history_keeps_the_last_256_and_a_range_replays_them() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        events = Events()
        for number in range(HISTORY + 10):
            events.publish(Event(CONTAINER, f"a{number}", "x", {}, time_ns=1_000 + number))
        assert len(events.history()) == HISTORY
        replay = [e.action async for e in events.subscribe(1, 1_000 + 20, EventFilter({})) if e is not None]
        everything = [e.action async for e in events.subscribe(1, 5_000, EventFilter({})) if e is not None]
        return replay, everything

    replay, everything = asyncio.run(scenario())
    assert replay == [f"a{n}" for n in range(10, 21)]  # the first ten are gone
    assert everything[0] == "a10" and everything[-1] == f"a{HISTORY + 9}"


def test_a_live_subscriber_gets_events_as_they_happen_until_its_until() -> None:
    async def scenario() -> list[str]:
        events = Events()
        until = time.time_ns() + 500_000_000
        received: list[str] = []

        async def listen() -> None:
            async for event in events.subscribe(0, until, EventFilter({"event": ["die"]})):
                if event is not None:
                    received.append(event.action)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.05)
        for action in ("start", "die", "destroy", "die"):
            events.emit(CONTAINER, action, "x")
        await asyncio.wait_for(listener, 5)  # ends by itself at `until`
        return received

    assert asyncio.run(scenario()) == ["die", "die"]


# ---- through the real clients -----------------------------------------------------------------------------


def actions(daemon: Daemon, since: str, *filters: str) -> list[tuple[str, str, dict[str, str]]]:
    until = str(time.time() + 0.5)
    args = [item for f in filters for item in ("--filter", f)]
    out = docker_ok(daemon, "events", "--since", since, "--until", until, *args, "--format", "{{json .}}")
    events = [json.loads(line) for line in out.splitlines()]
    return [(e["Type"], e["Action"], e["Actor"]["Attributes"]) for e in events]


@pytest.mark.integration
@needs_docker
def test_docker_events_shows_a_containers_whole_life(shared_daemon: Daemon) -> None:
    start = str(time.time())
    exited = docker(
        shared_daemon, "run", "--rm", "--name", "ev_once", "-l", "team=logs", "busybox", "sh", "-c", "exit 3"
    )
    assert exited.code == 3
    docker_ok(shared_daemon, "run", "-d", "--name", "ev_long", "busybox", "sleep", "60")
    docker_ok(shared_daemon, "stop", "-t", "0", "ev_long")
    docker_ok(shared_daemon, "rename", "ev_long", "ev_renamed")
    docker_ok(shared_daemon, "rm", "ev_renamed")
    seen = actions(shared_daemon, start, "type=container")
    once = [(action, attrs) for _, action, attrs in seen if attrs.get("name") == "ev_once"]
    assert [action for action, _ in once] == ["create", "attach", "start", "die", "destroy"]
    assert once[3][1]["exitCode"] == "3" and once[3][1]["team"] == "logs" and once[3][1]["image"] == "busybox"
    long = [action for _, action, attrs in seen if attrs.get("name") in ("ev_long", "ev_renamed")]
    assert long == ["create", "start", "kill", "kill", "die", "stop", "rename", "destroy"]
    rename = next(attrs for _, action, attrs in seen if action == "rename")
    assert rename["oldName"] == "/ev_long" and rename["name"] == "ev_renamed"
    only_dies = actions(shared_daemon, start, "event=die", "container=ev_once")
    assert [(t, a) for t, a, _ in only_dies] == [("container", "die")]
    labelled = actions(shared_daemon, start, "label=team=logs")
    assert [a for _, a, _ in labelled] == ["create", "attach", "start", "die", "destroy"]


@pytest.mark.integration
@needs_docker
def test_restarts_by_a_policy_are_events_too(shared_daemon: Daemon) -> None:
    start = str(time.time())
    docker_ok(shared_daemon, "run", "-d", "--name", "ev_flaky", "--restart", "on-failure:2", "busybox", "false")
    deadline = time.monotonic() + 20
    while docker_ok(shared_daemon, "inspect", "-f", "{{.State.Status}}", "ev_flaky").strip() != "exited":
        assert time.monotonic() < deadline, "the policy did not give up"
        time.sleep(0.2)
    seen = [a for _, a, attrs in actions(shared_daemon, start, "container=ev_flaky")]
    assert seen == ["create", "start", "die", "start", "die", "start", "die"]
    docker_ok(shared_daemon, "rm", "ev_flaky")


@pytest.mark.integration
@needs_docker
def test_image_changes_are_events(shared_daemon: Daemon) -> None:
    start = str(time.time())
    docker_ok(shared_daemon, "tag", "busybox", "evtagged:1")
    docker_ok(shared_daemon, "rmi", "evtagged:1")
    seen = actions(shared_daemon, start, "type=image")
    assert [(a, attrs["name"]) for _, a, attrs in seen][:1] == [("tag", "evtagged:1")]
    assert [a for _, a, _ in seen] == ["tag", "untag"]


@pytest.mark.integration
@needs_docker
def test_a_live_stream_follows_and_a_bad_filter_is_refused(shared_daemon: Daemon) -> None:
    # --since now: whenever the follower gets connected, it replays what came before and then follows.
    follower = subprocess.Popen(
        [DOCKER, "events", "--since", str(time.time()), "--filter", "container=ev_live", "--format", "{{.Action}}"],
        stdout=subprocess.PIPE,
        env=docker_env(shared_daemon),
    )
    try:
        docker_ok(shared_daemon, "run", "--rm", "--name", "ev_live", "busybox", "true")
        time.sleep(1)
    finally:
        follower.terminate()
        output, _ = follower.communicate(timeout=10)
    assert output.decode().split() == ["create", "attach", "start", "die", "destroy"]
    refused = docker(shared_daemon, "events", "--filter", "colour=red", "--until", "0s")
    assert refused.code != 0 and "Invalid filter 'colour'" in refused.err


@pytest.mark.integration
def test_docker_py_reads_events_and_logship_prints_them(shared_daemon: Daemon) -> None:
    docker_py = pytest.importorskip("docker")
    start = time.time()
    shared_daemon.ok("run", "--name", "ev_py", "busybox", "true")
    client = docker_py.DockerClient(base_url=shared_daemon.host)
    try:
        stream: Iterator[dict[str, object]] = client.events(
            since=int(start), until=int(time.time()) + 1, decode=True, filters={"container": "ev_py"}
        )
        assert [e["Action"] for e in stream] == ["create", "attach", "start", "die"]
    finally:
        client.close()
    printed = shared_daemon.ok("events", "--since", "1m", "--until", "0s", "-f", "container=ev_py", "-f", "event=die")
    assert printed.count("\n") == 1 and " container die " in printed and "exitCode=0" in printed
    shared_daemon.ok("rm", "ev_py")
