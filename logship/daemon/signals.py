"""Signal names as Docker takes them (`--signal`, `StopSignal`, `kill -s`): by name, short name or number.

Its own module because create (checking StopSignal), the container manager and the API all parse them.
"""

from __future__ import annotations

import signal

from logship.errors import InvalidParameter

_SIGNALS = {
    name[3:]: int(value)
    for name, value in signal.Signals.__members__.items()
    if name.startswith("SIG") and not name.startswith("SIG_")
}


def parse_signal(text: str) -> int:
    """Docker accepts `SIGKILL`, `KILL`, `kill` or `9`."""
    value = text.strip().upper()
    if value.isdigit():
        number = int(value)
        if 0 < number < 65:
            return number
    name = value[3:] if value.startswith("SIG") else value
    if name in _SIGNALS:
        return _SIGNALS[name]
    raise InvalidParameter(f"Invalid signal: {text}")
