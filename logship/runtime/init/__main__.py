"""Entry point when the supervisor runs this directory: `python -I -S .../logship/runtime/init ...`.

Isolated mode puts only this directory on sys.path; the directory that holds the `logship` package
replaces it, so the modules import as `logship.runtime.init.*` (no site-packages, nothing else).
"""

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from logship.runtime.init.main import main  # noqa: E402

main(sys.argv)
