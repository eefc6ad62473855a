"""Processing (issue 19), without a daemon: multiline events, parse=json, redaction and filters as
specifications, and the promises readers rely on: every reader makes the same records from the same
spool however it reads it, and a reader that resumes from any checkpoint it saved loses and repeats
nothing."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest

from logship.drivers.fluentd.encode import RecordEncoder
from logship.drivers.gelf.encode import GelfEncoder
from logship.drivers.journald.fields import ParsedFields
from logship.errors import InvalidParameter
from logship.pipeline.cursor import StreamCursor
from logship.pipeline.info import ContainerInfo
from logship.pipeline.ledger import Checkpoint
from logship.pipeline.message import Batch
from logship.pipeline.processing import config as processing
from logship.pipeline.processing.config import ProcessingConfig, config_of
from logship.pipeline.processing.jsonparse import MAX_DEPTH, flatten, parse
from logship.pipeline.processing.lines import HOLD
from logship.pipeline.processing.stream import Processed, StreamProcessor
from logship.pipeline.splitter import LineSplitter
from logship.pipeline.spool import MARK_FLUSH, MARK_RESUME, Spool
from logship.pipeline.stats import ProcessingStats
from tests.traces import go_trace, java_trace, python_traceback

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
Record = tuple[bytes, Any, Any, int]  # line, (ordinal, last) of a piece or None, fields, time


def records_of(processed: list[Processed]) -> list[Record]:
    out = []
    for item in processed:
        batch = item.batch
        for index, line in enumerate(batch.lines):
            meta = batch.partials.get(index)
            piece = (meta.ordinal, meta.last) if meta is not None else None
            out.append((line, piece, batch.fields[index] if batch.fields else None, batch.timestamp_ns))
    return out


def process(opts: dict[str, str], reads: list[tuple[bytes, int]], stats: ProcessingStats | None = None) -> list[Record]:
    """Lines made by Docker's splitter from `reads` ((bytes, read time)), processed; then the run ends."""
    config = config_of(opts)
    assert config is not None
    processor = StreamProcessor(config, "stdout", 16384, stats or ProcessingStats(), Checkpoint())
    splitter = LineSplitter("stdout")
    line = 0
    out: list[Processed] = []
    for data, stamp in reads:
        for batch in splitter.feed(data, stamp):
            out += processor.feed(batch, line, Checkpoint(0, 0, line + len(batch)))
            line += len(batch)
    for batch in splitter.finish(reads[-1][1]):
        out += processor.feed(batch, line, Checkpoint(0, 0, line + len(batch)))
    out += processor.end_run()
    return records_of(out)


def lines_of(records: list[Record]) -> list[bytes]:
    return [record[0] for record in records]


# -- multiline --


@pytest.mark.parametrize("preset, trace", [("java", java_trace), ("python", python_traceback), ("go", go_trace)])
def test_a_trace_is_one_event_between_the_lines_around_it(preset: str, trace: Any) -> None:
    text = trace().encode()
    stats = ProcessingStats()
    got = process({"multiline": preset}, [(b"before\n" + text + b"\nafter\n", T0)], stats)
    assert lines_of(got) == [b"before", text, b"after"]
    assert (stats.events_joined, stats.lines_joined) == (1, text.count(b"\n") + 1)


@pytest.mark.parametrize("preset, trace", [("java", java_trace), ("python", python_traceback), ("go", go_trace)])
def test_a_trace_printed_a_line_per_read_is_the_same_event(preset: str, trace: Any) -> None:
    text = trace().encode()
    reads = [(line + b"\n", T0 + n * 1000) for n, line in enumerate(text.split(b"\n"))]
    got = process({"multiline": preset}, [(b"before\n", T0 - 1000), *reads, (b"after\n", T0 + SECOND // 2)])
    assert lines_of(got) == [b"before", text, b"after"]
    assert got[1][3] == T0  # an event has its first line's time


def test_two_traces_in_a_row_are_two_events() -> None:
    java = java_trace().encode()
    python = python_traceback().encode()
    assert lines_of(process({"multiline": "java"}, [(java + b"\n" + java + b"\n", T0)])) == [java, java]
    assert lines_of(process({"multiline": "python"}, [(python + b"\n" + python + b"\n", T0)])) == [python, python]


def test_a_blank_line_after_a_traceback_is_its_own_line_unless_a_chained_exception_follows() -> None:
    single = b'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: bad'
    got = process({"multiline": "python"}, [(single + b"\n\nnext\n", T0)])
    assert lines_of(got) == [single, b"", b"next"]


def test_multiline_start_lines_not_matching_join_the_event_before() -> None:
    reads = [(b"cont before any start\n2024-01-01 one\n  more\n  more\n2024-01-02 two\nthree?\n", T0)]
    got = process({"multiline-start": r"^\d{4}-"}, reads)
    assert lines_of(got) == [b"cont before any start", b"2024-01-01 one\n  more\n  more", b"2024-01-02 two\nthree?"]


def test_multiline_start_matches_anywhere_in_the_line_as_gos_match() -> None:
    got = process({"multiline-start": "BEGIN"}, [(b"x BEGIN a\nb\ny BEGIN c\n", T0)])
    assert lines_of(got) == [b"x BEGIN a\nb", b"y BEGIN c"]


def test_an_event_ends_when_its_next_line_was_read_after_the_timeout() -> None:
    opts = {"multiline": "java", "multiline-timeout": "500ms"}
    reads = [(b"Exception: a\n", T0), (b"\tat x\n", T0 + SECOND // 4), (b"\tat y\n", T0 + SECOND)]
    got = process(opts, reads)
    assert [(line, stamp) for line, _, _, stamp in got] == [(b"Exception: a\n\tat x", T0), (b"\tat y", T0 + SECOND)]


def test_the_wall_clock_flushes_an_event_when_no_more_lines_come_as_a_later_reader_would_end_it() -> None:
    config = config_of({"multiline": "java", "multiline-timeout": "1s"})
    assert config is not None
    live = StreamProcessor(config, "stdout", 16384, ProcessingStats(), Checkpoint())
    first = Batch.of_text("stdout", T0, b"Exception: a\n\tat x", 2)
    assert records_of(live.feed(first, 0, Checkpoint(0, 2, 2))) == []
    assert live.deadline() == T0 + SECOND
    flushed = records_of(live.flush())  # the reader found nothing more by the deadline
    later = Batch.of_text("stdout", T0 + SECOND + 1, b"\tat y", 1)  # so what comes next was read later still
    flushed += records_of(live.feed(later, 2, Checkpoint(0, 3, 3))) + records_of(live.end_run())
    rereader = StreamProcessor(config, "stdout", 16384, ProcessingStats(), Checkpoint())
    again = records_of(rereader.feed(first, 0, Checkpoint(0, 2, 2)) + rereader.feed(later, 2, Checkpoint(0, 3, 3)))
    assert flushed == again + records_of(rereader.end_run())
    assert lines_of(flushed) == [b"Exception: a\n\tat x", b"\tat y"]


def test_an_event_ends_before_the_line_that_would_take_it_past_the_cap() -> None:
    stats = ProcessingStats()
    frames = b"".join(b"\tat frame%04d(%s)\n" % (n, b"x" * 80) for n in range(40))  # 40 x ~100 bytes
    got = process({"multiline": "java", "multiline-max-bytes": "1k"}, [(b"Exception: big\n" + frames, T0)], stats)
    assert all(len(line) <= 1024 for line in lines_of(got))
    assert b"\n".join(lines_of(got)) == b"Exception: big\n" + frames.rstrip(b"\n")
    assert stats.events_capped == len(got) - 1 >= 3


def test_a_line_longer_than_the_cap_goes_on_in_its_pieces_and_ends_the_event_before_it() -> None:
    long = b"L" * 40000
    got = process(
        {"multiline": "java", "multiline-max-bytes": "32k"}, [(b"Exception: a\n\tat x\n" + long + b"\n\tat y\n", T0)]
    )
    assert got[0][0] == b"Exception: a\n\tat x"
    pieces = got[1:4]
    assert b"".join(line for line, _, _, _ in pieces) == long
    assert [piece for _, piece, _, _ in pieces] == [(1, False), (2, False), (3, True)]
    assert lines_of(got[4:]) == [b"\tat y"]


def test_pieces_of_a_long_line_are_joined_into_the_event() -> None:
    long = b"\tat " + b"y" * 20000
    got = process({"multiline": "java"}, [(b"Exception: a\n" + long + b"\nnext\n", T0)])
    assert lines_of(got) == [b"Exception: a\n" + long, b"next"]


def test_streams_never_join() -> None:
    config = config_of({"multiline": "java"})
    assert config is not None
    out = StreamProcessor(config, "stdout", 16384, ProcessingStats(), Checkpoint())
    err = StreamProcessor(config, "stderr", 16384, ProcessingStats(), Checkpoint())
    got = out.feed(Batch.of_text("stdout", T0, b"Exception: on stdout", 1), 0, Checkpoint(0, 1, 1))
    got += err.feed(Batch.of_text("stderr", T0, b"\tat continuation on stderr", 1), 0, Checkpoint(0, 1, 1))
    got += out.end_run() + err.end_run()
    assert sorted((item.batch.stream, item.batch.lines) for item in got if len(item.batch)) == [
        ("stderr", [b"\tat continuation on stderr"]),
        ("stdout", [b"Exception: on stdout"]),
    ]


# -- parse=json --


def test_json_objects_become_fields_nested_values_included_and_the_rest_pass_unchanged() -> None:
    stats = ProcessingStats()
    lines = b'{"level":"info","http":{"status":200,"path":"/a"},"tags":["x","y"]}\nnot json\n[1,2]\n{"broken":\n'
    got = process({"parse": "json"}, [(lines, T0)], stats)
    assert got[0][2] == {"level": "info", "http": {"status": 200, "path": "/a"}, "tags": ["x", "y"]}
    assert [fields for _, _, fields, _ in got[1:]] == [None, None, None]
    assert lines_of(got) == lines.rstrip(b"\n").split(b"\n")
    assert (stats.lines_parsed, stats.lines_not_parsed) == (1, 3)


def test_a_long_json_line_is_put_together_and_parsed_and_one_past_the_cap_passes_in_pieces() -> None:
    stats = ProcessingStats()
    fits = b'{"blob":"' + b"a" * 50000 + b'"}'
    too_big = b'{"blob":"' + b"b" * 300000 + b'"}'
    got = process({"parse": "json"}, [(fits + b"\n" + too_big + b"\n", T0)], stats)
    assert got[0] == (fits, None, {"blob": "a" * 50000}, T0)
    assert b"".join(lines_of(got[1:])) == too_big and all(piece is not None for _, piece, _, _ in got[1:])
    assert (stats.lines_parsed, stats.lines_not_parsed) == (1, 1)


def test_objects_nested_deeper_than_the_bound_are_kept_as_json_text_from_there() -> None:
    deep = b'{"a":' * (MAX_DEPTH + 4) + b"1" + b"}" * (MAX_DEPTH + 4)
    fields = parse(deep)
    assert fields is not None
    level = fields
    for _ in range(MAX_DEPTH - 1):
        level = level["a"]
    assert level["a"] == '{"a":{"a":{"a":{"a":1}}}}'
    assert parse(b"[" * 2000 + b"]" * 2000) is None  # not an object (and deeper than orjson reads)


def test_fluentd_records_carry_the_keys_beside_the_containers_own_which_are_never_replaced() -> None:
    info = ContainerInfo("c" * 64, "/web")
    batch = Batch("stdout", T0, [b'{"msg":"hi","source":"app","n":{"a":1}}', b"plain"])
    batch.fields = [{"msg": "hi", "source": "app", "n": {"a": 1}}, None]
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(RecordEncoder(info, {"team": "logs"}, sub_second=False).entries(batch))
    (_, parsed), (_, plain) = list(unpacker)
    assert parsed == {
        "container_id": "c" * 64,
        "container_name": "/web",
        "source": "stdout",
        "team": "logs",
        "msg": "hi",
        "json_source": "app",
        "n": {"a": 1},
    }
    assert plain["log"] == "plain"
    unpacker.feed(RecordEncoder(info, {}, sub_second=False, parse_key="app").entries(batch))
    assert next(unpacker)[1]["app"] == {"msg": "hi", "source": "app", "n": {"a": 1}}


def test_journal_field_names_are_upper_cased_sanitised_and_never_replace_the_drivers_own() -> None:
    names = ParsedFields(["CONTAINER_ID", "CONTAINER_NAME"])
    fields = names.encode({"http": {"status": 200}, "message": "x", "container.id": 1, "9lives": True, "_x": None})
    assert fields == [b"JSON_MESSAGE=x", b"JSON_CONTAINER_ID=1", b"JSON_9LIVES=true", b"X=null", b"HTTP_STATUS=200"]
    assert ParsedFields([], "app").encode({"level": "info"}) == [b"APP_LEVEL=info"]


def test_gelf_messages_keep_the_line_and_carry_the_keys_as_additional_fields_after_dockers() -> None:
    encoder = GelfEncoder("host", {"_container_id": "c" * 64, "_tag": "web"})
    line = b'{"msg":"hi <b>","id":7,"container_id":"x","http":{"status":200},"ok":true,"a b":null,"tags":[1]}'
    batch = Batch("stderr", T0, [line, b"plain", b""])
    batch.fields = [parse(line), None, None]
    parsed, plain = (json.loads(message) for message in encoder.messages(batch))
    assert parsed["short_message"] == line.decode() and parsed["level"] == 3 and parsed["_tag"] == "web"
    assert {key: value for key, value in parsed.items() if key.startswith("_") and key != "_tag"} == {
        "_container_id": "c" * 64,
        "_msg": "hi <b>",
        "_json_id": 7,  # GELF reserves _id
        "_json_container_id": "x",
        "_http_status": 200,
        "_ok": "true",  # GELF's fields are strings or numbers
        "_a_b": "null",
        "_tags": "[1]",
    }
    assert plain == {**json.loads(encoder.messages(Batch("stderr", T0, [b"plain"]))[0]), "short_message": "plain"}
    prefixed = json.loads(GelfEncoder("host", {"_tag": "web"}, parse_key="app").messages(batch)[0])
    assert prefixed["_app_msg"] == "hi <b>" and "_msg" not in prefixed


def test_flattening_is_bounded() -> None:
    assert len(flatten({f"k{n}": n for n in range(1000)})) == 256
    assert flatten({"a": {"b": {"c": 1}}, "d": []}) == [("d", []), ("a_b_c", 1)]


# -- redaction and filters --


def test_redaction_rewrites_every_match_and_counts_them() -> None:
    stats = ProcessingStats()
    opts = {"redact": r"password=\S+,token [0-9a-f]{8}", "redact-replacement": "***"}
    got = process(opts, [(b"login password=hunter2 ok\ntoken deadbeef and token 0badcafe\nclean\n", T0)], stats)
    assert lines_of(got) == [b"login *** ok", b"*** and ***", b"clean"]
    assert stats.matches_redacted == 3


def test_a_secret_cut_in_two_by_the_16k_piece_boundary_is_still_redacted() -> None:
    for cut in (3, 9):  # the secret straddles the boundary at different places
        line = b"x" * (16384 - cut) + b"password=hunter2" + b"y" * 20000
        got = process({"redact": r"password=\S+"}, [(line[:16384], T0), (line[16384:] + b"\n", T0)])
        joined = b"".join(lines_of(got))
        assert b"hunter2" not in joined and b"[REDACTED]" in joined
        assert all(len(piece) <= 16384 for piece in lines_of(got))
        assert got[-1][1][1] is True  # the last piece ends the line


def test_a_secret_in_a_line_longer_than_the_hold_is_redacted_wherever_it_falls() -> None:
    line = b"z" * (HOLD + 100) + b"password=hunter2 " + b"z" * 70000 + b" password=again " + b"z" * 10
    got = process(
        {"redact": r"password=\S+"}, [(line[i : i + 65536], T0) for i in range(0, len(line), 65536)] + [(b"\n", T0)]
    )
    joined = b"".join(lines_of(got))
    assert b"hunter2" not in joined and b"again" not in joined and joined.count(b"[REDACTED]") == 2


def test_drop_and_keep_decide_which_lines_go_on_and_count_what_they_dropped() -> None:
    stats = ProcessingStats()
    lines = b"GET /health 200\nGET /api 500 ERROR\nDEBUG noise\nPOST /api 201\nINFO ERROR later\n"
    got = process({"keep": "ERROR|POST", "drop": "^INFO"}, [(lines, T0)], stats)
    assert lines_of(got) == [b"GET /api 500 ERROR", b"POST /api 201"]
    assert stats.lines_filtered == 3


def test_filters_judge_a_long_line_whole() -> None:
    long = b"a" * 20000 + b" ERROR"
    got = process({"keep": "ERROR"}, [(b"short\n" + long + b"\nother\n", T0)])
    assert b"".join(lines_of(got)) == long


# -- the same records for every reader, and resuming --


@pytest.mark.parametrize("preset", ["java", "python", "go"])
def test_after_a_timeout_a_trace_goes_on_as_a_reader_resuming_there_would_make_it(tmp_path: Path, preset: str) -> None:
    """However an event ends but by a start (a timeout here), the joiner starts afresh: the lines after it
    make the same events for a reader that has read on and for one that resumes at them."""
    lines = TRACE_OF[preset]().encode().split(b"\n")
    half = len(lines) // 2
    reads = [(b"\n".join(lines[:half]) + b"\n", T0), (b"\n".join(lines[half:]) + b"\nend\n", T0 + 5 * SECOND)]

    async def main() -> None:
        spool = spool_with(tmp_path, reads)
        whole = read_spool(spool, config(preset), Checkpoint(), 1 << 20)
        for index, item in enumerate(whole):
            after = records_of(read_spool(spool, config(preset), item.checkpoint, 1 << 20))
            assert records_of(whole[: index + 1]) + after == records_of(whole), index
        assert records_of(whole)[0][0] == b"\n".join(lines[:half]).rstrip(b"\n")  # cut by the timeout
        spool.close()

    asyncio.run(main())


def spool_with(directory: Path, reads: list[tuple[bytes, int]]) -> Spool:
    spool = Spool.fresh(directory, blocking=True)
    spool.start_run(["stdout"])
    for data, stamp in reads:
        spool.stream("stdout").append(data, stamp)
    spool.stream("stdout").end_run()
    return spool


def read_spool(spool: Spool, config: ProcessingConfig, point: Checkpoint, limit: int) -> list[Processed]:
    """What a reader makes reading the spool `limit` bytes at a time from `point` (as a disk buffer does)."""
    cursor = StreamCursor(spool.stream("stdout"), point, 16384)
    processor = StreamProcessor(config, "stdout", 16384, ProcessingStats(), point)
    done = point.delivered
    out: list[Processed] = []
    while (read := cursor.read(limit)) is not None:
        chunk, deliveries = read
        for batch, first_line, checkpoint in deliveries:
            if checkpoint.delivered <= done:
                continue
            if first_line < done:
                batch, first_line = batch.take(done - first_line)[1], done
            out += processor.feed(batch, first_line, checkpoint)
        if not chunk:
            out += processor.end_run()
    cursor.close()
    return out


TRACE_OF = {"java": java_trace, "python": python_traceback, "go": go_trace}


def mixed_stream(seed: int, preset: str = "java") -> list[tuple[bytes, int]]:
    """Traces, JSON lines, long lines with secrets, blank lines, debug noise, in reads of random sizes with
    times that sometimes jump past the timeout."""
    rnd = random.Random(seed)
    parts = []
    for n in range(60):
        kind = rnd.choice(["trace", "json", "long", "blank", "debug", "plain"])
        if kind == "trace":
            parts.append(TRACE_OF[preset]().encode() + b"\n")
        elif kind == "json":
            parts.append(b'{"n":%d,"password":"password=s%d"}\n' % (n, n))
        elif kind == "long":
            parts.append(b"q" * rnd.randint(16000, 40000) + b" password=secret%d\n" % n)
        elif kind == "blank":
            parts.append(b"\n")
        elif kind == "debug":
            parts.append(b"DEBUG %d\n" % n)
        else:
            parts.append(b"plain line %d\n" % n)
    data = b"".join(parts)
    reads, position, stamp = [], 0, T0
    while position < len(data):
        size = rnd.choice([7, 100, 4096, 50000])
        reads.append((data[position : position + size], stamp))
        position += size
        stamp += rnd.choice([1_000_000, 2_000_000, 3 * SECOND])
    return reads


def config(preset: str) -> ProcessingConfig:
    return ProcessingConfig(
        multiline=preset, timeout_ns=SECOND, parse_json=True, redact=(rb"password=\S+",), drop=rb"^DEBUG"
    )


@pytest.mark.parametrize("preset", ["java", "python", "go"])
def test_every_reader_makes_the_same_records_however_it_reads_the_spool(tmp_path: Path, preset: str) -> None:
    settings = config(preset)

    async def main() -> None:
        spool = spool_with(tmp_path, mixed_stream(1, preset))
        first = records_of(read_spool(spool, settings, Checkpoint(), 1 << 20))
        assert records_of(read_spool(spool, settings, Checkpoint(), 5000)) == first
        assert records_of(read_spool(spool, settings, Checkpoint(), 256 << 10)) == first
        assert not any(b"secret" in line or b"password=s" in line for line, _, _, _ in first)
        assert not any(line.startswith(b"DEBUG") for line, _, _, _ in first)
        spool.close()

    asyncio.run(main())


@pytest.mark.parametrize("preset", ["java", "python", "go"])
def test_a_reader_resumed_from_any_checkpoint_it_saved_loses_and_repeats_nothing(tmp_path: Path, preset: str) -> None:
    settings = config(preset)

    async def main() -> None:
        spool = spool_with(tmp_path, mixed_stream(3, preset))
        whole = read_spool(spool, settings, Checkpoint(), 1 << 20)
        expected = records_of(whole)
        delivered: list[Record] = []
        for index, item in enumerate(whole):
            if index % 3 == 0:  # a kill here: everything up to this batch delivered and saved
                after = records_of(read_spool(spool, settings, item.checkpoint, 64 << 10))
                assert delivered + records_of([item]) + after == expected, index
            if len(item.batch) > 1 and index % 3 == 1:  # the backend confirmed part of a batch
                part = len(item.batch) // 2
                point = Checkpoint(item.restart.offset, item.restart.line, item.delivered_after(part))
                after = records_of(read_spool(spool, settings, point, 64 << 10))
                assert delivered + records_of([item])[:part] + after == expected, index
            delivered += records_of([item])
        spool.close()

    asyncio.run(main())


def test_marks_in_the_spool_end_events_for_every_reader_and_a_restart_gap_ends_none(tmp_path: Path) -> None:
    """A flush recorded by one reader (FLUSH) ends the event there for all; lines a restarted daemon read late
    (RESUME) are not cut from their event by that gap."""

    async def main() -> None:
        spool = Spool.fresh(tmp_path, blocking=True)
        spool.start_run(["stdout"])
        stream = spool.stream("stdout")
        stream.append(b"Exception: one\n\tat a\n", T0)
        stream.add_mark(MARK_FLUSH)  # a reader found nothing more by the deadline, and flushed
        stream.append(b"\tat b\nException: two\n\tat c\n", T0 + SECOND // 10)
        stream.add_mark(MARK_RESUME)  # the daemon was killed; its successor reads what waited in the pipe
        stream.append(b"\tat d\n", T0 + 9 * SECOND)
        stream.end_run()
        for limit in (1 << 20, 3):
            got = lines_of(records_of(read_spool(spool, config("java"), Checkpoint(), limit)))
            assert got == [b"Exception: one\n\tat a", b"\tat b", b"Exception: two\n\tat c\n\tat d"], limit
        spool.close()

    asyncio.run(main())


# -- options --


@pytest.mark.parametrize(
    "driver, opts, message",
    [
        ("fluentd", {"multiline": "ruby"}, "invalid multiline 'ruby': use java, python or go"),
        ("fluentd", {"multiline": "java", "multiline-start": "^x"}, "cannot be used together"),
        ("fluentd", {"multiline-start": "x*"}, "it matches an empty line"),
        ("fluentd", {"multiline-start": "("}, "invalid multiline-start regex '('"),
        ("fluentd", {"multiline-timeout": "1s"}, "multiline-timeout needs multiline"),
        ("fluentd", {"multiline": "go", "multiline-timeout": "soon"}, "invalid multiline-timeout 'soon'"),
        ("fluentd", {"multiline": "go", "multiline-max-bytes": "10"}, "give a size from 1k to 16m"),
        ("json-file", {"multiline": "java"}, "add multiline-files=events"),
        ("fluentd", {"multiline": "java", "multiline-files": "some"}, "invalid multiline-files 'some'"),
        ("json-file", {"parse": "json"}, "the json-file log driver sends or stores each line as it is"),
        ("fluentd", {"parse": "yaml"}, "the only parser is json"),
        ("fluentd", {"parse-key": "x"}, "parse-key needs parse=json"),
        ("fluentd", {"redact": "[a-"}, "invalid redact regex '[a-'"),
        ("fluentd", {"redact": "a?"}, "it matches empty text"),
        ("fluentd", {"redact-replacement": "x"}, "redact-replacement needs redact"),
        ("fluentd", {"drop": ""}, "drop needs a regex"),
        (
            "awslogs",
            {"multiline": "java", "awslogs-multiline-pattern": "^x", "awslogs-group": "g", "awslogs-region": "r"},
            "multiline and awslogs-multiline-pattern cannot be used together",
        ),
    ],
)
def test_bad_options_are_refused_at_create_naming_the_option_and_what_to_do(
    driver: str, opts: dict[str, str], message: str
) -> None:
    from logship.drivers import options

    with pytest.raises(InvalidParameter) as caught:
        options.validate(driver, opts)
    assert message in str(caught.value)


def test_good_options_pass_and_nothing_is_built_when_all_is_off() -> None:
    from logship.drivers import options

    options.validate("json-file", {"multiline": "java", "multiline-files": "events", "redact": r"\d{3,4},x\,y"})
    options.validate("fluentd", {"multiline-start": "^[0-9]", "parse": "json", "parse-key": "app", "keep": "x"})
    options.validate("journald", {"parse": "json", "parse-key": "app"})
    options.validate("gelf", {"parse": "json", "gelf-address": "udp://127.0.0.1:12201"})
    options.validate("awslogs", {"parse": "json", "awslogs-group": "g", "awslogs-region": "r"})
    # A driver that does not say it has fields (syslog, a third-party one) refuses parse=json.
    with pytest.raises(InvalidParameter, match="the syslog log driver sends or stores each line as it is"):
        options.validate("syslog", {"parse": "json", "syslog-address": "udp://127.0.0.1:514"})
    assert not processing.has_fields(SimpleNamespace(name="third-party"))
    assert processing.split_patterns(r"\d{3,4},x\,y,(a|b)") == [r"\d{3,4}", r"x\,y", "(a|b)"]
    assert config_of({"max-size": "1m", "mode": "blocking"}) is None
    assert ProcessingConfig(parse_json=True).for_records(line_records=True) is None
