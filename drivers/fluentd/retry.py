"""When to try again: fluent-logger's backoff, retry-wait x 1.5^(attempt-1), capped."""

from __future__ import annotations

MAX_WAIT_S = 60.0  # fluent-logger-golang's MaxRetryWait


def backoff_s(retry_wait_s: float, attempt: int) -> float:
    """Seconds to wait before attempt number `attempt` + 1 (attempts count from 1)."""
    exponent = min(max(attempt - 1, 0), 64)  # 1.5**64 is past any cap; larger would overflow a float
    return min(retry_wait_s * 1.5**exponent, MAX_WAIT_S)
