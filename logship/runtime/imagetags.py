"""Docker's rules for names in the image store: how repositories.json keys a reference, and what `docker
rmi` untags (ImageDelete's rules and refusals, with its messages).

Apart from the store because they are rules on the tag map alone: the store (`images`) holds the lock,
reads and writes repositories.json, and deletes the data these rules leave untagged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from logship.errors import Conflict
from logship.runtime.reference import Reference, parse_reference

# `docker rmi`'s answer: [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}]
RemovalRecords = list[dict[str, str]]


def stored_reference(text: str) -> Reference:
    """A reference as repositories.json keys it: name:tag (":latest" when none), or name@digest alone
    (Docker drops the tag of a reference that has both)."""
    reference = parse_reference(text)
    if reference.digest is not None:
        return replace(reference, tag=None)
    return reference.with_default_tag()


def untag_named_reference(
    tags: dict[str, str], image_id: str, reference: str, force: bool, users: Sequence[str]
) -> RemovalRecords:
    """`rmi <name:tag>` removes that tag (and `rmi <name@digest>` that digest). Without force, Docker
    refuses to drop the last tag of an image a container uses, which would leave the container on a
    nameless image. When the last tag of a repository goes, that repository's digests of the image go too."""
    own = [name for name, target in tags.items() if target == image_id]
    own_tags = [name for name in own if "@" not in name]
    if users and len(own_tags) == 1 and not force:
        raise Conflict(
            f"conflict: unable to remove repository reference {json.dumps(reference)} (must force) - "
            f"container {users[0][:12]} is using its referenced image {_short_id(image_id)}"
        )
    untagged = str(stored_reference(reference))
    del tags[untagged]
    records = [{"Untagged": untagged}]
    repository = _repository(untagged)
    if "@" not in untagged and not any(_repository(name) == repository for name in own_tags if name != untagged):
        for name in sorted(own):
            if "@" in name and _repository(name) == repository:
                del tags[name]
                records.append({"Untagged": name})
    return records


def untag_for_id_removal(tags: dict[str, str], image_id: str, force: bool, users: Sequence[str]) -> RemovalRecords:
    """`rmi <id>` removes every tag and digest of the image; without force, only when they are of one
    repository with at most one tag (Docker's isSingleReference), and no container uses it."""
    own = sorted(name for name, target in tags.items() if target == image_id)
    if users and not force:
        raise Conflict(
            f"conflict: unable to delete {_short_id(image_id)} (must be forced) - "
            f"image is being used by container {users[0][:12]}"
        )
    single = len({_repository(name) for name in own}) <= 1 and sum("@" not in name for name in own) <= 1
    if not single and not force:
        raise Conflict(
            f"conflict: unable to delete {_short_id(image_id)} (must be forced) - "
            "image is referenced in multiple repositories"
        )
    for name in own:
        del tags[name]
    return [{"Untagged": name} for name in own]


def _repository(name: str) -> str:
    """ "busybox" of "busybox:latest" and of "busybox@sha256:..."."""
    return parse_reference(name).familiar_name


def _short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
