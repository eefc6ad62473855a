"""When to try a GELF server again. With `gelf-tcp-max-reconnect` (and `gelf-tcp-reconnect-delay`, seconds),
Docker's bound: that many reconnects that far apart, then the oldest messages are given up (counted as
failed); without it, forever, 100 ms after the first failure doubling up to 5 s."""

from __future__ import annotations

from logship.drivers.gelf.options import Config
from logship.drivers.util.netsink import Backoff, RetryPolicy

DOCKER_RECONNECT_DELAY_S = 1.0


class Bounded:
    def __init__(self, max_reconnect: int, delay_s: float) -> None:
        self.max_reconnect = max_reconnect
        self.delay_s_each = delay_s

    def delay_s(self, attempt: int) -> float | None:
        return self.delay_s_each if attempt <= self.max_reconnect else None


def policy(config: Config) -> RetryPolicy:
    if config.max_reconnect is not None:
        delay = config.reconnect_delay_s if config.reconnect_delay_s is not None else DOCKER_RECONNECT_DELAY_S
        return Bounded(config.max_reconnect, delay)
    if config.reconnect_delay_s is not None:
        return Backoff(config.reconnect_delay_s, config.reconnect_delay_s)
    return Backoff(0.1, 5.0)
