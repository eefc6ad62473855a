"""Named volumes: Docker's `local` driver, kept under `<data-root>/volumes/<name>/`.

    <data-root>/volumes/<name>/_data         what containers see (the Mountpoint)
    <data-root>/volumes/<name>/volume.json   Name, Labels, CreatedAt, whether it is anonymous

A volume belongs to no container: removing a container leaves its named volumes (its anonymous ones go
with `rm -v` and `--rm`, as in Docker). A volume in use by any container, running or not, cannot be
removed without force. Names follow the local driver's rule, so a name can never be a path: no `/`, no
`..`, nothing that would put the volume outside this directory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logship.daemon.container import rfc3339_nano
from logship.errors import Conflict, InvalidParameter, NotFound
from logship.runtime.treesize import tree_size

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
METADATA = "volume.json"
DATA = "_data"


def check_name(name: str) -> None:
    """The local driver's name rule, with its message."""
    if not NAME_RE.fullmatch(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )


@dataclass
class Volume:
    name: str
    mountpoint: Path
    created_ns: int
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def to_api(self) -> dict[str, Any]:
        return {
            "CreatedAt": rfc3339_nano(self.created_ns),
            "Driver": "local",
            "Labels": self.labels,
            "Mountpoint": str(self.mountpoint),
            "Name": self.name,
            "Options": None,
            "Scope": "local",
        }


class VolumeStore:
    """The volumes of one data root. `users(name)` lists the ids of the containers that mount a volume
    (the container manager knows them)."""

    def __init__(self, root: Path, users: Callable[[str], list[str]] = lambda name: []) -> None:
        self.root = root
        self.users = users

    def _dir(self, name: str) -> Path:
        check_name(name)
        return self.root / name

    def get(self, name: str) -> Volume:
        try:
            directory = self._dir(name)
        except InvalidParameter:
            raise NotFound(f"get {name}: no such volume") from None
        try:
            meta = json.loads((directory / METADATA).read_text())
        except FileNotFoundError:
            raise NotFound(f"get {name}: no such volume") from None
        except (OSError, ValueError) as err:
            raise NotFound(f"get {name}: the volume's {directory / METADATA} is unreadable ({err})") from None
        return Volume(name, directory / DATA, int(meta.get("CreatedNs", 0)), dict(meta.get("Labels") or {}))

    def create(
        self,
        name: str = "",
        labels: dict[str, str] | None = None,
        driver: str = "",
        options: dict[str, str] | None = None,
    ) -> Volume:
        """Docker's `volume create`: an existing name is returned as it is (labels untouched)."""
        if driver not in ("", "local"):
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        if options:
            raise InvalidParameter(
                f"create {name}: volume options ({', '.join(sorted(options))}) are not supported by logship's local "
                "driver: mount a host directory with -v /path:/target or a tmpfs with --tmpfs"
            )
        name = name or secrets.token_hex(32)
        directory = self._dir(name)
        try:
            return self.get(name)
        except NotFound:
            pass
        self.root.mkdir(mode=0o701, parents=True, exist_ok=True)
        temporary = self.root / f".{name}.{secrets.token_hex(4)}"
        (temporary / DATA).mkdir(parents=True)
        os.chmod(temporary / DATA, 0o755)
        created_ns = time.time_ns()
        meta = {"Name": name, "Labels": labels or {}, "CreatedNs": created_ns}
        (temporary / METADATA).write_text(json.dumps(meta))
        try:
            os.rename(temporary, directory)  # whole or not at all; a racing create of the same name wins
        except OSError:
            shutil.rmtree(temporary, ignore_errors=True)
            return self.get(name)
        return Volume(name, directory / DATA, created_ns, labels or {})

    def create_anonymous(self) -> Volume:
        return self.create(labels={ANONYMOUS_LABEL: ""})

    def all(self) -> list[Volume]:
        try:
            names = sorted(
                entry.name for entry in os.scandir(self.root) if entry.is_dir() and not entry.name.startswith(".")
            )
        except FileNotFoundError:
            return []
        volumes = []
        for name in names:
            try:
                volumes.append(self.get(name))
            except NotFound:
                continue
        return volumes

    def remove(self, name: str, force: bool = False) -> None:
        volume = self.get(name) if not force else self._get_or_none(name)
        if volume is None:
            return  # force: a missing volume is not an error, as in Docker
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        directory = self._dir(name)
        doomed = self.root / f".removing-{name}-{secrets.token_hex(4)}"
        os.rename(directory, doomed)  # gone from the namespace at once; the contents follow
        shutil.rmtree(doomed, ignore_errors=True)

    def _get_or_none(self, name: str) -> Volume | None:
        try:
            return self.get(name)
        except NotFound:
            return None

    def prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        """Unused volumes matching the filters: anonymous ones only unless `all=true` (API 1.42+)."""
        everything = any(value.lower() in ("1", "true") for value in filters.get("all", []))
        removed, reclaimed = [], 0
        for volume in self.matching(filters, allowed=("all", "label", "label!")):
            if (not everything and not volume.anonymous) or self.users(volume.name):
                continue
            size = tree_size(volume.mountpoint)
            try:
                self.remove(volume.name)
            except (Conflict, NotFound):
                continue
            removed.append(volume.name)
            reclaimed += size
        return removed, reclaimed

    def matching(
        self, filters: dict[str, list[str]], allowed: Iterable[str] = ("dangling", "driver", "label", "name")
    ) -> list[Volume]:
        """`GET /volumes` filters: dangling, driver, label (key or key=value), name (substring)."""
        allowed = tuple(allowed)
        for key in filters:
            if key not in allowed:
                raise InvalidParameter(f"invalid filter '{key}'")
        result = []
        for volume in self.all():
            if "name" in filters and not any(part in volume.name for part in filters["name"]):
                continue
            if "driver" in filters and "local" not in filters["driver"]:
                continue
            if "label" in filters and not all(_has_label(volume, item) for item in filters["label"]):
                continue
            if "label!" in filters and any(_has_label(volume, item) for item in filters["label!"]):
                continue
            if "dangling" in filters:
                wanted = {value.lower() in ("1", "true") for value in filters["dangling"]}
                if len(wanted) == 1 and (not self.users(volume.name)) not in wanted:
                    continue
            result.append(volume)
        return result


def _has_label(volume: Volume, item: str) -> bool:
    key, sep, value = item.partition("=")
    return key in volume.labels and (not sep or volume.labels[key] == value)
