# The C extension drivers/jsonfile/_logtext.c (built by setup.py).
from typing_extensions import Buffer

def runs(data: Buffer, timestamps: bool = False, /) -> list[tuple[str, bytes]] | None: ...
