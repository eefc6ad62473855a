"""Hostile and malformed input is refused with a clear error and changes nothing.

Every case sends something wrong to a real daemon (or starts one with a wrong daemon.json) and checks
three things: the status is a 4xx (never a 500), the message names what was wrong, and nothing changed
(no container created, no file written under the data root, the daemon still answers).

Where Docker accepts something, logship does too and the test says so: unknown fields in a create body are
ignored (Go's JSON decoder ignores them, and newer clients send fields older daemons do not know), and bad
log-opt *values* of json-file and local fail `start`, not `create`, as in Docker (unknown *keys* fail create).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logship.client import APIError, Client
from logship.settings import Flags, SettingsError, load
from tests.harness import LOGSHIP, Daemon

pytestmark = pytest.mark.integration

CMD = {"Image": "busybox", "Cmd": ["echo", "hello"]}


@pytest.fixture(scope="module")
def daemon(shared_daemon: Daemon) -> Daemon:
    return shared_daemon


def call(daemon: Daemon, method: str, path: str, body: bytes | None = None, **query: str) -> tuple[int, str]:
    """Status and body (the error message when it is one) of one API request."""
    headers = {"Content-Type": "application/json"} if body is not None else None
    try:
        response = Client(daemon.host).request(method, path, query or None, body, headers)
    except APIError as err:
        return err.status, str(err)
    return response.status, response.read().decode()


def create_body(**fields: Any) -> bytes:
    return json.dumps({**CMD, **fields}).encode()


def log_config(driver: str, **opts: str) -> dict[str, Any]:
    return {"LogConfig": {"Type": driver, "Config": opts}}


@dataclass(frozen=True)
class Snapshot:
    """What a refused request must leave untouched."""

    containers: tuple[str, ...]  # ids, from the API
    files: tuple[str, ...]  # every path under the data root's containers/ and images/


def snapshot(daemon: Daemon) -> Snapshot:
    status, body = call(daemon, "GET", "/containers/json", all="1")
    assert status == 200
    files = []
    for top in ("containers", "images"):
        for directory, _, names in os.walk(daemon.data_root / top):
            files.extend(os.path.join(directory, name) for name in names)
    return Snapshot(tuple(sorted(c["Id"] for c in json.loads(body))), tuple(sorted(files)))


@pytest.fixture
def unchanged(daemon: Daemon) -> Iterator[None]:
    """The test's requests must change nothing, and the daemon must still answer afterwards."""
    before = snapshot(daemon)
    yield
    assert call(daemon, "GET", "/_ping") == (200, "OK")
    assert snapshot(daemon) == before


def assert_refused(status: int, message: str, *fragments: str, statuses: tuple[int, ...] = (400,)) -> None:
    assert status in statuses, f"status {status}: {message}"
    for fragment in fragments:
        assert fragment in message


# ---- create bodies ---------------------------------------------------------------------------------------

CREATE_CASES: dict[str, tuple[bytes, int, str]] = {
    # body, status, what the message must say
    "not JSON": (b"{not json", 400, "invalid JSON in the request body"),
    "a JSON array": (b"[1, 2]", 400, "must be a JSON object"),
    "no image": (json.dumps({"Cmd": ["true"]}).encode(), 400, "no image specified"),
    "image not a string": (json.dumps({"Image": 5}).encode(), 400, "no image specified"),
    "no such image": (create_body(Image="nosuchimage"), 404, "No such image: nosuchimage"),
    "Cmd a number": (create_body(Cmd=5), 400, "invalid Cmd"),
    "Entrypoint a number": (create_body(Entrypoint=7), 400, "invalid Entrypoint"),
    "Env holds a number": (create_body(Env=[1]), 400, "invalid Env"),
    "Labels a list": (create_body(Labels=["a"]), 400, "invalid Labels"),
    "NUL in Cmd": (create_body(Cmd=["ec\u0000ho", "x"]), 400, "invalid Cmd: 'ec\\x00ho' holds a NUL byte"),
    "NUL in Env": (create_body(Env=["A=b\u0000c"]), 400, "invalid Env"),
    "NUL in WorkingDir": (create_body(WorkingDir="/tm\u0000p"), 400, "invalid WorkingDir"),
    "WorkingDir a number": (create_body(WorkingDir=5), 400, "invalid WorkingDir"),
    "WorkingDir relative": (create_body(WorkingDir="../etc"), 400, "needs to be an absolute path"),
    "Hostname a number": (create_body(Hostname=5), 400, "invalid Hostname"),
    "StopSignal unknown": (create_body(StopSignal="SIGNOPE"), 400, "Invalid signal: SIGNOPE"),
    "StopSignal a number": (create_body(StopSignal=9), 400, "invalid StopSignal"),
    "HostConfig a string": (create_body(HostConfig="x"), 400, "invalid HostConfig"),
    "LogConfig a string": (create_body(HostConfig={"LogConfig": "json-file"}), 400, "invalid HostConfig.LogConfig"),
    "LogConfig.Type a number": (create_body(HostConfig={"LogConfig": {"Type": 5}}), 400, "LogConfig.Type"),
    "log-opts a list": (
        create_body(HostConfig={"LogConfig": {"Type": "json-file", "Config": ["a"]}}),
        400,
        "invalid LogConfig.Config",
    ),
    "log-opt value a number": (
        create_body(HostConfig={"LogConfig": {"Type": "json-file", "Config": {"max-file": 3}}}),
        400,
        "log-opts values must be strings",
    ),
    "unknown driver": (create_body(HostConfig=log_config("nope")), 400, "no log driver named 'nope'"),
    "unknown log-opt": (
        create_body(HostConfig=log_config("json-file", **{"max-sise": "1m"})),
        400,
        "unknown log opt 'max-sise' for json-file log driver",
    ),
    "unknown mode": (create_body(HostConfig=log_config("local", mode="fast")), 400, "logging mode not supported: fast"),
    "max-buffer-size 10q": (
        create_body(HostConfig=log_config("json-file", mode="non-blocking", **{"max-buffer-size": "10q"})),
        400,
        "invalid size: '10q'",
    ),
    "max-buffer-size -1m": (
        create_body(HostConfig=log_config("json-file", mode="non-blocking", **{"max-buffer-size": "-1m"})),
        400,
        "invalid size: '-1m'",
    ),
    "max-buffer-size beyond any number": (
        create_body(HostConfig=log_config("json-file", mode="non-blocking", **{"max-buffer-size": "9" * 400})),
        400,
        "out of range",
    ),
    "fluentd-buffer-limit -1m": (
        create_body(HostConfig=log_config("fluentd", **{"fluentd-async": "true", "fluentd-buffer-limit": "-1m"})),
        400,
        "invalid size: '-1m'",
    ),
    "fluentd-address with an unknown scheme": (
        create_body(HostConfig=log_config("fluentd", **{"fluentd-address": "bogus://x"})),
        400,
        "invalid fluentd-address",
    ),
    "awslogs without a group": (
        create_body(HostConfig=log_config("awslogs", **{"awslogs-region": "us-east-1"})),
        400,
        "awslogs-group",
    ),
    "Memory a string": (create_body(HostConfig={"Memory": "1g"}), 400, "invalid HostConfig.Memory"),
    "NanoCpus beyond any machine": (create_body(HostConfig={"NanoCpus": 10**30}), 400, "NanoCpus"),
    "unknown capability": (create_body(HostConfig={"CapAdd": ["CAP_NOPE"]}), 400, "CAP_NOPE"),
}


@pytest.mark.parametrize("case", CREATE_CASES)
def test_a_bad_create_body_is_refused_and_creates_nothing(daemon: Daemon, unchanged: None, case: str) -> None:
    body, expected_status, fragment = CREATE_CASES[case]
    status, message = call(daemon, "POST", "/containers/create", body)
    assert_refused(status, message, fragment, statuses=(expected_status,))


def test_unknown_fields_in_a_create_body_are_ignored_as_docker_ignores_them(daemon: Daemon) -> None:
    status, body = call(daemon, "POST", "/containers/create", create_body(NoSuchField={"x": 1}, Hostname="h"))
    assert status == 201
    container_id = json.loads(body)["Id"]
    try:
        assert "NoSuchField" not in json.dumps(daemon.inspect(container_id))
    finally:
        daemon.ok("rm", container_id)


# ---- raw HTTP ---------------------------------------------------------------------------------------------


def raw_http(daemon: Daemon, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are to the daemon's socket; the status and body of its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(daemon.socket))
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: logship\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def test_an_oversized_body_is_refused_with_the_limit(daemon: Daemon, unchanged: None) -> None:
    labels = {"x": "a" * (2 << 20)}  # 2 MiB of JSON: API bodies are small, images go through /images/create
    status, body = raw_http(daemon, post("/v1.47/containers/create", create_body(Labels=labels)))
    assert status == 413
    assert "request body too large" in json.loads(body)["message"]
    assert "1048576" in json.loads(body)["message"]


def test_a_body_that_is_not_json_is_refused(daemon: Daemon, unchanged: None) -> None:
    status, body = raw_http(daemon, post("/containers/create", b"\x00\xff binary junk", "text/plain"))
    assert status == 400
    assert "invalid JSON in the request body" in json.loads(body)["message"]


def test_a_request_that_is_not_http_is_refused(daemon: Daemon, unchanged: None) -> None:
    status, _ = raw_http(daemon, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert status == 400


# ---- container names --------------------------------------------------------------------------------------

BAD_NAMES = ["a/b", "..", "../etc", "/", "-a", ".hidden", "a\nb", "name\n", "a\x00b", "tab\tname", "é", "a b", "$(id)"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_container_name_outside_dockers_alphabet_is_refused(daemon: Daemon, unchanged: None, name: str) -> None:
    status, message = call(daemon, "POST", "/containers/create", create_body(), name=name)
    assert_refused(status, message, f"Invalid container name ({name})", "[a-zA-Z0-9][a-zA-Z0-9_.-]")


def test_the_cli_shows_the_name_error_and_exits_125(daemon: Daemon, unchanged: None) -> None:
    result = daemon.cli("run", "--name", "../x", "busybox", "true")
    assert result.code == 125
    assert "Invalid container name (../x)" in result.err


# ---- query parameters -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def created(daemon: Daemon) -> Iterator[str]:
    """A created (never started) container to aim requests at."""
    container_id = daemon.ok("create", "busybox", "sleep", "60").strip()
    yield container_id
    daemon.ok("rm", "-f", container_id)


QUERY_CASES: dict[str, tuple[str, str, dict[str, str], int, str]] = {
    # method, path ({id}: the created container), query, status, message
    "filters a list": ("GET", "/containers/json", {"all": "1", "filters": "[1]"}, 400, "invalid filters"),
    "filter values numbers": ("GET", "/containers/json", {"filters": '{"label": 5}'}, 400, "invalid filter 'label'"),
    "filter unknown": ("GET", "/containers/json", {"filters": '{"nope": ["x"]}'}, 400, "Invalid filter 'nope'"),
    "filters not JSON": ("GET", "/containers/json", {"filters": "nope"}, 400, "is not JSON"),
    "name filter a broken regexp": ("GET", "/containers/json", {"all": "1", "filters": '{"name": ["("]}'}, 400, "("),
    "limit not a number": ("GET", "/containers/json", {"limit": "x"}, 400, "invalid value for limit"),
    "stop timeout not a number": ("POST", "/containers/{id}/stop", {"t": "abc"}, 400, "invalid value for t"),
    "kill with an unknown signal": ("POST", "/containers/{id}/kill", {"signal": "NOPE"}, 400, "Invalid signal: NOPE"),
    "wait for an unknown condition": ("POST", "/containers/{id}/wait", {"condition": "x"}, 400, "invalid condition"),
    "logs of no stream": ("GET", "/containers/{id}/logs", {}, 400, "at least one of 'stdout' or 'stderr'"),
    "logs since a word": ("GET", "/containers/{id}/logs", {"stdout": "1", "since": "abc"}, 400, '"since"'),
    "logs until bad nanoseconds": ("GET", "/containers/{id}/logs", {"stdout": "1", "until": "1.x"}, 400, '"until"'),
    "resize to a word": ("POST", "/containers/{id}/resize", {"h": "x"}, 400, "invalid value for h"),
    "no such container": ("GET", "/containers/nosuchcontainer/json", {}, 404, "No such container: nosuchcontainer"),
    "no such route": ("GET", "/containers/{id}/export", {}, 404, "not supported by logship"),
}


@pytest.mark.parametrize("case", QUERY_CASES)
def test_a_bad_query_is_refused(daemon: Daemon, created: str, unchanged: None, case: str) -> None:
    method, path, query, expected_status, fragment = QUERY_CASES[case]
    status, message = call(daemon, method, path.replace("{id}", created), **query)
    assert_refused(status, message, fragment, statuses=(expected_status,))


# ---- log-opt values and tag templates: checked at start, as Docker does ----------------------------------

START_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "json-file max-size -1m": (log_config("json-file", **{"max-size": "-1m"}), "invalid size: '-1m'"),
    "json-file max-size 10q": (log_config("json-file", **{"max-size": "10q"}), "invalid size: '10q'"),
    "json-file max-size with a newline": (log_config("json-file", **{"max-size": "10m\n"}), "invalid size"),
    "json-file max-size beyond any number": (log_config("json-file", **{"max-size": "9" * 400}), "out of range"),
    "json-file max-file 0": (log_config("json-file", **{"max-file": "0"}), "max-file cannot be less than 1"),
    "json-file compress maybe": (log_config("json-file", compress="maybe"), 'parsing "maybe"'),
    "local max-size -1m": (log_config("local", **{"max-size": "-1m"}), "invalid size: '-1m'"),
    "labels-regex that does not compile": (log_config("json-file", **{"labels-regex": "("}), "labels-regex"),
    "tag reaching into Python": (log_config("json-file", tag="{{.ID.__class__}}"), "can't evaluate field __class__"),
    "tag calling a function": (log_config("json-file", tag='{{call .ID "x"}}'), 'function "call" not defined'),
    "tag calling os": (log_config("json-file", tag='{{os.system "id"}}'), 'function "os" not defined'),
    "tag with a loop": (log_config("json-file", tag="{{range .ContainerEnv}}x{{end}}"), '"range" is not supported'),
    "tag including a template": (log_config("json-file", tag='{{template "x"}}'), '"template" is not supported'),
    "tag expanding to a huge string": (log_config("local", tag="{{.FullID}}" * 200), "longer than 4096 characters"),
    "tag never closed": (log_config("json-file", tag="{{.ID"), "unclosed action"),
}


@pytest.mark.parametrize("case", START_CASES)
def test_a_bad_log_opt_value_fails_start_and_the_container_never_runs(daemon: Daemon, case: str) -> None:
    host_config, fragment = START_CASES[case]
    status, body = call(daemon, "POST", "/containers/create", create_body(HostConfig=host_config))
    assert status == 201, body
    container_id = json.loads(body)["Id"]
    try:
        status, message = call(daemon, "POST", f"/containers/{container_id}/start")
        assert_refused(status, message, "failed to initialize logging driver", fragment)
        status, body = call(daemon, "GET", f"/containers/{container_id}/json")
        assert json.loads(body)["State"]["Status"] == "created"
        assert os.listdir(daemon.data_root / "containers" / container_id) == ["config.v2.json"]  # no log file
    finally:
        assert call(daemon, "DELETE", f"/containers/{container_id}")[0] == 204


# ---- daemon.json ------------------------------------------------------------------------------------------

DAEMON_JSON_CASES: dict[str, tuple[str, str]] = {
    # daemon.json text, what the error must say
    "malformed JSON": ('{"log-driver": "json-file",\n  "log-opts": {', "invalid JSON in configuration file"),
    "not an object": ("[]", "must hold a JSON object"),
    "unknown key": ('{"log-drivers": "local"}', "don't match any configuration option: log-drivers"),
    "wrong type": ('{"live-restore": "yes"}', "invalid value for 'live-restore'"),
    "log-opt value a number": ('{"log-opts": {"max-file": 3}}', 'write "max-file": "3"'),
    "unknown driver": ('{"log-driver": "nope"}', "no log driver named 'nope'"),
    "unknown log-opt": ('{"log-opts": {"max-sise": "1m"}}', "unknown log opt 'max-sise'"),
    "unknown log level": ('{"log-level": "loud"}', "invalid logging level: loud"),
    "max-buffer-size 10q": ('{"log-opts": {"mode": "non-blocking", "max-buffer-size": "10q"}}', "invalid size: '10q'"),
    "max-buffer-size beyond any number": (
        json.dumps({"log-opts": {"mode": "non-blocking", "max-buffer-size": "9" * 400}}),
        "out of range",
    ),
    "unknown mode": ('{"log-opts": {"mode": "fast"}}', "logging mode not supported: fast"),
}


@pytest.mark.parametrize("case", DAEMON_JSON_CASES)
def test_a_bad_daemon_json_is_refused_naming_the_problem(tmp_path: Path, case: str) -> None:
    text, fragment = DAEMON_JSON_CASES[case]
    config = tmp_path / "daemon.json"
    config.write_text(text)
    with pytest.raises(SettingsError) as refused:
        load(Flags(config_file=str(config), data_root=str(tmp_path / "data")))
    assert fragment in str(refused.value)


# A real daemon for a few of them: it stops before creating its data root or its socket.
STOPS_AT_ONCE = ["malformed JSON", "unknown log-opt", "max-buffer-size 10q", "max-buffer-size beyond any number"]


def test_a_daemon_with_a_bad_daemon_json_stops_before_it_touches_anything(tmp_path: Path) -> None:
    started = {}
    for index, case in enumerate(STOPS_AT_ONCE):
        text = DAEMON_JSON_CASES[case][0]
        directory = tmp_path / str(index)
        directory.mkdir()
        (directory / "daemon.json").write_text(text)
        command = [*LOGSHIP, "daemon", "-H", f"unix://{directory / 'logship.sock'}"]
        command += ["--data-root", str(directory / "data"), "--config-file", str(directory / "daemon.json")]
        started[case] = (directory, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for case, (directory, process) in started.items():  # all started at once: they stop at once
        text, fragment = DAEMON_JSON_CASES[case]
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        message = stderr.decode()
        assert process.returncode != 0, case
        assert fragment in message, (case, message)
        assert "Traceback" not in message, (case, message)
        assert sorted(p.name for p in directory.iterdir()) == ["daemon.json"], case  # no socket, no data root
        assert (directory / "daemon.json").read_text() == text
