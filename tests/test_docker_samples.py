"""End to end against Docker's own output: each case of tests/fixtures/docker-samples runs the same command
in a real logship container with the json-file driver, and the log file, `logs` and `logs --details` must
match what Docker 20.10 produced byte for byte, apart from times, ids and the daemon's name."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Daemon

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parent / "fixtures" / "docker-samples"
IMAGE = "busybox:local"

TAG = "{{.Name}}/{{.ImageName}}/{{.ID}}/{{.FullID}}/{{.ImageID}}/{{.DaemonName}}"
CASES: dict[str, list[str]] = {
    "stdout": [IMAGE, "echo", "hello world"],
    "stderr": [IMAGE, "sh", "-c", "echo oops on stderr >&2"],
    "nonewline": [IMAGE, "printf", "no-newline-at-exit"],
    "nonewline_mid": [IMAGE, "sh", "-c", 'printf "part1-"; sleep 0.3; printf "part2\\n"; printf tail-no-nl'],
    "empty_lines": [IMAGE, "sh", "-c", 'printf "\\n\\n\\nx\\n\\n"'],
    "crlf": [IMAGE, "sh", "-c", 'printf "dos line\\r\\nsecond\\r\\n"'],
    "long20000": [IMAGE, "sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" a; echo'],
    "len16383": [IMAGE, "sh", "-c", 'head -c 16383 /dev/zero | tr "\\0" b; echo'],
    "len16384": [IMAGE, "sh", "-c", 'head -c 16384 /dev/zero | tr "\\0" c; echo'],
    "len16385": [IMAGE, "sh", "-c", 'head -c 16385 /dev/zero | tr "\\0" d; echo'],
    "long40000_nonl": [IMAGE, "sh", "-c", 'head -c 40000 /dev/zero | tr "\\0" e'],
    "invalid_utf8": [
        IMAGE,
        "sh",
        "-c",
        'printf "bad:\\377\\376|lone-cont:\\200|trunc:\\303|ok-e-acute:\\303\\251|4byte:\\360\\237\\230'
        '\\200|surrogate-ed-a0:\\355\\240\\200|end\\n"',
    ],
    "specials": [
        IMAGE,
        "sh",
        "-c",
        'printf "tab:\\there \\"quote\\" back\\\\\\\\slash bell:\\a bs:\\b ff:\\f vt:\\v '
        "esc:\\033[31mred\\033[0m nul:\\000 x01:\\001 x1f:\\037 del:\\177 cr-mid:\\r lt-gt-amp:<>& "
        'u2028:\\342\\200\\250 u2029:\\342\\200\\251 done\\n"',
    ],
    "attrs": [
        "--label",
        "com.example.a=alpha",
        "--label",
        "com.example.b=beta",
        "--label",
        "other=zzz",
        "-e",
        "FOO=bar",
        "-e",
        "SECRET=s3cr3t",
        "-e",
        "OTHER=o",
        "--log-opt",
        "labels=com.example.a,com.example.b",
        "--log-opt",
        "env=FOO,SECRET",
        "--log-opt",
        f"tag={TAG}",
        IMAGE,
        "echo",
        "with attrs",
    ],
    "attrs_regex": [
        "--label",
        "com.example.a=alpha",
        "--label",
        "other=zzz",
        "-e",
        "FOO=bar",
        "-e",
        "FOO2=baz",
        "--log-opt",
        "labels-regex=^com\\.",
        "--log-opt",
        "env-regex=^FOO",
        IMAGE,
        "echo",
        "with regex attrs",
    ],
    "tag_only": ["--log-opt", "tag=mytag", IMAGE, "echo", "tag only"],
    "tty": ["-t", IMAGE, "sh", "-c", 'echo tty-out; echo tty-err >&2; printf "tab\\tend"'],
    "tty_long": ["-t", IMAGE, "sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" t; echo'],
    "interleave": [IMAGE, "sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"],
}


@pytest.fixture(scope="module")
def sample_daemon(shared_daemon: Daemon) -> Iterator[Daemon]:
    shared_daemon.ok("import", str(shared_daemon.root / "rootfs-busybox"), IMAGE)
    yield shared_daemon


@pytest.fixture(scope="module")
def ran(sample_daemon: Daemon) -> dict[str, dict[str, Any]]:
    """Run every case once (detached, then waited for), as the samples were made."""
    results = {}
    for case, args in CASES.items():
        name = f"s_{case}"
        sample_daemon.ok("run", "-d", "--network", "none", "--name", name, *args)
    for case in CASES:
        name = f"s_{case}"
        assert sample_daemon.ok("wait", name).strip() == "0"
        results[case] = sample_daemon.inspect(name)
    return results


def normalize(text: str) -> str:
    """Times, ids and the daemon's name are the only bytes allowed to differ from Docker's."""
    text = re.sub(r'"time":"[^"]+"', '"time":"T"', text)
    text = re.sub(r"[0-9a-f]{64}", "<ID>", text)
    text = re.sub(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])", "<ID12>", text)
    text = re.sub(r"sha256(:|%3A)[0-9a-f]{5}(?![0-9a-f])", r"sha256\1<IMAGE5>", text)
    return re.sub(r"(/|%2F)(docker|logship)(?=[\"\s])", r"\1<DAEMON>", text)


def by_stream(lines: list[str]) -> dict[str, list[str]]:
    """Docker copies stdout and stderr concurrently, so only the order within a stream is defined."""
    streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
    for line in lines:
        streams[json.loads(line)["stream"]].append(line)
    return streams


@pytest.mark.parametrize("case", list(CASES))
def test_json_file_log_is_byte_identical_to_dockers(case: str, ran: dict[str, dict[str, Any]]) -> None:
    ours = normalize(Path(ran[case]["LogPath"]).read_bytes().decode()).splitlines()
    docker = normalize((SAMPLES / f"{case}-json.log").read_bytes().decode()).splitlines()
    assert by_stream(ours) == by_stream(docker)


@pytest.mark.parametrize("case", list(CASES))
def test_logs_prints_what_docker_logs_printed(case: str, ran: dict[str, dict[str, Any]], sample_daemon: Daemon) -> None:
    result = sample_daemon.cli("logs", f"s_{case}")
    assert result.code == 0, result.err
    assert result.stdout == (SAMPLES / f"{case}.logs.stdout").read_bytes()
    assert result.stderr == (SAMPLES / f"{case}.logs.stderr").read_bytes()


@pytest.mark.parametrize("case", list(CASES))
def test_logs_details_prints_what_docker_printed(
    case: str, ran: dict[str, dict[str, Any]], sample_daemon: Daemon
) -> None:
    result = sample_daemon.cli("logs", "--details", f"s_{case}")
    assert result.code == 0, result.err
    assert normalize(result.out) == normalize((SAMPLES / f"{case}.logs-details.stdout").read_bytes().decode())
    assert result.stderr == (SAMPLES / f"{case}.logs-details.stderr").read_bytes()
