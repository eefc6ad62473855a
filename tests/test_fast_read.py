"""The fast `logs` path: runs of bytes instead of a Message per line (`read_log_text`, `decode_text`),
and since/until found by binary search. Whatever the path, the output must be exactly what the
record-by-record path (`read_logs`) gives, which the other reading tests pin to Docker's output."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logship.api.framing import LogEncoder
from logship.cli.logs import copy_multiplexed
from logship.drivers import jsonfile, local
from logship.drivers.base import LogReader, Run, TextLogReader, joined_runs, runs_of
from logship.drivers.jsonfile import _logtext
from logship.drivers.jsonfile.decode import JSON_LINES
from logship.drivers.jsonfile.driver import count_records, next_record
from logship.drivers.jsonfile.encode import BatchEncoder
from logship.drivers.local.codec import LOCAL_RECORDS
from logship.drivers.local.record import RecordEncoder
from logship.drivers.util.logfile import LogFile, Rotation
from logship.drivers.util.logreader import first_record, read_log, read_log_text
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, STDOUT, Batch, Message, PartialMeta
from logship.pipeline.readconfig import ReadConfig

SAMPLES = Path(__file__).parent / "fixtures" / "docker-samples"
SECOND = 1_000_000_000
T0 = 1_764_398_000 * SECOND
LOG = logging.getLogger("test")


def line_text(message: Message) -> bytes:
    return message.line + (b"\n" if message.ends_line else b"")


# ---- json-file: decode_text gives runs_of(decode) byte for byte --------------------------------------

AWKWARD_LINES = [
    b"plain",
    b"",
    b"<html> & 'quotes' \"double\"",
    b"back\\slash and trailing backslash\\",
    b"tab\there, cr\r, nul\x00, escape\x1b[0m",
    b"caf\xc3\xa9 \xe2\x80\xa8 line separator, \xf0\x9f\x98\x80 emoji",
    b"invalid utf-8 \xff\xfe and a cut sequence \xe2\x82",
    b'looks like a record: {"log":"x\\n","stream":"stderr","time":"2026-01-01T00:00:00Z"}',
    b'","stream":"stdout","time":"x"}',
]


def json_blob(batches: list[Batch], attrs: dict[str, str] | None = None) -> bytes:
    encoder = BatchEncoder(attrs or {})
    return b"".join(encoder.encode(batch) for batch in batches)


def awkward_batches() -> list[Batch]:
    batches = []
    for index, line in enumerate(AWKWARD_LINES):
        stream = STDERR if index % 3 == 2 else STDOUT
        batches.append(Batch(stream, T0 + index, [line, b"after " + line]))
    # Pieces of a long line: the first two without a newline, and an empty piece (no `log` key at all).
    pieces = {0: PartialMeta("p", 1, False), 1: PartialMeta("p", 2, False), 2: PartialMeta("p", 3, True)}
    batches.append(Batch(STDOUT, T0 + 100, [b"first piece\\", b"", b"last piece"], pieces))
    return batches


@pytest.mark.parametrize("attrs", [None, {"tag": 'a "tag"', "env": "x}y"}])
def test_json_text_of_awkward_lines_is_what_the_messages_print(attrs: dict[str, str] | None) -> None:
    data = json_blob(awkward_batches(), attrs)
    messages, bad = JSON_LINES.decode(data)
    assert bad == 0
    assert JSON_LINES.decode_text(data) == (runs_of(messages), 0)


def test_json_text_of_a_large_chunk_with_a_few_odd_records_is_what_the_messages_print() -> None:
    # Large enough that the fast path works on parts: odd records are decoded on their own.
    plain = [Batch(STDOUT, T0 + n * SECOND, [b"x" * 99] * 200) for n in range(20)]
    odd = [
        b'{"log":"lone surrogate \\ud800\\n","stream":"stdout","time":"2025-11-29T06:33:20Z"}\n',
        b"not json at all\n",
        b'{"stream":"stdout","log":"keys in another order\\n","time":"2025-11-29T06:33:20Z"}\n',
        b'{"log":"an escaped quote before the end\\\\","stream":"stdout","time":"2025-11-29T06:33:20Z"}\n',
        b'{"log":"no time\\n","stream":"stdout"}\n',
    ]
    blob = json_blob(plain[:10]) + b"".join(odd) + json_blob(plain[10:])
    messages, bad = JSON_LINES.decode(blob)
    assert bad == 2  # not JSON, and no time
    assert JSON_LINES.decode_text(blob) == (runs_of(messages), bad)


def test_json_text_of_interleaved_streams_keeps_their_order() -> None:
    batches = [Batch(STDOUT if n % 2 else STDERR, T0 + n, [b"line %d" % n]) for n in range(500)]
    data = json_blob(batches)
    runs, bad = JSON_LINES.decode_text(data)
    assert bad == 0
    assert runs == [(b.stream, b.lines[0] + b"\n") for b in batches]


@pytest.mark.parametrize("case", sorted(p.name[: -len("-json.log")] for p in SAMPLES.glob("*-json.log")))
def test_json_text_of_dockers_own_logs_is_what_docker_logs_printed(case: str) -> None:
    runs, _ = JSON_LINES.decode_text((SAMPLES / f"{case}-json.log").read_bytes())
    printed = {STDOUT: b"", STDERR: b""}
    for stream, text in runs:
        printed[stream] += text
    assert printed[STDOUT] == (SAMPLES / f"{case}.logs.stdout").read_bytes()
    assert printed[STDERR] == (SAMPLES / f"{case}.logs.stderr").read_bytes()


# ---- local: decode_text gives runs_of(decode) --------------------------------------------------------


def test_local_text_is_what_the_messages_print_with_pieces_escapes_and_damage() -> None:
    encoder = RecordEncoder({"tag": "x"})
    pieces = {1: PartialMeta("p", 1, False), 2: PartialMeta("p", 2, True)}
    blob = b"".join(
        [
            encoder.encode(Batch(STDOUT, T0, [b"one", b"two"])),
            encoder.encode(Batch(STDERR, T0 + 1, [b"err"])),
            encoder.encode(Batch(STDOUT, T0 + 2, [b"whole", b"piece ", b"end"], pieces)),
            b"\xffLSF damage that is no frame",
            encoder.encode(Batch(STDOUT, T0 + 3, [b"holds the magic \xffLSF", b""])),
        ]
    )
    messages, bad = LOCAL_RECORDS.decode(blob)
    assert bad == 1
    assert LOCAL_RECORDS.decode_text(blob) == (runs_of(messages), 1)


# ---- binary search ---------------------------------------------------------------------------------


def test_binary_search_finds_the_first_of_equal_timestamps_for_since_and_the_first_after_for_until() -> None:
    # Times: 0, 1, 1, 1, 2, 3 (seconds after T0), one record each.
    times = [0, 1, 1, 1, 2, 3]
    data = json_blob([Batch(STDOUT, T0 + t * SECOND, [b"line %d" % i]) for i, t in enumerate(times)])
    starts = [0, *[i + 1 for i, byte in enumerate(data) if byte == ord("\n")][:-1]]

    def read_at(offset: int, size: int) -> bytes:
        return data[offset : offset + size]

    for t in range(-1, 5):
        boundary = T0 + t * SECOND
        since = first_record(JSON_LINES, read_at, 0, len(data), boundary.__le__)  # ns >= boundary
        until = first_record(JSON_LINES, read_at, 0, len(data), boundary.__lt__)  # ns > boundary
        first_since = next((starts[i] for i, x in enumerate(times) if x >= t), len(data))
        first_after = next((starts[i] for i, x in enumerate(times) if x > t), len(data))
        assert (since, until) == (first_since, first_after), t


def test_binary_search_hands_over_when_the_records_it_looks_at_go_back_in_time() -> None:
    # Time goes back after the fourth record: the probes see it and the search proves nothing.
    times = [1, 2, 3, 9, 0, 0, 0, 0]
    data = json_blob([Batch(STDOUT, T0 + t * SECOND, [b"line %d" % i]) for i, t in enumerate(times)])

    def read_at(offset: int, size: int) -> bytes:
        return data[offset : offset + size]

    assert first_record(JSON_LINES, read_at, 0, len(data), lambda ns: ns >= T0 + 5 * SECOND) is None


def test_binary_search_takes_the_first_record_when_it_passes_whatever_follows() -> None:
    times = [5, 6, 7, 1, 2, 3, 4, 8]
    data = json_blob([Batch(STDOUT, T0 + t * SECOND, [b"line %d" % i]) for i, t in enumerate(times)])

    def read_at(offset: int, size: int) -> bytes:
        return data[offset : offset + size]

    assert first_record(JSON_LINES, read_at, 0, len(data), lambda ns: ns >= T0 + 4 * SECOND) == 0


# ---- read_log_text against read_log over real files ---------------------------------------------


def read_both(file: LogFile, codec: object, config: ReadConfig) -> tuple[list[Run], list[Run]]:
    async def scenario() -> tuple[list[Run], list[Run]]:
        slow = [run async for batch in read_log(file, codec, config, LOG) for run in runs_of(batch)]  # type: ignore[arg-type]
        fast = [run async for runs in read_log_text(file, codec, config, LOG) for run in runs]  # type: ignore[arg-type]
        return joined_runs(slow), joined_runs(fast)

    return asyncio.run(scenario())


def write_log(path: Path, rotation: Rotation, times: list[int], local_format: bool = False) -> LogFile:
    """One batch per entry of `times` (seconds after T0; repeats make equal timestamps), both streams."""
    if local_format:
        from logship.drivers.local import framing
        from logship.drivers.local.record import count_messages

        local_encoder = RecordEncoder({})
        file = LogFile(str(path), rotation, framing.next_frame, count_messages, LOG)
        encode = local_encoder.encode
    else:
        json_encoder = BatchEncoder({})
        file = LogFile(str(path), rotation, next_record, count_records, LOG)
        encode = json_encoder.encode
    for index, t in enumerate(times):
        batch = Batch(
            STDERR if index % 4 == 3 else STDOUT, T0 + t * SECOND, [b"batch %d line %d" % (index, n) for n in range(3)]
        )
        file.write(encode(batch), batch.timestamp_ns)
    return file


TIMES = [0, 1, 1, 2, 3, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10]
ROTATIONS = {
    "one file": Rotation(),
    "rotated": Rotation(max_size=300, max_files=20),
    "rotated and compressed": Rotation(max_size=300, max_files=20, compress=True),
}


@pytest.mark.parametrize("local_format", [False, True], ids=["json-file", "local"])
@pytest.mark.parametrize("rotation", ROTATIONS.values(), ids=ROTATIONS.keys())
def test_since_and_until_pick_exactly_what_the_record_by_record_reader_picks(
    tmp_path: Path, rotation: Rotation, local_format: bool
) -> None:
    file = write_log(tmp_path / "c.log", rotation, TIMES, local_format)
    codec = LOCAL_RECORDS if local_format else JSON_LINES
    try:
        if rotation.compress:
            assert list(tmp_path.glob("*.gz")), "the test needs compressed files"
        # Around times with one record, with several (equal timestamps), before and after them all.
        bounds = [0] + [T0 + t * SECOND + delta for t in (-1, 0, 1, 3, 6, 9, 10, 11) for delta in (-1, 0, 1)]
        for since in bounds:
            for until in [0, *(b for b in bounds[1::2] if b >= since)]:
                config = ReadConfig(since_ns=since, until_ns=until)
                slow, fast = read_both(file, codec, config)
                assert fast == slow, (since, until)
        slow, fast = read_both(file, codec, ReadConfig(tail=5, since_ns=T0 + 3 * SECOND))
        assert fast == slow
    finally:
        file.close()


@pytest.mark.parametrize("times", [[5, 6, 7, 1, 2, 3, 4, 8, 9], [1, 2, 3, 9, 0, 0, 0, 0]])
def test_files_whose_time_goes_back_where_the_search_sees_it_read_by_dockers_rules(
    tmp_path: Path, times: list[int]
) -> None:
    # Disorder the search does not meet can make it start or stop elsewhere (see `first_record`).
    file = write_log(tmp_path / "c.log", Rotation(), times)
    try:
        for since in (0, 4, 5, 10):
            for until in (0, 4, 7):
                config = ReadConfig(since_ns=T0 + since * SECOND, until_ns=T0 + until * SECOND if until else 0)
                slow, fast = read_both(file, JSON_LINES, config)
                assert fast == slow, (since, until)
    finally:
        file.close()


def test_docker_rotated_and_gzipped_sample_reads_the_same_both_ways(tmp_path: Path) -> None:
    rotation_dir = SAMPLES / "rotation"
    for path in rotation_dir.iterdir():
        shutil.copy(path, tmp_path / path.name)
    current = next(p for p in tmp_path.iterdir() if p.name.endswith("-json.log"))
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".gz", ".gz", ".log"]
    file = LogFile(str(current), Rotation(max_size=1024, max_files=5, compress=True), next_record, count_records, LOG)
    try:
        slow, fast = read_both(file, JSON_LINES, ReadConfig())
        assert fast == slow and fast
    finally:
        file.close()


# ---- the drivers offer it, and the API frames runs -------------------------------------------------


@pytest.mark.parametrize("factory", [jsonfile, local], ids=["json-file", "local"])
def test_both_file_drivers_read_as_runs_what_they_read_as_messages(tmp_path: Path, factory: object) -> None:
    async def scenario() -> None:
        info = ContainerInfo("f" * 64, "/c", container_dir=str(tmp_path), log_path=str(tmp_path / "c-json.log"))
        driver: Any = await factory.new(info)  # type: ignore[attr-defined]
        assert all(isinstance(driver, protocol) for protocol in (TextLogReader, LogReader))
        for batch in awkward_batches():
            await driver.log(batch)
        slow = [run async for batch in driver.read_logs(ReadConfig()) for run in runs_of(batch)]
        fast = [run async for runs in driver.read_text(ReadConfig()) for run in runs]
        await driver.close()
        assert joined_runs(fast) == joined_runs(slow)
        html = AWKWARD_LINES[2]
        assert joined_runs(fast)[:2] == [
            (STDOUT, b"plain\nafter plain\n\nafter \n"),
            (STDERR, b"%s\nafter %s\n" % (html, html)),
        ]

    asyncio.run(scenario())


def test_runs_go_out_as_a_frame_per_message_as_dockerd_frames_them() -> None:
    runs = [(STDOUT, b"a\nbb\n\n"), (STDERR, b"c\n"), (STDOUT, b"d")]  # "d": a piece of a long line
    both = LogEncoder(frozenset({STDOUT, STDERR}), False, False, tty=False)
    assert both.encode_runs(runs) == (
        b"\x01\0\0\0\0\0\0\x02a\n"
        + b"\x01\0\0\0\0\0\0\x03bb\n"
        + b"\x01\0\0\0\0\0\0\x01\n"
        + b"\x02\0\0\0\0\0\0\x02c\n"
        + b"\x01\0\0\0\0\0\0\x01d"
    )
    only_err = LogEncoder(frozenset({STDERR}), False, False, tty=False)
    assert only_err.encode_runs(runs) == b"\x02\0\0\0\0\0\0\x02c\n"


def test_with_timestamps_a_run_still_goes_out_a_frame_per_message() -> None:
    runs = [(STDOUT, b"T a\nT b\n"), (STDERR, b"T c")]
    encoder = LogEncoder(frozenset({STDOUT, STDERR}), True, False, tty=False)
    assert encoder.encode_runs(runs) == (
        b"\x01\0\0\0\0\0\0\x04T a\n" + b"\x01\0\0\0\0\0\0\x04T b\n" + b"\x02\0\0\0\0\0\0\x03T c"
    )


def test_a_client_that_asks_for_it_gets_a_frame_per_run_of_one_stream() -> None:
    runs = [(STDOUT, b"a\n"), (STDOUT, b"b\n"), (STDERR, b"c\n"), (STDOUT, b"d")]
    both = LogEncoder(frozenset({STDOUT, STDERR}), False, False, tty=False, frame_per_run=True)
    assert (
        both.encode_runs(runs) == b"\x01\0\0\0\0\0\0\x04a\nb\n" + b"\x02\0\0\0\0\0\0\x02c\n" + b"\x01\0\0\0\0\0\0\x01d"
    )
    only_err = LogEncoder(frozenset({STDERR}), False, False, tty=False, frame_per_run=True)
    assert only_err.encode_runs(runs) == b"\x02\0\0\0\0\0\0\x02c\n"
    tty = LogEncoder(frozenset({STDOUT, STDERR}), False, False, tty=True)
    assert tty.encode_runs(runs) == b"a\nb\nc\nd"
    with pytest.raises(ValueError, match="attributes"):
        LogEncoder(frozenset({STDOUT}), False, True, tty=False).encode_runs(runs)


class Pieces(io.BytesIO):
    """A response that hands out its bytes in reads of the given sizes, cutting frames anywhere."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data = data
        self._sizes = sizes

    def read1(self, size: int | None = -1, /) -> bytes:
        if not self._data:
            return b""
        take = self._sizes[0] if self._sizes else len(self._data)
        self._sizes = self._sizes[1:]
        piece, self._data = self._data[:take], self._data[take:]
        return piece


def test_the_cli_demultiplexes_frames_whatever_the_reads_cut() -> None:
    frames = LogEncoder(frozenset({STDOUT, STDERR}), False, False, tty=False).encode_runs(
        [(STDOUT, b"a" * 1000 + b"\n"), (STDERR, b"e\n"), (STDOUT, b""), (STDOUT, b"b\nc\n"), (STDERR, b"f")]
    )
    for sizes in ([len(frames)], [1] * len(frames), [3, 5, 7, 11, 500, 9, 2], [8, 1001, 8, 2]):
        out, err = io.BytesIO(), io.BytesIO()
        copy_multiplexed(Pieces(frames, sizes), out, err)
        assert (out.getvalue(), err.getvalue()) == (b"a" * 1000 + b"\nb\nc\n", b"e\nf"), sizes


def test_the_cli_reports_a_daemon_error_frame() -> None:
    frames = b"\x01\0\0\0\0\0\0\x03ok\n" + b"\x03\0\0\0\0\0\0\x1aError grabbing logs: gone\n"
    out, err = io.BytesIO(), io.BytesIO()
    with pytest.raises(click.ClickException, match="error from daemon in stream: Error grabbing logs: gone"):
        copy_multiplexed(Pieces(frames, [5, 9, 4]), out, err)
    assert out.getvalue() == b"ok\n"


@pytest.mark.parametrize("tail", [-1, 0, 2])
def test_following_as_runs_gives_the_tail_then_what_is_written_until_the_driver_closes(
    tmp_path: Path, tail: int
) -> None:
    async def scenario() -> list[Run]:
        driver: Any = await jsonfile.new(ContainerInfo("f" * 64, "/c", log_path=str(tmp_path / "c-json.log")))
        for n in range(3):
            await driver.log(Batch(STDOUT, T0 + n, [b"old %d" % n]))
        reading = asyncio.ensure_future(collect(driver.read_text(ReadConfig(tail=tail, follow=True))))
        await asyncio.sleep(0.1)  # the reader is following now
        await driver.log(Batch(STDERR, T0 + 10, [b"new"]))
        await driver.close()
        return await asyncio.wait_for(reading, 10)

    async def collect(runs: Any) -> list[Run]:
        return [run async for batch in runs for run in batch]

    old = {-1: b"old 0\nold 1\nold 2\n", 0: b"", 2: b"old 1\nold 2\n"}[tail]
    assert joined_runs(asyncio.run(scenario())) == joined_runs([(STDOUT, old), (STDERR, b"new\n")])


# ---- generated input: any batches, any odd records --------------------------------------------------

PIECES = [b"x", b" ", b"<&>", b'"', b"\\", b"\\n", b"\t", b"\r", b"\x00", b"\xff", b"\xc3\xa9", b"\xe2\x80\xa8", b"}"]
generated_lines = st.lists(st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join), min_size=1, max_size=6)
generated_batches = st.lists(
    st.tuples(st.sampled_from([STDOUT, STDERR]), generated_lines, st.booleans()), min_size=1, max_size=12
)
ODD_RECORDS = [
    b"not json\n",
    b'{"log":"lone \\udc00 surrogate\\n","stream":"stdout","time":"2025-11-29T06:33:20Z"}\n',
    b'{"time":"2025-11-29T06:33:20Z","stream":"stderr","log":"reordered\\n"}\n',
    b'{"log":"broken quote\\","stream":"stdout","time":"2025-11-29T06:33:20Z"}\n',
]


def as_batches(drawn: list[tuple[str, list[bytes], bool]]) -> list[Batch]:
    # `piece`: the batch's first line is a non-last piece of a long line (no newline after it).
    return [
        Batch(stream, T0 + index, lines, {0: PartialMeta("p", 1, False)} if piece else {})
        for index, (stream, lines, piece) in enumerate(drawn)
    ]


@settings(max_examples=300, deadline=None)
@given(generated_batches, st.lists(st.tuples(st.integers(0, 12), st.sampled_from(ODD_RECORDS)), max_size=3))
def test_json_text_of_generated_records_is_what_the_messages_print(
    drawn: list[tuple[str, list[bytes], bool]], odd: list[tuple[int, bytes]]
) -> None:
    records = [BatchEncoder({}).encode(batch) for batch in as_batches(drawn)]
    for position, record in odd:
        records.insert(min(position, len(records)), record)
    data = b"".join(records)
    messages, bad = JSON_LINES.decode(data)
    assert JSON_LINES.decode_text(data) == (runs_of(messages), bad)
    assert JSON_LINES.decode_text(data, timestamps=True) == (runs_of(messages, timestamps=True), bad)


@settings(max_examples=200, deadline=None)
@given(generated_batches)
def test_local_text_of_generated_records_is_what_the_messages_print(drawn: list[tuple[str, list[bytes], bool]]) -> None:
    data = b"".join(RecordEncoder({}).encode(batch) for batch in as_batches(drawn))
    messages, bad = LOCAL_RECORDS.decode(data)
    assert LOCAL_RECORDS.decode_text(data) == (runs_of(messages), bad)
    assert LOCAL_RECORDS.decode_text(data, timestamps=True) == (runs_of(messages, timestamps=True), bad)


# ---- json-file: the C loop (`_logtext.runs`) behind decode_text --------------------------------------


@settings(max_examples=300, deadline=None)
@given(generated_batches, st.sampled_from([{}, {"tag": 'a "tag"\\', "env": "x}y,\u00e9\U0001f600"}]))
def test_every_record_logship_writes_is_taken_by_the_c_loop(
    drawn: list[tuple[str, list[bytes], bool]], attrs: dict[str, str]
) -> None:
    # The fast path only stays fast if our own writer's output never falls back to the slow decoder.
    data = b"".join(BatchEncoder(attrs).encode(batch) for batch in as_batches(drawn))
    messages, bad = JSON_LINES.decode(data)
    assert bad == 0
    assert _logtext.runs(memoryview(data)) == runs_of(messages)
    assert _logtext.runs(data, True) == runs_of(messages, timestamps=True)


INTERESTING_BYTES = b'"\\u/nrtbf0aF9}{:,\n\r\t \x00\x1f\x7f\x80\xbf\xc0\xc2\xe0\xed\xf0\xf4\xf5\xff'


@settings(max_examples=1000, deadline=None)
@given(
    generated_batches,
    st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(list(INTERESTING_BYTES))), min_size=1, max_size=3),
    st.integers(0, 10**6),
    st.booleans(),
)
def test_the_c_loop_never_prints_what_the_record_decoder_would_not(
    drawn: list[tuple[str, list[bytes], bool]], flips: list[tuple[int, int]], cut: int, timestamps: bool
) -> None:
    # Damage a valid chunk: the C loop either refuses it (and the slow path takes over) or gives
    # exactly what decoding record by record gives, with no record skipped.
    data = bytearray(b"".join(BatchEncoder({"k": "v"}).encode(batch) for batch in as_batches(drawn)))
    for position, byte in flips:
        data[position % len(data)] = byte
    damaged = bytes(data[: len(data) - cut % 40])
    runs = _logtext.runs(damaged, timestamps)
    messages, bad = JSON_LINES.decode(damaged)
    expected = runs_of(messages, timestamps)
    if runs is not None:
        assert (runs, bad) == (expected, 0)
    assert JSON_LINES.decode_text(damaged, timestamps) == (expected, bad)


GOOD_TIME = b'"time":"2025-11-29T06:33:20.5Z"}\n'


@pytest.mark.parametrize(
    "record",
    [
        b'{"log":"lone high \\ud800 surrogate","stream":"stdout",' + GOOD_TIME,
        b'{"log":"lone low \\udc00 surrogate","stream":"stdout",' + GOOD_TIME,
        b'{"log":"short escape \\u12","stream":"stdout",' + GOOD_TIME,
        b'{"log":"unknown escape \\x41","stream":"stdout",' + GOOD_TIME,
        b'{"log":"raw tab \t","stream":"stdout",' + GOOD_TIME,
        b'{"log":"overlong \xc0\xaf","stream":"stdout",' + GOOD_TIME,
        b'{"log":"encoded surrogate \xed\xa0\x80","stream":"stdout",' + GOOD_TIME,
        b'{"log":"beyond U+10FFFF \xf4\x90\x80\x80","stream":"stdout",' + GOOD_TIME,
        b'{"log":"cut sequence \xe2\x82","stream":"stdout",' + GOOD_TIME,
        b'{"log":"x","stream":"stdin",' + GOOD_TIME,
        b'{"log":"x","stream":"stdout","time":"2025-13-29T06:33:20Z"}\n',
        b'{"log":"x","stream":"stdout","time":"2025-11-29T06:33:20.1234567890Z"}\n',
        b'{"log":"x","stream":"stdout","time":"2025-11-29 06:33:20Z"}\n',
        b'{"log":"x","stream":"stdout","time":"2025-11-29T06:33:20"}\n',
        b'{"log":"x","stream":"stdout","time":"2025-11-29T06:33:20Z","extra":1}\n',
        b'{"log":"x","stream":"stdout","attrs":{"k":1},' + GOOD_TIME,
        b'{"log": "x","stream":"stdout",' + GOOD_TIME,
        b'{"stream":"stdout","log":"x",' + GOOD_TIME,
        b'{"log":"x","stream":"stdout",' + GOOD_TIME[:-1] + b"{",
        b'{"log":"cut record","stream":"stdout","ti',
    ],
)
def test_the_c_loop_refuses_what_is_not_in_dockers_shape(record: bytes) -> None:
    assert _logtext.runs(record) is None


def test_the_c_loop_takes_what_json_allows_in_dockers_shape() -> None:
    records = [
        b'{"log":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\\u0000","stream":"stdout",' + GOOD_TIME,
        b'{"log":"raw \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 and DEL \x7f","stream":"stderr",' + GOOD_TIME,
        b'{"stream":"stdout","time":"2025-11-29T06:33:20+01:00"}\n',  # an empty piece: prints nothing
        b'{"log":"zone","stream":"stderr","attrs":{},"time":"2025-11-29t06:33:20-05:30"}',  # no final newline
    ]
    assert _logtext.runs(b"".join(records)) == [
        (STDOUT, '"\\/\b\f\n\r\t\u00e9\u20ac\U0001f600\x00'.encode()),
        (STDERR, "raw \u00e9\u20ac\U0001f600 and DEL \x7f".encode()),  # no newline: a piece ends its run
        (STDERR, b"zone"),
    ]
    assert _logtext.runs(b"") == []


@pytest.mark.parametrize(
    "time_value",
    [
        b"2025-11-29T06:33:20+01:00",  # another zone: printed in UTC
        b"2025-11-29t06:33:20z",  # lower case: printed upper case
        b"2025-11-29T06:33:60Z",  # a leap second: the next minute's :00
        b"2025-02-30T06:33:20Z",  # a day February lacks: March's
        b"1969-12-31T23:59:59Z",  # before the epoch
    ],
)
def test_with_timestamps_the_c_loop_leaves_times_to_normalize_to_the_record_decoder(time_value: bytes) -> None:
    record = b'{"log":"x\\n","stream":"stdout","time":"' + time_value + b'"}\n'
    assert _logtext.runs(record, True) is None
    assert _logtext.runs(record) == [(STDOUT, b"x\n")]  # without timestamps the time is only checked
    messages, bad = JSON_LINES.decode(record)
    assert JSON_LINES.decode_text(record, timestamps=True) == (runs_of(messages, timestamps=True), bad)


def test_with_timestamps_every_record_prints_its_time_an_empty_piece_included() -> None:
    # The empty piece has no newline, so it ends its run: the API cuts runs into messages at newlines.
    records = [
        b'{"log":"a\\n","stream":"stdout","time":"2025-11-29T06:33:20.5Z"}\n',
        b'{"stream":"stdout","time":"2025-11-29T06:33:21Z"}\n',  # an empty piece of a long line
        b'{"log":"b","stream":"stderr","time":"2025-11-29T06:33:22.123456789Z"}\n',
    ]
    expected = [
        (STDOUT, b"2025-11-29T06:33:20.500000000Z a\n2025-11-29T06:33:21.000000000Z "),
        (STDERR, b"2025-11-29T06:33:22.123456789Z b"),
    ]
    data = b"".join(records)
    assert _logtext.runs(data, True) == expected
    assert runs_of(JSON_LINES.decode(data)[0], timestamps=True) == expected
    assert JSON_LINES.decode_text(b"not json\n" * 2000 + data, timestamps=True) == (expected, 2000)  # slow path
