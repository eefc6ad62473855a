# The C extension api/_multiplex.c (built by setup.py).
from typing_extensions import Buffer

def frame_messages(stream_type: int, data: Buffer, /) -> bytes: ...
