"""Whatever a container writes comes back from `logs`: generated streams, round-tripped.

Hypothesis generates stdout and stderr streams from the pieces that break log pipelines: random bytes, NUL,
CR and CRLF, invalid and cut UTF-8, lines from empty to 1 MiB (and just around the 16 KiB cut), streams
without a final newline. They are written interleaved, in generated chunk sizes, and read back per stream.

The rule checked, per stream and in order:

- local (and the dual-logging cache, which is the local format) gives back the exact bytes;
- json-file stores text, as Docker does: each stored piece (a line, or a 16 KiB piece of a longer one) is
  decoded on its own with one U+FFFD per byte that is not valid UTF-8 (`decode_go`); everything else,
  NUL and CR included, comes back exactly;
- journald keeps raw bytes: exact;
- a last line without a newline comes back without one (Docker's partial message), nothing is added.

Two layers: the pipeline in-process (LineSplitter -> driver -> its reader), many examples; and a few
examples through a real daemon and a real container (`run -i` feeds the bytes, a shell writes them to
stdout and stderr in the generated chunks, `logship logs` reads them back on its stdout and stderr).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logship.drivers import jsonfile, local
from logship.drivers.util.text import decode_go
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import MAX_LINE_SIZE, STDERR, STDOUT, Batch, Message
from logship.pipeline.readconfig import ReadConfig
from logship.pipeline.splitter import LineSplitter
from tests.harness import Daemon
from tests.journal import Journald

MIB = 1 << 20

# ---- generated streams ------------------------------------------------------------------------------------

TROUBLE = [b"\n", b"\r\n", b"\r", b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", "é€😀".encode(), b"\x1b[31m"]
# Line lengths where the 16 KiB cut happens, or nearly: a line of exactly 16 KiB gets an empty last piece.
AROUND_THE_CUT = [MAX_LINE_SIZE - 1, MAX_LINE_SIZE, MAX_LINE_SIZE + 1, 2 * MAX_LINE_SIZE, MIB]


def repeated(unit: bytes, size: int) -> bytes:
    """`size` bytes of `unit` over and over (cut wherever it falls, even inside a UTF-8 character)."""
    return (unit * (size // len(unit) + 1))[:size]


def long_runs(max_size: int) -> st.SearchStrategy[bytes]:
    sizes = st.one_of(st.sampled_from([s for s in AROUND_THE_CUT if s <= max_size]), st.integers(0, max_size))
    return st.builds(repeated, st.binary(min_size=1, max_size=8), sizes)


def output(max_run: int, max_pieces: int) -> st.SearchStrategy[bytes]:
    """One stream's bytes: a sequence of random bytes, trouble makers and long runs."""
    piece = st.one_of(st.binary(max_size=40), st.sampled_from(TROUBLE), long_runs(max_run))
    return st.lists(piece, max_size=max_pieces).map(b"".join)


@dataclass
class Written:
    """Two streams and the order their chunks were written in."""

    stdout: bytes
    stderr: bytes
    chunks: list[tuple[str, bytes]]  # (stream, chunk) in write order


@st.composite
def written(draw: st.DrawFn, max_run: int = MIB, max_pieces: int = 10, max_chunks: int = 12) -> Written:
    streams = {STDOUT: draw(output(max_run, max_pieces)), STDERR: draw(output(max_run, max_pieces))}
    pending: dict[str, list[bytes]] = {}
    for stream, data in streams.items():
        sizes = draw(st.lists(st.integers(1, 3 * MAX_LINE_SIZE), min_size=1, max_size=4))
        pending[stream] = list(chunked(data, itertools.cycle(sizes), max_chunks))
    order = draw(st.permutations([s for s, chunks in pending.items() for _ in chunks]))
    queues = {stream: iter(chunks) for stream, chunks in pending.items()}
    return Written(streams[STDOUT], streams[STDERR], [(stream, next(queues[stream])) for stream in order])


def chunked(data: bytes, sizes: Iterator[int], max_chunks: int) -> Iterator[bytes]:
    """`data` in pieces of the given sizes, the last piece taking whatever is left after `max_chunks`."""
    start = 0
    for count in range(max_chunks):
        if start >= len(data):
            return
        end = len(data) if count == max_chunks - 1 else start + next(sizes)
        yield data[start:end]
        start = end


def alternating(stdout: bytes, stderr: bytes, size: int) -> Written:
    """Both streams in chunks of `size`, stdout and stderr taking turns."""
    out = [(STDOUT, stdout[i : i + size]) for i in range(0, len(stdout), size)]
    err = [(STDERR, stderr[i : i + size]) for i in range(0, len(stderr), size)]
    turns = [chunk for pair in itertools.zip_longest(out, err) for chunk in pair if chunk is not None]
    return Written(stdout, stderr, turns)


# Always tried, whatever Hypothesis draws: a 1 MiB line with no final newline, and a stderr of every trouble
# maker around lines of exactly 16 KiB, in chunks that cut lines and characters anywhere.
WORST = alternating(
    repeated("é€😀\x00\r".encode(), MIB),
    b"".join(TROUBLE) + repeated(b"\xff", MAX_LINE_SIZE) + b"\n" + repeated(b"x\r", MAX_LINE_SIZE) + b"\n\n",
    65_537,
)


# ---- what each driver must give back ---------------------------------------------------------------------


def stored_pieces(data: bytes) -> Iterator[tuple[bytes, bool]]:
    """Docker's cut of a stream into stored pieces: (piece, ends_a_line). A line is cut every 16 KiB; the
    piece that ends the line may be empty (a line of exactly 16 KiB); bytes after the last newline are kept
    without one."""
    *lines, rest = data.split(b"\n")
    for line in lines:
        start = 0
        while len(line) - start >= MAX_LINE_SIZE:
            yield line[start : start + MAX_LINE_SIZE], False
            start += MAX_LINE_SIZE
        yield line[start:], True
    for start in range(0, len(rest), MAX_LINE_SIZE):
        yield rest[start : start + MAX_LINE_SIZE], False


def as_json_file_keeps_it(data: bytes) -> bytes:
    """What json-file gives back: each stored piece decoded as Go decodes it, one U+FFFD per bad byte."""
    return b"".join(decode_go(piece).encode() + (b"\n" if ends else b"") for piece, ends in stored_pieces(data))


def reassembled(messages: list[Message], stream: str) -> bytes:
    """A stream as `logs` prints it: each message's line, with a newline when it ended a line."""
    return b"".join(m.line + (b"\n" if m.ends_line else b"") for m in messages if m.stream == stream)


def test_the_expected_cut_is_dockers() -> None:
    line = b"x" * MAX_LINE_SIZE
    assert list(stored_pieces(line + b"\nab")) == [(line, False), (b"", True), (b"ab", False)]
    assert as_json_file_keeps_it(b"\xe2\x82\xac\xe2\x82\n") == "€\ufffd\ufffd\n".encode()


# ---- layer 1: LineSplitter -> driver -> reader, in-process -----------------------------------------------


def split(data: Written) -> list[Batch]:
    """The copier's work: each chunk through its stream's LineSplitter, then EOF on both streams."""
    splitters = {STDOUT: LineSplitter(STDOUT), STDERR: LineSplitter(STDERR)}
    clock = itertools.count(1_764_398_000_000_000_000, 1000)
    batches = [b for stream, chunk in data.chunks for b in splitters[stream].feed(chunk, next(clock))]
    for splitter in splitters.values():
        batches.extend(splitter.finish(next(clock)))
    return batches


def through(module: Any, info: ContainerInfo, batches: list[Batch]) -> list[Message]:
    async def scenario() -> list[Message]:
        writer = await module.new(info)
        for batch in batches:
            await writer.log(batch)
        await writer.close()
        reader = await module.new(info)  # as `logs` of a stopped container does: a fresh instance
        messages = [m async for chunk in reader.read_logs(ReadConfig()) for m in chunk]
        await reader.close()
        return messages

    return asyncio.run(scenario())


IN_PROCESS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@IN_PROCESS
@given(written())
@example(WORST)
def test_local_gives_back_every_byte_of_each_stream_in_order(data: Written) -> None:
    with tempfile.TemporaryDirectory() as directory:
        info = ContainerInfo("f" * 64, "/fuzz", container_dir=directory)
        messages = through(local, info, split(data))
    assert reassembled(messages, STDOUT) == data.stdout
    assert reassembled(messages, STDERR) == data.stderr


@settings(IN_PROCESS, max_examples=20)  # fewer: text encoding of many short invalid lines is the slow case
@given(written())
@example(WORST)
def test_json_file_gives_back_each_stream_in_order_as_text(data: Written) -> None:
    with tempfile.TemporaryDirectory() as directory:
        info = ContainerInfo("f" * 64, "/fuzz", log_path=str(Path(directory) / "c-json.log"))
        messages = through(jsonfile, info, split(data))
    assert reassembled(messages, STDOUT) == as_json_file_keeps_it(data.stdout)
    assert reassembled(messages, STDERR) == as_json_file_keeps_it(data.stderr)


ROTATING = settings(IN_PROCESS, max_examples=25)
MAX_FILES = 300  # never reached by these streams (checked), so rotation itself must lose nothing


@ROTATING
@given(written(max_run=2 * MAX_LINE_SIZE, max_pieces=8), st.sampled_from(["json-file", "local"]))
def test_rotation_and_compression_lose_nothing_while_every_file_is_kept(data: Written, driver: str) -> None:
    opts = {"max-size": "20k", "max-file": str(MAX_FILES), "compress": "true"}
    with tempfile.TemporaryDirectory() as directory:
        log_path = Path(directory) / "c-json.log"
        info = ContainerInfo("f" * 64, "/fuzz", config=opts, log_path=str(log_path), container_dir=directory)
        messages = through(jsonfile if driver == "json-file" else local, info, split(data))
        files = list(Path(directory).rglob("*.log*"))
    assert len(files) < MAX_FILES
    expected = as_json_file_keeps_it if driver == "json-file" else bytes
    assert reassembled(messages, STDOUT) == expected(data.stdout)
    assert reassembled(messages, STDERR) == expected(data.stderr)


# ---- layer 2: a real container, a real daemon, `logship logs` ----------------------------------------------

# Few examples: each one runs a container (about 2 s with its `run` and `logs` CLI processes).
THROUGH_A_DAEMON = settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def writer_script(data: Written) -> tuple[bytes, str]:
    """stdin for `run -i` (every chunk, one after the other) and a shell script that saves it and writes
    each chunk to its stream in order, with busybox's `tail -c +OFFSET | head -c SIZE`."""
    commands = ["cat > /tmp/in"]
    offset = 1
    for stream, chunk in data.chunks:
        redirect = " >&2" if stream == STDERR else ""
        commands.append(f"tail -c +{offset} /tmp/in | head -c {len(chunk)}{redirect}")
        offset += len(chunk)
    return b"".join(chunk for _, chunk in data.chunks), "\n".join(commands)


RUNS = itertools.count()


def run_and_read_back(daemon: Daemon, data: Written, *run_options: str) -> tuple[bytes, bytes]:
    stdin, script = writer_script(data)
    name = f"fuzz{next(RUNS)}"
    run = daemon.cli("run", "-i", "--name", name, *run_options, "busybox", "sh", "-c", script, input=stdin)
    try:
        assert run.code == 0, run.err
        logs = daemon.cli("logs", name)
        assert logs.code == 0, logs.err
    finally:
        daemon.cli("rm", "-f", name)
    return logs.stdout, logs.stderr


# Modest sizes: through a container the bytes cross a pipe, the copier, the driver, the API and the CLI.
DAEMON_STREAMS = written(max_run=MIB, max_pieces=6, max_chunks=8)


@pytest.mark.integration
@THROUGH_A_DAEMON
@given(data=DAEMON_STREAMS)
@example(data=WORST)
def test_json_file_logs_prints_what_the_container_wrote(shared_daemon: Daemon, data: Written) -> None:
    stdout, stderr = run_and_read_back(shared_daemon, data)
    assert stdout == as_json_file_keeps_it(data.stdout)
    assert stderr == as_json_file_keeps_it(data.stderr)


@pytest.mark.integration
@THROUGH_A_DAEMON
@given(data=DAEMON_STREAMS)
@example(data=WORST)
def test_local_logs_prints_exactly_what_the_container_wrote(shared_daemon: Daemon, data: Written) -> None:
    stdout, stderr = run_and_read_back(shared_daemon, data, "--log-driver", "local")
    assert stdout == data.stdout
    assert stderr == data.stderr


@pytest.mark.integration
@THROUGH_A_DAEMON
@given(data=DAEMON_STREAMS)
@example(data=WORST)
def test_journald_logs_prints_exactly_what_the_container_wrote(
    shared_daemon: Daemon, journald: Journald, data: Written
) -> None:
    stdout, stderr = run_and_read_back(shared_daemon, data, "--log-driver", "journald")
    assert stdout == data.stdout
    assert stderr == data.stderr
