"""When to try a syslog server again: forever (a line is never given up on while the container runs),
100 ms after the first failure, doubling up to 5 s; at the container's end, every 0.25 s within the flush
bound (drivers/util/netsink.py). Docker's driver retries once and then drops the line."""

from __future__ import annotations

from logship.drivers.util.netsink import Backoff

FIRST_RETRY_S = 0.1
MAX_RETRY_S = 5.0


def policy() -> Backoff:
    return Backoff(FIRST_RETRY_S, MAX_RETRY_S)
