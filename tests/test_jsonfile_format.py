"""json-file writes what Docker 20.10 wrote, byte for byte (tests/fixtures/docker-samples/*-json.log).

Each case feeds the driver the lines the copier makes of the sample's container output (see the
samples' README for the commands), stamped with the times Docker recorded, and compares the file.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from logship.drivers import jsonfile
from logship.drivers.jsonfile.encode import BatchEncoder, escape_log, marshal_attrs
from logship.drivers.util.timestamps import parse_rfc3339nano
from logship.pipeline.info import ContainerInfo
from logship.pipeline.message import STDERR, STDOUT, Batch, PartialMeta

SAMPLES = Path(__file__).parent / "fixtures" / "docker-samples"
PIECE = 16 * 1024


@dataclass
class Record:
    """One message the copier produced: stream, line without newline, and whether the line ended."""

    stream: str
    line: bytes
    ends_line: bool = True
    piece: bool = False  # part of a line longer than 16 KiB

    @property
    def partial(self) -> bool:
        return self.piece or not self.ends_line


def out(line: bytes, ends_line: bool = True, piece: bool = False) -> Record:
    return Record(STDOUT, line, ends_line, piece)


def err(line: bytes) -> Record:
    return Record(STDERR, line)


def pieces(line: bytes, newline: bool) -> list[Record]:
    """A long line as the copier cuts it: 16 KiB pieces, the last one ending the line if it had a newline."""
    cut = [line[i : i + PIECE] for i in range(0, len(line), PIECE)]
    if newline and len(line) % PIECE == 0:
        cut.append(b"")  # the newline arrives alone after a full piece
    return [out(part, ends_line=newline and i == len(cut) - 1, piece=True) for i, part in enumerate(cut)]


SPECIALS = (
    b'tab:\there "quote" back\\slash bell:\a bs:\b ff:\f vt:\v esc:\x1b[31mred\x1b[0m nul:\x00 x01:\x01 '
    b"x1f:\x1f del:\x7f cr-mid:\r lt-gt-amp:<>& u2028:\xe2\x80\xa8 u2029:\xe2\x80\xa9 done"
)
INVALID_UTF8 = (
    b"bad:\xff\xfe|lone-cont:\x80|trunc:\xc3|ok-e-acute:\xc3\xa9|4byte:\xf0\x9f\x98\x80"
    b"|surrogate-ed-a0:\xed\xa0\x80|end"
)

CASES: dict[str, list[Record]] = {
    "stdout": [out(b"hello world")],
    "stderr": [err(b"oops on stderr")],
    "nonewline": [out(b"no-newline-at-exit", ends_line=False)],
    "nonewline_mid": [out(b"part1-part2"), out(b"tail-no-nl", ends_line=False)],
    "empty_lines": [out(b""), out(b""), out(b""), out(b"x"), out(b"")],
    "crlf": [out(b"dos line\r"), out(b"second\r")],
    "specials": [out(SPECIALS)],
    "invalid_utf8": [out(INVALID_UTF8)],
    "long20000": pieces(b"a" * 20000, newline=True),
    "len16383": pieces(b"b" * 16383, newline=True),
    "len16384": pieces(b"c" * 16384, newline=True),
    "len16385": pieces(b"d" * 16385, newline=True),
    "long40000_nonl": pieces(b"e" * 40000, newline=False),
    "tty": [out(b"tty-out\r"), out(b"tty-err\r"), out(b"tab\tend", ends_line=False)],
    "tty_long": pieces(b"t" * 20000 + b"\r", newline=True),
    "interleave": [err(b"err%d" % i) for i in range(1, 6)] + [out(b"out%d" % i) for i in range(1, 6)],
    "attrs": [out(b"with attrs")],
    "attrs_regex": [out(b"with regex attrs")],
    "tag_only": [out(b"tag only")],
}

ATTRS_ID = "6a86b5e0874334301901ed80cc5075cc900a43ce8338b8801332b91f2b08a50f"


def info_for(case: str, log_path: Path) -> ContainerInfo:
    """The container of each sample, as far as json-file can see it."""
    if case == "attrs":
        return ContainerInfo(
            container_id=ATTRS_ID,
            container_name="/s_attrs",
            image_id="sha256:2f340bd0d4a6c8c1e1ea2b0dff1c6c2a0cd8e1fa6e4e8b59d5c3f0a6b3e1e7c9",
            image_name="busybox:local",
            labels={"com.example.a": "alpha", "com.example.b": "beta", "other": "zzz"},
            env=("PATH=/usr/bin", "FOO=bar", "SECRET=s3cr3t", "OTHER=o"),
            config={
                "labels": "com.example.a,com.example.b",
                "env": "FOO,SECRET",
                "tag": "{{.Name}}/{{.ImageName}}/{{.ID}}/{{.FullID}}/{{.ImageID}}/{{.DaemonName}}",
            },
            daemon_name="docker",
            log_path=str(log_path),
        )
    config = {
        "attrs_regex": {"labels-regex": r"^com\.", "env-regex": "^FOO"},
        "tag_only": {"tag": "mytag"},
    }.get(case, {})
    return ContainerInfo(
        container_id="f" * 64,
        container_name="/s_" + case,
        labels={"com.example.a": "alpha", "other": "zzz"},
        env=("PATH=/usr/bin", "FOO=bar", "FOO2=baz"),
        config=config,
        log_path=str(log_path),
    )


def batches_for(records: list[Record], times: list[int]) -> list[Batch]:
    """Consecutive records of one stream and one time form one batch, as the copier would send them."""
    batches: list[Batch] = []
    for record, time_ns in zip(records, times, strict=True):
        last = batches[-1] if batches else None
        if last is None or last.stream != record.stream or last.timestamp_ns != time_ns:
            last = Batch(record.stream, time_ns, [])
            batches.append(last)
        index = len(last.lines)
        last.lines.append(record.line)
        if record.partial:
            last.partials[index] = PartialMeta("p", index + 1, record.ends_line)
        last.nbytes += len(record.line)
    return batches


def recorded_times(sample: bytes) -> list[int]:
    return [parse_rfc3339nano(orjson.loads(line)["time"]) for line in sample.splitlines()]


def as_text(batch: Batch) -> Batch:
    """The same whole lines as the copier usually hands them on: one block of text (Batch.of_text)."""
    assert not batch.partials
    return Batch.of_text(batch.stream, batch.timestamp_ns, b"\n".join(batch.lines), len(batch.lines))


@pytest.mark.parametrize("text", [False, True], ids=["lines", "text"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_log_file_matches_dockers_byte_for_byte(case: str, text: bool, tmp_path: Path) -> None:
    sample = (SAMPLES / f"{case}-json.log").read_bytes()
    log_path = tmp_path / "c-json.log"
    batches = batches_for(CASES[case], recorded_times(sample))
    if text:
        batches = [batch if batch.partials else as_text(batch) for batch in batches]

    async def scenario() -> None:
        driver = await jsonfile.new(info_for(case, log_path))
        for batch in batches:
            await driver.log(batch)
        await driver.close()

    asyncio.run(scenario())
    assert log_path.read_bytes() == sample


def test_a_batch_kept_as_text_encodes_exactly_like_its_list_of_lines() -> None:
    # Every byte value once in an otherwise clean line, then random lines mixing all of them: the text
    # path must notice each byte that needs escaping and give the list path's bytes.
    rng = random.Random(11)
    cases = [[b"clean", b"a" + bytes([byte]) + b"z", b"clean"] for byte in range(256) if byte != ord("\n")]
    cases += [[SPECIALS, INVALID_UTF8, b"", b"\xe2\x80\xa8"], [b""], [b"", b""], [b"only <tags> & more"]]
    alphabet = bytes(byte for byte in range(256) if byte != ord("\n"))
    for _ in range(200):
        cases.append([bytes(rng.choices(alphabet, k=rng.choice([0, 1, 5, 80]))) for _ in range(rng.randint(1, 8))])
    for encoder in (BatchEncoder({}), BatchEncoder({"tag": "<t>\tx"})):
        for lines in cases:
            for stream in (STDOUT, STDERR):
                listed = Batch(stream, 1_500_000_000_123_456_789, lines)
                assert encoder.encode(as_text(listed)) == encoder.encode(listed), lines


def test_a_batch_of_many_lines_is_one_record_per_line_sharing_the_batch_time() -> None:
    encoded = BatchEncoder({}).encode(Batch(STDOUT, 1_000_000_000_500_000_000, [b"one", b"", b"three"]))
    assert encoded == (
        b'{"log":"one\\n","stream":"stdout","time":"2001-09-09T01:46:40.5Z"}\n'
        b'{"log":"\\n","stream":"stdout","time":"2001-09-09T01:46:40.5Z"}\n'
        b'{"log":"three\\n","stream":"stdout","time":"2001-09-09T01:46:40.5Z"}\n'
    )


def test_a_whole_second_has_no_fraction() -> None:
    encoded = BatchEncoder({}).encode(Batch(STDOUT, 1_000_000_000_000_000_000, [b"x"]))
    assert encoded.endswith(b'"time":"2001-09-09T01:46:40Z"}\n')


def test_an_empty_piece_of_a_long_line_leaves_log_out() -> None:
    batch = Batch(STDOUT, 0, [b""], {0: PartialMeta("p", 1, False)})
    assert BatchEncoder({}).encode(batch) == b'{"stream":"stdout","time":"1970-01-01T00:00:00Z"}\n'


def test_an_empty_batch_writes_nothing() -> None:
    assert BatchEncoder({"a": "b"}).encode(Batch(STDOUT, 0, [])) == b""


def test_escaping_of_one_line_mixing_clean_and_dirty_lines_in_a_batch() -> None:
    encoded = BatchEncoder({}).encode(Batch(STDERR, 0, [b"plain", b"<b>", b"caf\xc3\xa9\xff"]))
    assert encoded.splitlines() == [
        b'{"log":"plain\\n","stream":"stderr","time":"1970-01-01T00:00:00Z"}',
        b'{"log":"\\u003cb\\u003e\\n","stream":"stderr","time":"1970-01-01T00:00:00Z"}',
        b'{"log":"caf\xc3\xa9\\ufffd\\n","stream":"stderr","time":"1970-01-01T00:00:00Z"}',
    ]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b"\xf0\x9f\x98x", b"\\ufffd\\ufffd\\ufffdx"),  # Go replaces byte by byte, not by maximal subpart
        (b"\xc0\x80", b"\\ufffd\\ufffd"),  # overlong encoding
        (b"\xef\xbf\xbd", b"\xef\xbf\xbd"),  # a real U+FFFD passes raw
        (b"\\u0041", b"\\\\u0041"),  # a literal backslash-u stays literal
        (b"\x7f", b"\x7f"),
        (b"\t\n\r", b"\\u0009\\n\\r"),
    ],
)
def test_log_escaping_follows_ffjson(raw: bytes, escaped: bytes) -> None:
    assert escape_log(raw) == escaped


def test_attrs_are_go_json_sorted_html_safe_with_short_tab() -> None:
    attrs = {"z": "tab\there", "a": "<&>", "m": "line\u2028sep"}
    assert marshal_attrs(attrs) == b'{"a":"\\u003c\\u0026\\u003e","m":"line\\u2028sep","z":"tab\\there"}'


def test_env_wins_over_a_label_of_the_same_name(tmp_path: Path) -> None:
    info = ContainerInfo(
        container_id="f" * 64,
        container_name="/c",
        labels={"KEY": "from-label"},
        env=("KEY=from-env",),
        config={"labels": "KEY", "env": "KEY"},
        log_path=str(tmp_path / "c-json.log"),
    )

    async def scenario() -> None:
        driver = await jsonfile.new(info)
        await driver.log(Batch(STDOUT, 0, [b"x"]))
        await driver.close()

    asyncio.run(scenario())
    assert b'"attrs":{"KEY":"from-env"}' in (tmp_path / "c-json.log").read_bytes()
