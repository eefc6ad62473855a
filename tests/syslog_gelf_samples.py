"""Docker's syslog and gelf bytes (tests/fixtures/docker-samples/syslog-gelf, recorded from dockerd 20.10.24;
see its README): readers for the recorded streams and datagrams, and the normalisation the comparisons
use: times, host names, pids and container/image ids differ from run to run, everything else must not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).parent / "fixtures" / "docker-samples" / "syslog-gelf"
IMAGE = "busybox:local"
DOCKER_PID = 9034

# The cases of the README: each ran as `docker run -d --network none --name s_<case> <args> busybox:local ...`.
SYSLOG_CASES: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    # case: (log-opts other than the address, `run` arguments before the image, the command)
    "syslog_udp_default": ({}, [], ["sh", "-c", "echo hello syslog; echo oops >&2; printf no-newline"]),
    "syslog_tcp_default": ({}, [], ["sh", "-c", "echo hello default tcp; echo oops >&2"]),
    "syslog_tcp_rfc5424": ({"syslog-format": "rfc5424"}, [], ["sh", "-c", "echo hello 5424; echo oops >&2"]),
    "syslog_tcp_rfc5424micro": (
        {"syslog-format": "rfc5424micro", "tag": "{{.Name}}/{{.ImageName}}", "syslog-facility": "local3"},
        [],
        ["sh", "-c", "echo hello micro; echo oops >&2"],
    ),
    "syslog_tcp_rfc3164": (
        {"syslog-format": "rfc3164", "syslog-facility": "daemon"},
        [],
        ["sh", "-c", "echo hello 3164; echo oops >&2"],
    ),
    "syslog_udp_long20000": ({}, [], ["sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" a; echo']),
    "syslog_tcp_long20000": (
        {"syslog-format": "rfc5424"},
        [],
        ["sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" a; echo'],
    ),
    "syslog_tcp_specials": (
        {"syslog-format": "rfc5424"},
        [],
        ["sh", "-c", 'printf "bad:\\377\\376|nul:\\000|tab:\\t|cr:\\r|end\\n\\n\\nafter-empty\\n"'],
    ),
    "syslog_tcp_labels": (
        {"syslog-format": "rfc5424", "labels": "com.example.a", "env": "FOO"},
        ["--label", "com.example.a=alpha", "-e", "FOO=bar"],
        ["echo", "with attrs"],
    ),
}

GELF_CASES: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    "gelf_udp_default": ({}, [], ["sh", "-c", "echo hello gelf; echo oops >&2; printf no-newline"]),
    "gelf_udp_none": ({"gelf-compression-type": "none"}, [], ["sh", "-c", "echo hello gelf none; echo oops >&2"]),
    "gelf_udp_zlib": (
        {"gelf-compression-type": "zlib", "gelf-compression-level": "1"},
        [],
        ["sh", "-c", "echo hello gelf zlib"],
    ),
    "gelf_tcp": (
        {"labels": "com.example.a", "env": "FOO", "tag": "{{.Name}}"},
        ["--label", "com.example.a=alpha", "-e", "FOO=bar"],
        ["sh", "-c", "echo hello gelf tcp; echo oops >&2"],
    ),
    "gelf_udp_long20000": (
        {"gelf-compression-type": "none"},
        [],
        ["sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" a; echo'],
    ),
    "gelf_tcp_long20000": ({}, [], ["sh", "-c", 'head -c 20000 /dev/zero | tr "\\0" a; echo']),
    "gelf_tcp_specials": (
        {},
        [],
        ["sh", "-c", 'printf "bad:\\377\\376|tab:\\t|cr:\\r|end\\n\\n\\nafter-empty\\n"'],
    ),
}


def transport(case: str) -> str:
    return case.split("_")[1]


def tcp_messages(case: str) -> list[bytes]:
    """The messages of a recorded syslog TCP stream (newline framing), each with its newline."""
    stream = (SAMPLES / f"{case}.tcp-stream").read_bytes()
    return [line + b"\n" for line in stream.split(b"\n")[:-1]]


def datagrams(case: str) -> list[bytes]:
    data = (SAMPLES / f"{case}.udp-datagrams").read_bytes()
    out, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


def syslog_messages(case: str) -> list[bytes]:
    return datagrams(case) if transport(case) == "udp" else tcp_messages(case)


def gelf_messages(case: str) -> list[bytes]:
    """Docker's GELF messages, decompressed and reassembled (the recording's .messages.jsonl)."""
    return (SAMPLES / f"{case}.messages.jsonl").read_bytes().splitlines()


# ---- normalisation ------------------------------------------------------------------------------

_ID12 = rb"[0-9a-f]{12}"
_STAMP = rb"[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}"
_RFC3339 = rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?(Z|[+-][0-9]{2}:[0-9]{2})"
_UNIX = re.compile(rb"^(<[0-9]+>)(" + _STAMP + rb") (\S+)\[([0-9]+)\]: ")
_RFC3164 = re.compile(rb"^(<[0-9]+>)(" + _STAMP + rb") (\S+) (\S+)\[([0-9]+)\]: ")
_RFC5424 = re.compile(rb"^(<[0-9]+>1) (" + _RFC3339 + rb") (\S+) (\S+) ([0-9]+) (\S+) - ")


def normalise_syslog(message: bytes, form: str) -> bytes:
    """The message with its time, host, pid and any 12-hex container id replaced by placeholders; the
    time's shape (and a micro format's six digits) is kept as a marker, so a wrong shape still differs."""
    if form == "":
        match = _UNIX.match(message)
        assert match, message[:80]
        head = match.group(1) + b"STAMP " + _id(match.group(3)) + b"[PID]: "
    elif form == "rfc3164":
        match = _RFC3164.match(message)
        assert match, message[:80]
        head = match.group(1) + b"STAMP HOST " + _id(match.group(4)) + b"[PID]: "
    else:
        match = _RFC5424.match(message)
        assert match, message[:80]
        when = b"TIME.MICRO" if match.group(3) else b"TIME"
        head = match.group(1) + b" " + when + b" HOST " + _id(match.group(6)) + b" PID " + _id(match.group(8)) + b" - "
    return head + message[match.end() :]


def _id(tag: bytes) -> bytes:
    return re.sub(_ID12, b"ID", tag)


def gelf_fields(message: bytes) -> list[tuple[str, Any]]:
    """The message's fields in order, with values that differ between runs replaced (the raw message must
    also be the re-encoding of these fields: checked by the caller with `normalise_gelf`)."""
    loaded: dict[str, Any] = json.loads(message.decode("utf-8"))
    fields = list(loaded.items())
    out = []
    for key, value in fields:
        if key in ("host", "_created", "_image_id", "_container_id"):
            value = key.upper()
        elif key == "timestamp":
            assert isinstance(value, (int, float)) and re.fullmatch(
                r"[0-9]+(\.[0-9]{1,3})?", repr(value).removesuffix(".0")
            )
            value = "TIMESTAMP"
        elif key == "_tag" and re.fullmatch("[0-9a-f]{12}", value):
            value = "ID"
        out.append((key, value))
    return out


_GELF_VARYING = re.compile(
    rb'("host":)"[^"]*"|("timestamp":)[0-9.]+|("_container_id":)"[0-9a-f]{64}"|("_created":)"[^"]*"'
    rb'|("_image_id":)"sha256:[0-9a-f]{64}"|("_tag":)"[0-9a-f]{12}"'
)


def normalise_gelf(message: bytes) -> bytes:
    """The raw message with the varying values' bytes replaced, everything else (order, escaping) kept."""
    return _GELF_VARYING.sub(lambda m: next(g for g in m.groups() if g) + b'"X"', message)
