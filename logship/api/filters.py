"""Docker's `filters` query parameter: a JSON object of lists of strings (`{"status": ["exited"]}`), or
the older spelling of objects of booleans (`{"status": {"exited": true}}`). Each endpoint names the keys
it knows; any other key is refused with dockerd's message, never silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from aiohttp import web

from logship.errors import InvalidParameter

SHAPE = 'filters must be a JSON object of lists of strings, e.g. {"status": ["exited"]}'


def query_filters(request: web.Request, keys: Collection[str]) -> dict[str, list[str]]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidParameter(f"invalid filters: {raw!r} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"invalid filters: {raw!r}: {SHAPE}")
    filters: dict[str, list[str]] = {}
    for key, value in data.items():
        if key not in keys:
            raise InvalidParameter(f"Invalid filter '{key}'")
        if isinstance(value, dict):  # Docker's older spelling: {"status": {"exited": true}}
            value = [k for k, on in value.items() if on]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidParameter(f"invalid filter '{key}': {SHAPE}")
        filters[key] = value
    return filters


def label_matches(labels: dict[str, str], wanted: str) -> bool:
    """`label=key` (present) or `label=key=value`; `label!=...` is handled by the caller."""
    key, has_value, value = wanted.partition("=")
    return key in labels and (not has_value or labels[key] == value)
