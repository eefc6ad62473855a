"""Entry point: the supervisor runs this file, `python -I -S .../logship/runtime/init/__main__.py ...`
(a file rather than the directory, which would cost runpy's imports at every start).

Isolated mode puts neither this directory nor site-packages on sys.path; the directory that holds the
`logship` package goes first, so the modules import as `logship.runtime.init.*`, and nothing else.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from logship.runtime.init.main import main

main(sys.argv)
