"""The copier turns a stream's bytes into Docker's messages, whatever the read boundaries are."""

from __future__ import annotations

import asyncio
import os
import random

from logship.pipeline.copier import copy_stream
from logship.pipeline.message import MAX_LINE_SIZE, Batch, Message
from logship.pipeline.splitter import BATCH_TEXT_BYTES, LineSplitter

T1, T2, T3 = 1_000, 2_000, 3_000


def messages(batches: list[Batch]) -> list[Message]:
    return [m for b in batches for m in b.messages()]


def split(*chunks: bytes, eof: bool = True) -> list[Message]:
    splitter = LineSplitter("stdout")
    out: list[Batch] = []
    for i, chunk in enumerate(chunks):
        out += splitter.feed(chunk, T1 * (i + 1))
    if eof:
        out += splitter.finish(T3 * 10)
    return messages(out)


def test_each_line_is_one_message_without_its_newline() -> None:
    got = split(b"hello\nworld\n")
    assert [m.line for m in got] == [b"hello", b"world"]
    assert all(m.partial is None and m.stream == "stdout" for m in got)


def test_empty_lines_are_messages_too() -> None:
    assert [m.line for m in split(b"\n\n\nx\n\n")] == [b"", b"", b"", b"x", b""]


def test_a_line_split_across_reads_is_joined_and_stamped_when_it_completes() -> None:
    got = split(b"part1-", b"part2\ntail")
    assert [m.line for m in got[:1]] == [b"part1-part2"]
    assert got[0].timestamp_ns == 2 * T1


def test_bytes_without_newline_at_eof_are_a_non_last_partial() -> None:
    (last,) = split(b"no-newline-at-exit")
    assert last.line == b"no-newline-at-exit"
    assert last.partial is not None and last.partial.last is False and last.partial.ordinal == 1
    assert not last.ends_line


def test_a_half_line_waits_for_its_newline_until_eof() -> None:
    splitter = LineSplitter("stdout")
    assert splitter.feed(b"prompt> ", T1) == []
    assert [m.line for m in messages(splitter.feed(b"answer\n", T2))] == [b"prompt> answer"]


def test_lines_shorter_than_the_buffer_are_never_cut() -> None:
    line = b"b" * (MAX_LINE_SIZE - 1)
    (got,) = split(line + b"\n")
    assert got.line == line and got.partial is None


def test_a_line_of_exactly_16k_becomes_a_full_piece_and_an_empty_last_piece() -> None:
    first, last = split(b"c" * MAX_LINE_SIZE + b"\n")
    assert first.line == b"c" * MAX_LINE_SIZE and last.line == b""
    assert first.partial is not None and last.partial is not None
    assert (first.partial.ordinal, first.partial.last) == (1, False)
    assert (last.partial.ordinal, last.partial.last) == (2, True)
    assert first.partial.id == last.partial.id and len(first.partial.id) == 64


def test_long_lines_are_cut_in_16k_pieces_sharing_id_and_first_timestamp() -> None:
    line = bytes(random.Random(1).choice(b"abcdef") for _ in range(40_000))
    # delivered in small reads, like a slow writer
    chunks = [line[i : i + 3000] for i in range(0, len(line), 3000)] + [b"\nafter\n"]
    got = split(*chunks)
    pieces, after = got[:3], got[3]
    assert [len(p.line) for p in pieces] == [16384, 16384, 7232]
    assert b"".join(p.line for p in pieces) == line
    assert [(p.partial.ordinal, p.partial.last) for p in pieces if p.partial] == [(1, False), (2, False), (3, True)]
    assert len({p.partial.id for p in pieces if p.partial}) == 1
    assert len({p.timestamp_ns for p in pieces}) == 1
    assert pieces[0].timestamp_ns == 6 * T1  # the read that filled the first 16 KiB piece
    assert after.timestamp_ns == 15 * T1
    assert after.line == b"after" and after.partial is None


def test_long_line_cut_short_by_eof_has_no_last_piece() -> None:
    got = split(b"e" * 40_000)
    assert [len(m.line) for m in got] == [16384, 16384, 7232]
    assert [m.partial.last for m in got if m.partial] == [False, False, False]
    assert [m.partial.ordinal for m in got if m.partial] == [1, 2, 3]


def test_read_boundaries_never_change_the_result() -> None:
    rng = random.Random(7)
    data = (
        b"".join(
            bytes(rng.choice(b"xyz\r\x00\xff") for _ in range(rng.choice([0, 1, 5, 100, 16383, 16384, 16385, 40000])))
            + b"\n"
            for _ in range(40)
        )
        + b"tail"
    )
    whole = [(m.line, m.partial.ordinal if m.partial else 0) for m in split(data)]
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(data)), 30))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert [(m.line, m.partial.ordinal if m.partial else 0) for m in split(*chunks)] == whole


def test_batch_byte_counts_match_the_lines() -> None:
    splitter = LineSplitter("stderr")
    for batch in splitter.feed(b"a\nbb\n" + b"c" * 20000 + b"\nd", T1) + splitter.finish(T2):
        assert batch.nbytes == sum(len(line) for line in batch.lines)
        assert batch.stream == "stderr"


def test_a_large_read_is_handed_on_in_batches_of_whole_lines_sharing_its_time() -> None:
    rng = random.Random(3)
    lines = [b"line %d " % i + b"y" * rng.choice([0, 10, 100, 3000, 16383 - 12]) for i in range(600)]
    data = b"".join(line + b"\n" for line in lines)
    assert len(data) > 4 * BATCH_TEXT_BYTES
    splitter = LineSplitter("stdout")
    first = splitter.feed(data[:1000], T1)  # leaves a half line pending before the large read
    rest = splitter.feed(data[1000:], T2)
    assert [line for batch in first + rest for line in batch.lines] == lines
    assert len(rest) > 1 and {batch.timestamp_ns for batch in rest} == {T2}
    for batch in rest:
        assert batch.nbytes <= BATCH_TEXT_BYTES and not batch.partials
        assert len(batch) == len(batch.lines) and batch.nbytes == sum(map(len, batch.lines))


def test_lines_longer_than_a_batch_stay_whole_when_a_driver_raises_the_line_limit() -> None:
    rng = random.Random(4)
    lines = [
        b"%d:" % i + b"z" * rng.choice([0, 50, 2 * BATCH_TEXT_BYTES, 3 * BATCH_TEXT_BYTES // 2]) for i in range(40)
    ]
    data = b"".join(line + b"\n" for line in lines)
    cuts = sorted(rng.sample(range(1, len(data)), 15))
    splitter = LineSplitter("stdout", max_line=4 * BATCH_TEXT_BYTES)
    got = [splitter.feed(data[a:b], T1) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert [line for batches in got for batch in batches for line in batch.lines] == lines


def test_a_text_batch_counts_its_lines_without_listing_them() -> None:
    batch = Batch.of_text("stdout", T1, b"a\n\nccc", 3)
    assert len(batch) == 3 and batch.nbytes == 4 and batch.text == b"a\n\nccc"
    assert batch.lines == [b"a", b"", b"ccc"]
    head, rest = batch.take(1)
    assert (head.lines, rest.lines) == ([b"a"], [b"", b"ccc"])


def test_copy_stream_reads_a_pipe_to_eof_with_backpressure() -> None:
    async def scenario() -> list[bytes]:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        received: list[bytes] = []

        async def slow_sink(batch: Batch) -> None:
            await asyncio.sleep(0.001)
            received.extend(batch.lines)

        async def writer() -> None:
            for i in range(2000):
                await asyncio.to_thread(os.write, write_fd, b"line %d\n" % i)
            os.write(write_fd, b"last-no-newline")
            os.close(write_fd)

        await asyncio.gather(copy_stream(read_fd, LineSplitter("stdout"), slow_sink), writer())
        os.close(read_fd)
        return received

    received = asyncio.run(scenario())
    assert received == [b"line %d" % i for i in range(2000)] + [b"last-no-newline"]
