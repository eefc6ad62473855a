"""Lines become CloudWatch events and batches within CloudWatch's limits, and the bulk JSON the driver
sends is exactly what boto3 would have sent."""

from __future__ import annotations

import json
import re

from logship.drivers.awslogs.events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_SPAN_MS,
    EventBuilder,
    EventQueue,
    Segment,
)
from logship.drivers.awslogs.options import datetime_format_regex
from logship.pipeline.message import Batch

MS = 1_000_000


def build(*batches: Batch, multiline: str | None = None) -> EventQueue:
    builder = EventBuilder(re.compile(multiline.encode()) if multiline else None)
    queue = EventQueue()
    out: list[Segment] = []
    for batch in batches:
        builder.add(batch, out)
    builder.flush(out)
    queue.extend(out)
    return queue


def sent(queue: EventQueue) -> list[list[dict[str, object]]]:
    """Every batch the queue yields, decoded from the JSON the driver would send."""
    calls = []
    while len(queue):
        events, count = queue.take_batch()
        decoded = json.loads(b"[" + events.json() + b"]")
        assert decoded == list(events)  # the bulk JSON and the dicts hooks see agree
        calls.append(decoded)
        queue.drop(count)
    return calls


def test_plain_and_special_lines_serialize_exactly() -> None:
    lines = [b"plain", b'quote " and \\ backslash', b"tab\there", b"caf\xc3\xa9", b"bad \xff byte", b"del \x7f"]
    (batch,) = sent(build(Batch("stdout", 5 * MS, lines)))
    assert [e["message"] for e in batch] == [
        "plain",
        'quote " and \\ backslash',
        "tab\there",
        "café",
        "bad \ufffd byte",
        "del \x7f",
    ]
    assert {e["timestamp"] for e in batch} == {5}


def test_batches_respect_event_count_and_byte_limits() -> None:
    many = build(*(Batch("stdout", i * MS, [b"x" * 10] * 7000) for i in range(3)))
    calls = sent(many)
    assert [len(c) for c in calls] == [10_000, 10_000, 1_000]
    big = build(Batch("stdout", MS, [b"y" * 200_000] * 12))
    for call in sent(big):
        assert sum(len(str(e["message"]).encode()) + 26 for e in call) <= MAX_BATCH_BYTES
        assert len(call) <= MAX_BATCH_EVENTS


def test_events_longer_than_the_limit_split_on_character_boundaries() -> None:
    (batch,) = sent(build(Batch("stdout", MS, ["é".encode() * 150_000])))
    assert [len(str(e["message"]).encode()) for e in batch] == [262_118, 37_882]
    assert "".join(str(e["message"]) for e in batch) == "é" * 150_000
    invalid = sent(build(Batch("stdout", MS, [b"\xff" * 100_000])))[0]
    assert all(len(str(e["message"]).encode()) <= MAX_EVENT_BYTES for e in invalid)
    assert sum(len(str(e["message"])) for e in invalid) == 100_000  # one U+FFFD (3 bytes) per bad byte


def test_a_batch_spans_at_most_a_day_and_is_sorted_by_time() -> None:
    queue = build(
        Batch("stdout", 5 * MS, [b"late"]),
        Batch("stdout", 1 * MS, [b"early"]),
        Batch("stdout", (MAX_SPAN_MS + 10) * MS, [b"next day"]),
    )
    calls = sent(queue)
    assert [[e["message"] for e in call] for call in calls] == [["early", "late"], ["next day"]]


def test_multiline_groups_from_a_matching_line_with_newlines_as_docker() -> None:
    queue = build(
        Batch("stdout", 1 * MS, [b"2026-11-29 first", b"  more"]),
        Batch("stdout", 2 * MS, [b"2026-11-30 second"]),
        multiline=datetime_format_regex("%Y-%m-%d"),
    )
    (batch,) = sent(queue)
    assert batch == [
        {"timestamp": 1, "message": "2026-11-29 first\n  more\n"},
        {"timestamp": 2, "message": "2026-11-30 second\n"},
    ]


def test_datetime_formats_turn_into_dockers_regexes() -> None:
    assert re.search(datetime_format_regex(r"\[%b %d, %Y %H:%M:%S\]"), "[Nov 29, 2026 10:00:01] x")
    assert not re.search(datetime_format_regex("%Y-%m-%d"), "  at line 3")
    assert datetime_format_regex("%Q%Y") == r"\d{4}"  # an unknown sequence matches nothing, as in Docker
