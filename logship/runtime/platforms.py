"""Platforms: which machine an image is for, and picking this machine's image from a multi-platform index.

Both ways an image can arrive with several platforms in one name, a pull of a manifest list or OCI index
(`registry.manifests`) and a `docker load` of an OCI image layout whose index lists one manifest per
platform (`ocilayout`), choose among the entries with `match_platform`, so they agree on what matches and
on what is not an image at all (buildx's attestations). What each does when nothing matches is its own:
pull refuses with Docker's message, load takes a lone image whatever its platform.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from logship.errors import InvalidParameter

# buildx stores provenance and SBOMs as extra manifests in an index; they are not images to run.
ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"

_GO_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

Entry = TypeVar("Entry")


def go_architecture() -> str:
    """This machine's architecture under Go's name, as image configs record it."""
    machine = platform.machine().lower()
    return _GO_ARCHITECTURES.get(machine, machine)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


def this_platform() -> Platform:
    return Platform("linux", go_architecture())


def parse_platform(text: str) -> Platform:
    """`--platform linux/arm64/v8` (os/arch[/variant]); InvalidParameter naming it otherwise."""
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: give os/arch[/variant]')
    if parts[0] != "linux":
        raise InvalidParameter(f'"{text}": logship runs Linux images only (give linux/<arch>)')
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def platform_text(value: Any) -> str:
    """An index entry's "platform" object as os/arch[/variant], "?" for what it leaves out."""
    fields = value if isinstance(value, dict) else {}
    parts = [fields.get("os", "?"), fields.get("architecture", "?")] + (
        [fields["variant"]] if fields.get("variant") else []
    )
    return "/".join(str(part) for part in parts)


def match_platform(
    entries: Sequence[Entry],
    wanted: Platform,
    platform_of: Callable[[Entry], Any],
    annotations_of: Callable[[Entry], Any],
) -> tuple[Entry | None, list[Entry]]:
    """The first of `entries` (an index's) whose platform is `wanted` (a variant matches when none is
    asked for), or None; and the entries that are images, attestations left out, for the caller's
    fallback or refusal. `platform_of` and `annotations_of` give an entry's "platform" and "annotations"."""
    images = [entry for entry in entries if not _is_attestation(annotations_of(entry))]
    for entry in images:
        fields = platform_of(entry)
        if not isinstance(fields, dict):
            continue
        if (
            fields.get("os") == wanted.os
            and fields.get("architecture") == wanted.architecture
            and (not wanted.variant or fields.get("variant", "") == wanted.variant)
        ):
            return entry, images
    return None, images


def _is_attestation(annotations: Any) -> bool:
    return isinstance(annotations, dict) and ANNOTATION_REFERENCE_TYPE in annotations
