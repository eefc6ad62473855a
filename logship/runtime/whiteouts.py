"""AUFS-style whiteouts, as Docker's layer format carries them: `.wh.<name>` removes `<name>` that an
earlier layer left, `.wh..wh..opq` empties its directory of what earlier layers left.

Apart from the tar rules (`logship.runtime.tarsafe`): only image layers have whiteouts (an archive that
`cp` copies in holds `.wh.` names as plain files), and the opaque rule needs to know what the layer
being applied wrote so far.
"""

from __future__ import annotations

import os
import stat

from logship.errors import InvalidParameter
from logship.runtime.rootwalk import DIR_FLAGS, WALK_FLAGS, lstat, open_directory, remove

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"


def apply_whiteout(root_fd: int, parts: tuple[str, ...], member: str, written: set[tuple[str, ...]]) -> None:
    """Apply the whiteout `member` (its path `parts`) below the root `root_fd`; `written`: the paths this
    layer wrote, which an opaque whiteout keeps."""
    marker = parts[-1]
    if marker != OPAQUE_WHITEOUT and marker.startswith(WHITEOUT_META_PREFIX):
        return  # other AUFS bookkeeping (hard link directories): nothing to apply
    hidden = marker[len(WHITEOUT_PREFIX) :]
    if marker != OPAQUE_WHITEOUT and hidden in ("", ".", ".."):
        raise InvalidParameter(f"refusing tar member {member!r}: it is a whiteout of no valid name")
    try:
        parent = open_directory(root_fd, parts[:-1], member, create_missing=False)
    except FileNotFoundError:
        return  # nothing below a missing directory to hide
    try:
        if marker == OPAQUE_WHITEOUT:
            _empty_opaque_directory(parent, parts[:-1], written)
        else:
            existing = lstat(hidden, parent)
            if existing is not None:
                remove(hidden, parent, existing)
    finally:
        os.close(parent)


def _empty_opaque_directory(directory: int, parts: tuple[str, ...], written: set[tuple[str, ...]]) -> None:
    """Remove what earlier layers left in an opaque directory, keeping what this layer wrote."""
    listing_fd = os.open(".", DIR_FLAGS, dir_fd=directory)
    try:
        names = os.listdir(listing_fd)
    finally:
        os.close(listing_fd)
    for name in names:
        child = (*parts, name)
        existing = lstat(name, directory)
        if existing is None:
            continue
        if child not in written:
            remove(name, directory, existing)
        elif stat.S_ISDIR(existing.st_mode):
            inner = os.open(name, WALK_FLAGS, dir_fd=directory)
            try:
                _empty_opaque_directory(inner, child, written)
            finally:
                os.close(inner)
