"""What `logs` asks a reader for (Docker's `logger.ReadConfig`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReadConfig:
    since_ns: int = 0  # 0: from the beginning; inclusive
    until_ns: int = 0  # 0: no end; inclusive
    tail: int = -1  # -1: all records; 0: none; N: the last N records (pieces of long lines count one each)
    follow: bool = False
