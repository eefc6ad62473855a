"""The syslog driver's bytes are Docker's, byte for byte: each message of each recorded case
(tests/fixtures/docker-samples/syslog-gelf) is encoded again from the same fields (time, tag, host, pid,
facility, stream and line) and must come out identical, framing included; options are checked with
Docker's messages."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from logship.drivers.syslog import encode
from logship.drivers.syslog.encode import SyslogEncoder
from logship.drivers.syslog.options import FACILITIES, parse_config, validate_options
from logship.errors import InvalidParameter
from logship.pipeline.message import Batch, PartialMeta
from tests.syslog_gelf_samples import DOCKER_PID, SYSLOG_CASES, syslog_messages, transport

_HEADER = re.compile(
    rb"^<(?P<pri>[0-9]+)>(?:1 (?P<iso>\S+) (?P<host5424>\S+) (?P<app>\S+) (?P<procid>[0-9]+) \S+ - "
    rb"|(?P<stamp>[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}) (?:(?P<host>\S+) )?(?P<tag>\S+)\[(?P<pid>[0-9]+)\]: )"
)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The samples were recorded on a machine in UTC; Docker prints local time."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    encode._local.cache_clear()
    yield
    monkeypatch.undo()
    time.tzset()
    encode._local.cache_clear()


def fields(message: bytes) -> tuple[str, int, str, str, bytes]:
    """(stream, time in ns, tag, host, line) of a recorded message (its pid is DOCKER_PID or `pid_of`)."""
    match = _HEADER.match(message)
    assert match, message[:100]
    stream = "stderr" if int(match["pri"]) % 8 == 3 else "stdout"
    if match["iso"]:
        iso = match["iso"].decode()
        seconds = int(time.mktime(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")))
        micros = int(iso[20:26]) if iso[19] == "." else 0
        when = seconds * 1_000_000_000 + micros * 1000
        tag, host = match["app"].decode(), match["host5424"].decode()
    else:
        stamp = match["stamp"].decode()
        seconds = int(time.mktime(time.strptime("2026 " + stamp, "%Y %b %d %H:%M:%S")))
        when, tag, host = seconds * 1_000_000_000, match["tag"].decode(), (match["host"] or b"vm").decode()
    return stream, when, tag, host, message[match.end() :].removesuffix(b"\n")


def pid_of(message: bytes) -> int:
    match = _HEADER.match(message)
    assert match
    return int(match["procid"] or match["pid"])


def address(case: str) -> str:
    return "udp://127.0.0.1:5514" if transport(case) == "udp" else "tcp://127.0.0.1:5515"


@pytest.mark.parametrize("case", sorted(SYSLOG_CASES))
def test_each_recorded_message_is_encoded_again_byte_for_byte(case: str) -> None:
    opts, _, _ = SYSLOG_CASES[case]
    config = parse_config({"syslog-address": address(case), **opts})
    expected = syslog_messages(case)
    stream, when, tag, host, _ = fields(expected[0])
    encoder = SyslogEncoder(config, tag, host, pid_of(expected[0]), datagrams=transport(case) == "udp")
    for message in expected:
        stream, when, tag, host, line = fields(message)
        got = encoder.messages(Batch(stream, when, [line]))
        assert b"".join(got) == message


def test_one_batch_of_a_read_gives_docker_s_messages_empty_lines_left_out_pieces_separate() -> None:
    config = parse_config({"syslog-address": "tcp://127.0.0.1:5515", "syslog-format": "rfc5424"})
    stream, when, tag, host, _ = fields(syslog_messages("syslog_tcp_specials")[0])
    encoder = SyslogEncoder(config, tag, host, DOCKER_PID, datagrams=False)
    lines = [b"bad:\xff\xfe|nul:\x00|tab:\t|cr:\r|end", b"", b"", b"after-empty"]
    assert encoder.messages(Batch(stream, when, lines)) == [b"".join(syslog_messages("syslog_tcp_specials"))]
    # A batch of whole lines as one block of text (the copier's usual batch) gives the same bytes.
    text = Batch.of_text(stream, when, b"one\ntwo\nthree", 3)
    assert encoder.messages(text) == encoder.messages(Batch(stream, when, [b"one", b"two", b"three"]))
    long = syslog_messages("syslog_tcp_long20000")
    stream, when, tag, host, _ = fields(long[0])
    encoder = SyslogEncoder(config, tag, host, DOCKER_PID, datagrams=False)
    pieces = Batch(
        stream, when, [b"a" * 16384, b"a" * 3616], {0: PartialMeta("p", 1, False), 1: PartialMeta("p", 2, True)}
    )
    assert encoder.messages(pieces) == [b"".join(long)]


def test_over_udp_each_message_is_a_datagram_and_octet_counting_frames_a_message_with_its_newline() -> None:
    udp = SyslogEncoder(parse_config({"syslog-address": "udp://h:1"}), "t", "h", 1, datagrams=True)
    assert len(udp.messages(Batch("stdout", 0, [b"a", b"", b"b"]))) == 2
    counted = SyslogEncoder(
        parse_config({"syslog-address": "tcp://h:1", "syslog-framing": "octet-counted"}), "t", "h", 1, False
    )
    (data,) = counted.messages(Batch("stdout", 0, [b"first\nsecond"]))
    message = b"<30>Jan  1 00:00:00 t[1]: first\nsecond\n"
    assert data == b"%d %s" % (len(message), message)
    # Docker's own choice: RFC 5425 length framing for rfc5424 over TLS.
    assert parse_config({"syslog-address": "tcp+tls://h:1", "syslog-format": "rfc5424"}).framing == "octet-counted"
    assert parse_config({"syslog-address": "tcp+tls://h:1"}).framing == "non-transparent"


@pytest.mark.parametrize("facility", [*sorted(FACILITIES), "0", "23"])
def test_every_facility_gives_facility_times_8_plus_6_or_3(facility: str) -> None:
    number = FACILITIES.get(facility, int(facility) if facility.isdigit() else -1)
    encoder = SyslogEncoder(
        parse_config({"syslog-address": "udp://h:1", "syslog-facility": facility}), "t", "h", 1, datagrams=True
    )
    (out,) = encoder.messages(Batch("stdout", 0, [b"x"]))
    (err,) = encoder.messages(Batch("stderr", 0, [b"x"]))
    assert out.startswith(b"<%d>" % (number * 8 + 6)) and err.startswith(b"<%d>" % (number * 8 + 3))


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"syslog-bogus": "1"}, "unknown log opt 'syslog-bogus' for syslog log driver"),
        ({"syslog-address": "127.0.0.1:514"}, "syslog-address should be in form proto://address, got 127.0.0.1:514"),
        ({"syslog-address": "http://h:1"}, "syslog-address should be in form proto://address, got http://h:1"),
        ({"syslog-address": "tcp://h:99999"}, "invalid port '99999'"),
        ({"syslog-facility": "local8"}, "invalid syslog facility"),
        ({"syslog-facility": "24"}, "invalid syslog facility"),
        ({"syslog-format": "rfc9999"}, "Invalid syslog format"),
        ({"syslog-framing": "octet"}, "invalid syslog-framing 'octet' for syslog log driver"),
        ({"syslog-address": "udp://h:1", "syslog-framing": "octet-counted"}, "needs a stream transport"),
        ({"syslog-tls-skip-verify": "maybe"}, "invalid value for syslog-tls-skip-verify: 'maybe'"),
        ({"labels-regex": "("}, "invalid labels-regex '('"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        validate_options(opts)


def test_an_address_without_a_port_gets_514_and_a_unix_socket_need_not_exist_yet() -> None:
    assert parse_config({"syslog-address": "tcp://example.org"}).address.port == 514
    assert parse_config({"syslog-address": "udp://[::1]"}).address.host == "::1"
    assert parse_config({"syslog-address": "unixgram:///nowhere/log.sock"}).address.path == "/nowhere/log.sock"
    assert str(parse_config({}).address).startswith("the local syslog socket (/dev/log")
