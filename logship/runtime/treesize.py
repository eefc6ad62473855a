"""How many bytes a directory tree holds, counted as Docker counts them.

One count for everything logship reports as a size: an image's (`images`, kept in its meta.json), a
container's writable layer and a volume's (`docker system df`, `prune`'s reclaimed space), so the figures
add up the way dockerd's do.
"""

from __future__ import annotations

import os
from pathlib import Path


def tree_size(root: Path) -> int:
    """Bytes in the tree as Docker's overlay2 driver counts a layer: every non-directory entry's size
    (a symlink counts its target's length), each hard-linked file once."""
    seen: set[int] = set()
    total = 0
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                    continue
                info = entry.stat(follow_symlinks=False)
                if info.st_size and info.st_ino not in seen:
                    seen.add(info.st_ino)
                    total += info.st_size
    return total
