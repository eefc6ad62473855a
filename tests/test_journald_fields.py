"""Journal fields are built as Docker's journald driver builds them, and read back into whole lines."""

from __future__ import annotations

from typing import Any

from logship.drivers.journald.fields import container_fields, partial_fields, priority_field, sanitize_key
from logship.drivers.journald.reader import _Joiner
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import Message, PartialMeta

CID = "ab" * 32


def test_keys_are_upper_cased_other_characters_become_underscores_and_leading_ones_drop() -> None:
    assert sanitize_key("com.example.my-key") == "COM_EXAMPLE_MY_KEY"
    assert sanitize_key("_foo") == "FOO"
    assert sanitize_key("__a.b") == "A_B"
    assert sanitize_key("Mixed9Case") == "MIXED9CASE"
    assert sanitize_key("...") == ""


def test_container_fields_hold_ids_name_tag_image_and_sanitized_attributes() -> None:
    info = ContainerInfo(
        CID,
        "/web",
        config={"labels": "com.example.a", "env": "FOO"},
        image_name="busybox:local",
        labels={"com.example.a": "alpha", "container.id.full": "spoof"},
        env=("FOO=bar",),
    )
    fields = dict(f.decode().split("=", 1) for f in container_fields(info, "web-tag", "e" * 64))
    assert fields == {
        "CONTAINER_ID": CID[:12],
        "CONTAINER_ID_FULL": CID,
        "CONTAINER_NAME": "web",
        "CONTAINER_TAG": "web-tag",
        "SYSLOG_IDENTIFIER": "web-tag",
        "IMAGE_NAME": "busybox:local",
        "CONTAINER_LOG_EPOCH": "e" * 64,
        "COM_EXAMPLE_A": "alpha",
        "FOO": "bar",
    }


def test_priority_and_partial_fields() -> None:
    assert priority_field("stdout") == b"PRIORITY=6" and priority_field("stderr") == b"PRIORITY=3"
    assert partial_fields(PartialMeta("p" * 64, 2, False))[-1] == b"CONTAINER_PARTIAL_MESSAGE=true"
    assert b"CONTAINER_PARTIAL_MESSAGE=true" not in partial_fields(PartialMeta("p" * 64, 3, True))


def entry(
    message: bytes, priority: int = 6, partial: tuple[str, int, bool] | None = None, **extra: str
) -> dict[str, Any]:
    fields: dict[str, Any] = {"MESSAGE": message, "PRIORITY": priority, "__REALTIME_TIMESTAMP": 1_000_000, **extra}
    if partial:
        fields.update(
            CONTAINER_PARTIAL_ID=partial[0],
            CONTAINER_PARTIAL_ORDINAL=str(partial[1]),
            CONTAINER_PARTIAL_LAST="true" if partial[2] else "false",
        )
    return fields


def test_pieces_are_joined_and_other_streams_pass_through() -> None:
    joiner, out = _Joiner(), []
    for e in (
        entry(b"aa", partial=("x", 1, False)),
        entry(b"err", priority=3),
        entry(b"bb", partial=("x", 2, True)),
        entry(b"whole", IMAGE_NAME="busybox", CONTAINER_TAG="t", _PID="1"),
    ):
        joiner.add(e, out)
    joiner.flush(out)
    assert [(m.line, m.stream, m.ends_line) for m in out] == [
        (b"err", "stderr", True),
        (b"aabb", "stdout", True),
        (b"whole", "stdout", True),
    ]
    assert out[-1].attrs == {"IMAGE_NAME": "busybox"}
    assert out[0].timestamp_ns == 1_000_000_000


def test_a_line_cut_short_by_eof_stays_without_newline() -> None:
    joiner, out = _Joiner(), []
    joiner.add(entry(b"no-newline", partial=("y", 1, False)), out)
    joiner.flush(out)
    assert [(m.line, m.ends_line) for m in out] == [(b"no-newline", False)]
    assert isinstance(out[0], Message)


def test_unknown_priorities_are_skipped() -> None:
    joiner, out = _Joiner(), []
    joiner.add(entry(b"debug", priority=7), out)
    assert out == []
