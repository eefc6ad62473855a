"""The journal fields of a container's entries, exactly as Docker's journald driver sets them.

Every entry: MESSAGE (the line, no newline, raw bytes), PRIORITY (6 stdout, 3 stderr), SYSLOG_TIMESTAMP,
CONTAINER_LOG_ORDINAL; the container's constant fields CONTAINER_ID (12), CONTAINER_ID_FULL,
CONTAINER_NAME, CONTAINER_TAG and SYSLOG_IDENTIFIER (the tag), IMAGE_NAME, CONTAINER_LOG_EPOCH and the
label/env attributes with sanitized keys; pieces of long lines add CONTAINER_PARTIAL_ID/ORDINAL/LAST and,
on all but the last piece, CONTAINER_PARTIAL_MESSAGE=true.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, PartialMeta
from logship.pipeline.processing.jsonparse import flatten, scalar_text

PRIORITY_STDOUT = 6  # info
PRIORITY_STDERR = 3  # err
STREAM_OF_PRIORITY = {"6": "stdout", "3": "stderr"}

# Fields `logs --details` does not show: the ones the driver itself sets (IMAGE_NAME excepted, as Docker
# shows it) and the journal's own well-known ones.
WELL_KNOWN = frozenset(
    {
        "MESSAGE",
        "MESSAGE_ID",
        "PRIORITY",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
        "ERRNO",
        "SYSLOG_FACILITY",
        "SYSLOG_IDENTIFIER",
        "SYSLOG_PID",
        "SYSLOG_TIMESTAMP",
        "CONTAINER_NAME",
        "CONTAINER_ID",
        "CONTAINER_ID_FULL",
        "CONTAINER_TAG",
        "CONTAINER_PARTIAL_ID",
        "CONTAINER_PARTIAL_ORDINAL",
        "CONTAINER_PARTIAL_LAST",
        "CONTAINER_PARTIAL_MESSAGE",
        "CONTAINER_LOG_EPOCH",
        "CONTAINER_LOG_ORDINAL",
    }
)


def sanitize_key(key: str) -> str:
    """Docker's journald key rule: a-z upper-cased, A-Z and 0-9 kept, anything else `_`, leading `_` dropped
    (journald ignores fields that start with `_` from clients)."""
    out = []
    for char in key:
        if "a" <= char <= "z":
            out.append(char.upper())
        elif "A" <= char <= "Z" or "0" <= char <= "9":
            out.append(char)
        elif out:
            out.append("_")
    return "".join(out)


def container_fields(info: ContainerInfo, tag: str, epoch: str) -> tuple[bytes, ...]:
    """The fields every entry of this container carries, encoded once."""
    fields = {
        "CONTAINER_ID": info.id(),
        "CONTAINER_ID_FULL": info.full_id(),
        "CONTAINER_NAME": info.name(),
        "CONTAINER_TAG": tag,
        "SYSLOG_IDENTIFIER": tag,
        "IMAGE_NAME": info.image_name,
        "CONTAINER_LOG_EPOCH": epoch,
    }
    for key, value in info.extra_attributes(sanitize_key).items():
        # Unlike Docker, a label or env var cannot replace the container's own fields (a label named
        # "container.id.full" would otherwise hide the container's entries from `logs`).
        if key:  # a key made only of underscores sanitizes to nothing
            fields.setdefault(key, value)
    return tuple(f"{key}={value}".encode() for key, value in fields.items())


def priority_field(stream: str) -> bytes:
    return b"PRIORITY=%d" % (PRIORITY_STDERR if stream == STDERR else PRIORITY_STDOUT)


def partial_fields(meta: PartialMeta) -> tuple[bytes, ...]:
    fields = (
        b"CONTAINER_PARTIAL_ID=" + meta.id.encode(),
        b"CONTAINER_PARTIAL_ORDINAL=%d" % meta.ordinal,
        b"CONTAINER_PARTIAL_LAST=" + (b"true" if meta.last else b"false"),
    )
    return fields if meta.last else (*fields, b"CONTAINER_PARTIAL_MESSAGE=true")


MAX_FIELD_NAME = 64  # journald refuses longer names
_NAMES_CACHED = 4096


class ParsedFields:
    """parse=json's fields as journal fields: nested keys joined by `_` ({"http": {"status": 200}} gives
    HTTP_STATUS=200), upper-cased and sanitised as journald requires (A-Z, 0-9 and `_`, not starting with
    `_` nor a digit, at most 64 characters), after parse-key's prefix if set. A key that would replace a
    field the driver sets (MESSAGE, PRIORITY, CONTAINER_*, SYSLOG_*, an attribute) is kept as JSON_<KEY>.
    Values are text; numbers, booleans, null and arrays as their JSON."""

    def __init__(self, reserved: Iterable[str], prefix: str = "") -> None:
        self.reserved = frozenset(reserved) | WELL_KNOWN
        self.prefix = sanitize_key(prefix)
        self._names: dict[str, str] = {}

    def name(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            name = sanitize_key(key)
            if self.prefix:
                name = f"{self.prefix}_{name}" if name else ""
            if name and (name in self.reserved or name[0].isdigit()):
                name = f"JSON_{name}"
            name = name[:MAX_FIELD_NAME]
            if len(self._names) < _NAMES_CACHED:
                self._names[key] = name
        return name

    def encode(self, fields: dict[str, Any]) -> list[bytes]:
        out = []
        for key, value in flatten(fields):
            name = self.name(key)
            if name:  # a key of only symbols has no journal name: the MESSAGE keeps it
                out.append(f"{name}={scalar_text(value)}".encode())
        return out
