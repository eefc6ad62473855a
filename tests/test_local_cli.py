"""End to end: a container logging with `--log-driver local` reads back through `logship logs` exactly as
the same container does with json-file, whatever the flags."""

from __future__ import annotations

import re

import pytest

from tests.harness import Daemon

pytestmark = pytest.mark.integration

# Pairs of lines a moment apart on both streams, a 20,000-byte line (two pieces), bytes that are not
# UTF-8, and a last line without a newline.
SCRIPT = (
    "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; sleep 0.2; done; "
    "head -c 20000 /dev/zero | tr '\\0' a; echo; sleep 0.2; printf 'bin\\001\\377\\n'; printf last-no-nl"
)
# A `-t` stamp: at the start of a line, or after a piece of a long line, which has no newline.
STAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) ")


def run(daemon: Daemon, name: str, *driver: str) -> None:
    daemon.ok(
        "run",
        "--name",
        name,
        "--label",
        "team=core",
        "--log-opt",
        "labels=team",
        *driver,
        "busybox",
        "sh",
        "-c",
        SCRIPT,
    )


def logs(daemon: Daemon, name: str, *flags: str) -> tuple[bytes, bytes]:
    result = daemon.cli("logs", *flags, name)
    assert result.code == 0, result.err
    return result.stdout, result.stderr


def as_json_file_shows(output: bytes) -> bytes:
    """json-file holds text, so the script's 0xff byte reads back from it as U+FFFD; local keeps the byte,
    as Docker's local driver does. Everything else is the same."""
    return output.replace(b"\xff", "\ufffd".encode())


def both_as_json_file_shows(outputs: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return as_json_file_shows(outputs[0]), as_json_file_shows(outputs[1])


def first_stamp_of(output: bytes, *lines: bytes) -> str:
    """The earliest `-t` timestamp among the given lines of the output."""
    stamps = [m.group(1) for m in STAMP.finditer(output) if output[m.end() :].split(b"\n", 1)[0] in lines]
    return min(stamps).decode()


def test_local_logs_read_back_as_json_file_logs_do_for_tail_timestamps_since_and_details(
    shared_daemon: Daemon,
) -> None:
    run(shared_daemon, "with-local", "--log-driver", "local")
    run(shared_daemon, "with-json", "--log-driver", "json-file")

    inspected = shared_daemon.inspect("with-local")
    assert inspected["LogPath"] == "" and inspected["HostConfig"]["LogConfig"]["Type"] == "local"
    container_dir = shared_daemon.data_root / "containers" / inspected["Id"]
    assert (container_dir / "local-logs" / "container.log").is_file()

    everything = logs(shared_daemon, "with-local")
    assert everything[0].startswith(b"out1\nout2\n") and everything[0].endswith(b"\nbin\x01\xff\nlast-no-nl")
    assert everything[1] == b"err1\nerr2\nerr3\nerr4\nerr5\nerr6\n"
    for flags in ([], ["--tail", "1"], ["--tail", "4"], ["--tail", "6"], ["-n", "all"], ["--tail", "0"], ["--details"]):
        expected = logs(shared_daemon, "with-json", *flags)
        assert both_as_json_file_shows(logs(shared_daemon, "with-local", *flags)) == expected, flags

    # Timestamps differ between two runs; what they stamp does not.
    local_stamped = logs(shared_daemon, "with-local", "-t", "--tail", "6")
    json_stamped = logs(shared_daemon, "with-json", "-t", "--tail", "6")
    assert [len(STAMP.findall(out)) for out in local_stamped] == [5, 1]  # out6, two pieces, bin, last; err6
    for local_out, json_out in zip(local_stamped, json_stamped, strict=True):
        assert as_json_file_shows(STAMP.sub(b"", local_out)) == STAMP.sub(b"", json_out)

    # --since an exact timestamp is inclusive: from the fourth pair on, in both.
    since = {}
    for name in ("with-local", "with-json"):
        out, err = logs(shared_daemon, name, "-t")
        since[name] = logs(
            shared_daemon, name, "--since", min(first_stamp_of(out, b"out4"), first_stamp_of(err, b"err4"))
        )
    assert both_as_json_file_shows(since["with-local"]) == since["with-json"]
    assert since["with-local"][1] == b"err4\nerr5\nerr6\n"
