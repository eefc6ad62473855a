"""What `logs` asks a reader for (Docker's `logger.ReadConfig`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReadConfig:
    since_ns: int = 0  # 0: from the beginning; inclusive
    until_ns: int = 0  # 0: no end; inclusive
    tail: int = -1  # -1: all records; 0: none; N: the last N records (pieces of long lines count one each)
    follow: bool = False
    # Runs only (`read_text`): each line carries its `logs -t` prefix, as the API prints a message. Formatting
    # is the API's job on the message path; on the run path there is no message left to format.
    timestamps: bool = False
