"""The journal fields of a container's entries, exactly as Docker's journald driver sets them.

Every entry: MESSAGE (the line, no newline, raw bytes), PRIORITY (6 stdout, 3 stderr), SYSLOG_TIMESTAMP,
CONTAINER_LOG_ORDINAL; the container's constant fields CONTAINER_ID (12), CONTAINER_ID_FULL,
CONTAINER_NAME, CONTAINER_TAG and SYSLOG_IDENTIFIER (the tag), IMAGE_NAME, CONTAINER_LOG_EPOCH and the
label/env attributes with sanitized keys; pieces of long lines add CONTAINER_PARTIAL_ID/ORDINAL/LAST and,
on all but the last piece, CONTAINER_PARTIAL_MESSAGE=true.
"""

from __future__ import annotations

from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, PartialMeta

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
