"""Durations and sizes the way docker prints them (go-units' HumanDuration and HumanSize)."""

from __future__ import annotations


def human_duration(ns: int) -> str:
    """Docker's `units.HumanDuration`."""
    seconds = max(ns, 0) / 1e9
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = seconds / 60
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    hours = minutes / 60
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    if hours < 24 * 7 * 2:
        return f"{int(hours / 24)} days"
    if hours < 24 * 30 * 2:
        return f"{int(hours / 24 / 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{int(hours / 24 / 30)} months"
    return f"{int(hours / 24 / 365)} years"


def human_size(size: float) -> str:
    """Decimal units with 4 significant digits: `1.23MB`."""
    return _scaled(size, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB"))


def binary_size(size: float) -> str:
    """Binary units with 4 significant digits, as `docker stats` shows memory: `23.54GiB`."""
    return _scaled(size, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"))


def _scaled(size: float, step: float, units: tuple[str, ...]) -> str:
    i = 0
    while size >= step and i < len(units) - 1:
        size /= step
        i += 1
    return f"{size:.4g}{units[i]}"
