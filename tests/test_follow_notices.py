"""How lines lost while following are told (issue 16), without a daemon: the reader's LOST notice becomes
a notice frame where it happened for a client that asks (logship's CLI warns on stderr, stdout untouched,
exit 1), and Docker's in-stream error at the end for any other (the docker CLI, docker-py); nothing in a
tty container's raw output. And the `follow-backlog` log-opt that bounds it, for json-file, local and
the dual-logging cache."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from logship.api.framing import STREAM_NOTICE, STREAM_SYSTEMERR, LogEncoder, frame
from logship.cli.multilogs import STDERR as MULTI_STDERR
from logship.cli.multilogs import StampedLines
from logship.drivers import cache
from logship.drivers import jsonfile as jsonfile_factory
from logship.drivers import local as local_factory
from logship.drivers.base import LOST, runs_of
from logship.drivers.jsonfile.options import rotation_of as json_rotation
from logship.drivers.local.options import rotation_of as local_rotation
from logship.drivers.options import validate
from logship.drivers.util.followers import DEFAULT_FOLLOW_BACKLOG, FollowLoss
from logship.errors import InvalidParameter
from logship.logscommand import copy_multiplexed
from logship.pipeline.message import STDERR, STDOUT, Message

LOSS = FollowLoss(lines=140, files=14, nbytes=17_920)
NOTICE = Message(LOSS.encode(), LOST, 0)
BOTH = frozenset({STDOUT, STDERR})


def line(text: bytes, stream: str = STDOUT) -> Message:
    return Message(text, stream, 1_764_398_000_000_000_000)


def test_a_loss_is_encoded_for_the_api_and_told_in_words() -> None:
    assert FollowLoss.decode(LOSS.encode()) == LOSS
    assert FollowLoss.decode(LOSS.encode() + b"\n") == LOSS  # as a run carries it
    assert FollowLoss(280, 28, 35_840) == LOSS + LOSS
    assert not FollowLoss() and LOSS and FollowLoss(uncounted_files=1)
    words = LOSS.describe()
    assert words.startswith("140 log lines (14 rotated files, 17920 bytes) were deleted by max-file before this")
    assert "raise the container's max-size, max-file or follow-backlog log-opts" in words
    assert "1 rotated file disappeared before this follower could read it" in FollowLoss(uncounted_files=1).describe()


def test_a_notice_never_gets_a_timestamp_prefix_as_a_run() -> None:
    assert runs_of([line(b"a"), NOTICE, line(b"b")], timestamps=True)[1] == (LOST, LOSS.encode() + b"\n")


@pytest.mark.parametrize("tty", [False, True])
def test_a_client_that_takes_notices_gets_each_where_it_happened(tty: bool) -> None:
    # A tty container's output is framed too for such a client (the route passes tty=False then).
    encoder = LogEncoder(BOTH, False, False, tty=False, notices=True)
    notice = frame(STREAM_NOTICE, LOSS.describe().encode() + b"\n")
    assert encoder.encode([line(b"a"), NOTICE, line(b"b")]) == frame(1, b"a\n") + notice + frame(1, b"b\n")
    assert encoder.encode_runs([(STDOUT, b"a\n"), (LOST, LOSS.encode() + b"\n"), (STDOUT, b"b\n")]) == (
        frame(1, b"a\n") + notice + frame(1, b"b\n")
    )
    assert encoder.closing() == b""  # told already


def test_any_other_client_gets_the_total_as_dockers_error_once_the_follow_ended() -> None:
    encoder = LogEncoder(frozenset({STDOUT}), False, False, tty=False, frame_per_run=True)
    assert encoder.encode_runs([(STDOUT, b"a\n"), (LOST, LOSS.encode()), (STDERR, b"e\n"), (STDOUT, b"b\n")]) == (
        frame(1, b"a\n") + frame(1, b"b\n")
    )
    assert encoder.encode([NOTICE]) == b""
    assert encoder.closing() == frame(
        STREAM_SYSTEMERR, b"Error grabbing logs: " + (LOSS + LOSS).describe().encode() + b"\n"
    )
    raw = LogEncoder(BOTH, False, False, tty=True)
    assert raw.encode([line(b"a"), NOTICE]) == b"a\n"
    assert raw.closing() == b""  # a tty's raw stream has no place for it: the daemon log says it
    assert LogEncoder(BOTH, False, False, tty=False).closing() == b""  # nothing lost, nothing said


def test_the_logship_cli_warns_on_stderr_where_lines_were_lost_and_leaves_stdout_alone() -> None:
    notice = frame(STREAM_NOTICE, b"140 log lines were lost\n")
    stream = frame(1, b"a\n") + notice[:5]  # a read cuts the notice's header
    rest = notice[5:] + frame(2, b"e\n") + frame(1, b"b\n")
    out, err = io.BytesIO(), io.BytesIO()

    class Reads(io.BytesIO):
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        def read1(self, size: int | None = -1, /) -> bytes:
            return self.chunks.pop(0) if self.chunks else b""

    assert copy_multiplexed(Reads([stream, rest]), out, err) is True
    assert out.getvalue() == b"a\nb\n"
    assert err.getvalue() == b"WARNING: 140 log lines were lost\ne\n"
    assert copy_multiplexed(io.BytesIO(frame(1, b"a\n")), io.BytesIO(), io.BytesIO()) is False


def test_several_containers_show_a_notice_as_a_warning_naming_the_container_in_place() -> None:
    reader = StampedLines(0, False, False, False, prefixes={1: b"", 2: b""}, notice_prefix=b"web | ")
    stamp = b"2026-12-07T10:00:00.000000001Z "
    lines = reader.feed(frame(1, stamp + b"a\n") + frame(STREAM_NOTICE, b"lost\n") + frame(1, stamp + b"b\n"))
    assert lines.texts == [b"a\n", b"web | WARNING: lost\n", b"b\n"]
    assert lines.streams == [1, MULTI_STDERR, 1]
    assert lines.stamps == [stamp[:-1]] * 3  # the notice sorts with the line before it
    assert reader.lost and reader.error is None


# ---- the follow-backlog log-opt ------------------------------------------------------------------------


def test_follow_backlog_is_a_binary_size_defaulting_to_256_mib_for_every_file_log() -> None:
    assert DEFAULT_FOLLOW_BACKLOG == 256 * 1024 * 1024
    assert json_rotation({}).follow_backlog == local_rotation({}).follow_backlog == DEFAULT_FOLLOW_BACKLOG
    assert json_rotation({"follow-backlog": "1g"}).follow_backlog == 1 << 30
    assert local_rotation({"follow-backlog": "100k"}).follow_backlog == 100 << 10
    assert local_rotation({"follow-backlog": "0"}).follow_backlog == 0
    assert cache.rotation({"cache-follow-backlog": "64m"}).follow_backlog == 64 << 20
    jsonfile_factory.validate_options({"follow-backlog": "1g"})
    local_factory.validate_options({"follow-backlog": "1g"})
    validate("fluentd", {"cache-follow-backlog": "1g"})


@pytest.mark.parametrize("parse", [json_rotation, local_rotation])
def test_a_bad_follow_backlog_names_the_option_and_what_to_give(parse: object, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as refused:
        parse({"follow-backlog": "lots"})  # type: ignore[operator]
    assert str(refused.value) == (
        "invalid value for follow-backlog: lots: invalid size: 'lots' (give a size such as 256m, or 0 to keep "
        "nothing for followers)"
    )
    with pytest.raises(InvalidParameter, match=r"^invalid dual-logging cache options \(cache-follow-backlog\): "):
        validate("fluentd", {"cache-follow-backlog": "-1"})
