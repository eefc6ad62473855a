"""Image configs, the JSON document an image ID is the digest of: reading what the store needs from one
(`config_diff_ids`: its layers, and that it is a Linux image), and building the one `docker import` makes.

Kept apart from the store because every way an image arrives reads configs before the store sees them:
`docker load` checks an archive's configs (`dockersave`, `ocilayout`) and a pull the registry's
(`registry.manifests`) before a byte of a layer is applied. The config `docker import` builds is Docker's
own, field for field, so an imported image's ID and `inspect` match dockerd's.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from logship.errors import InvalidParameter
from logship.runtime.platforms import go_architecture

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMPORT_COMMENT = "Imported from -"  # Docker's history comment for `docker import -` without --message

_DIFF_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """`data` parsed as a JSON object; InvalidParameter naming `what` otherwise."""
    try:
        document = json.loads(data)
    except ValueError as err:
        raise InvalidParameter(f"{what} is not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise InvalidParameter(f"{what} must be a JSON object")
    return document


def config_diff_ids(config: bytes, what: str = "the image config") -> list[str]:
    """The config's rootfs.diff_ids, after checking it describes a Linux image; InvalidParameter naming
    `what` otherwise."""
    document = json_object(config, what)
    os_name = document.get("os", "linux")
    if os_name != "linux":
        raise InvalidParameter(f"{what} is for the operating system {os_name!r}: logship runs Linux images only")
    rootfs = document.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _DIFF_ID_RE.match(d) for d in diff_ids):
        raise InvalidParameter(f'{what} has no valid rootfs.diff_ids (a list of "sha256:<hex>" digests)')
    return diff_ids


def import_container_config() -> dict[str, Any]:
    """The "config" of an imported image: Docker's empty container config plus a usable PATH."""
    return {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": [DEFAULT_PATH_ENV],
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }


def import_config_bytes(container_config: dict[str, Any], diff_id: str, comment: str, created: str) -> bytes:
    """The config of an imported image (one layer, `diff_id`) in the field order Docker writes, compact,
    as the bytes the ID is hashed from."""
    config = {
        "architecture": go_architecture(),
        "comment": comment,
        "config": container_config,
        "created": created,
        "history": [{"created": created, "comment": comment}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    return json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339_now() -> str:
    """Now in UTC as Go writes time.Time in JSON: nanoseconds, trailing zeros dropped."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{nanoseconds:09d}".rstrip("0")
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"
