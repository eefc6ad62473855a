"""The Forward Protocol v1 receiver that stands in for fluentd: hand-built msgpack requests over real sockets."""

from __future__ import annotations

import base64
import gzip
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgpack
import pytest

from tests.fluentd_receiver import (
    CountingReceiver,
    ForwardReceiver,
    RawStr,
    ReceiverProcess,
    event_time,
)
from tests.tls import make_certificate

CHUNK = base64.b64encode(bytes(range(16))).decode()
OTHER_CHUNK = base64.b64encode(bytes(range(16, 32))).decode()


def pack(value: object) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


def pack_with_raw_strings(value: object) -> bytes:
    """Python bytes become msgpack str, as Docker's Go client sends any log line."""
    return bytes(msgpack.packb(value, use_bin_type=False))


def packed_entries(*entries: object) -> bytes:
    return b"".join(pack(entry) for entry in entries)


class Client:
    """A bare Forward Protocol client on a real socket: tcp://, tls:// or unix:// addresses."""

    def __init__(self, address: str, ca: str | None = None) -> None:
        scheme, rest = address.split("://", 1)
        self.sock: socket.socket
        if scheme == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(rest)
        else:
            host, port = rest.rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=10)
            if scheme == "tls":
                self.sock = ssl.create_default_context(cafile=ca).wrap_socket(self.sock, server_hostname=host)
        self.unpacker = msgpack.Unpacker(raw=False)

    def send(self, *requests: object) -> None:
        self.sock.sendall(b"".join(request if isinstance(request, bytes) else pack(request) for request in requests))

    def reply(self) -> Any:
        """The next msgpack value the server sends."""
        while True:
            try:
                return self.unpacker.unpack()
            except msgpack.OutOfData:
                data = self.sock.recv(4096)
                if not data:
                    raise ConnectionError("the server closed the connection before replying") from None
                self.unpacker.feed(data)

    def read_to_end(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        received = b""
        try:
            while data := self.sock.recv(4096):
                received += data
        except ConnectionResetError:
            pass
        return received

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receiver() -> Iterator[ForwardReceiver]:
    with ForwardReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def send_and_wait(receiver: ForwardReceiver, *requests: object, events: int) -> list[Any]:
    client = Client(receiver.address)
    client.send(*requests)
    try:
        return receiver.wait_for(events)
    finally:
        client.close()


# ---- decoding every mode exactly ----


def test_message_mode_with_an_integer_time_gives_whole_seconds(receiver: ForwardReceiver) -> None:
    [event] = send_and_wait(receiver, ["app.web", 1700000000, {"log": "hello", "source": "stdout"}], events=1)
    assert event.tag == "app.web"
    assert event.time_ns == 1700000000 * 10**9
    assert event.event_time is False
    assert event.record == {"log": "hello", "source": "stdout"}
    assert event.mode == "message"
    assert event.chunk is None
    assert receiver.messages == 1
    assert receiver.protocol_errors == []


@pytest.mark.parametrize(
    "encoded_time",
    [
        bytes([0xD7, 0x00]) + struct.pack(">II", 1700000000, 123456789),  # fixext 8
        bytes([0xC7, 0x08, 0x00]) + struct.pack(">II", 1700000000, 123456789),  # ext 8 with length 8
    ],
    ids=["fixext8", "ext8"],
)
def test_event_time_keeps_the_nanoseconds_in_either_ext_form(receiver: ForwardReceiver, encoded_time: bytes) -> None:
    request = b"\x93" + pack("tag") + encoded_time + pack({"log": "x"})
    [event] = send_and_wait(receiver, request, events=1)
    assert event.time_ns == 1700000000_123456789
    assert event.event_time is True
    assert receiver.protocol_errors == []


def test_forward_mode_gives_every_entry_in_order(receiver: ForwardReceiver) -> None:
    entries = [[1, {"n": 1}], [event_time(2, 5), {"n": 2}], [3, {"n": 3}]]
    events = send_and_wait(receiver, ["tag", entries, {"size": 3}], events=3)
    assert [(event.time_ns, event.event_time, event.record["n"]) for event in events] == [
        (1_000_000_000, False, 1),
        (2_000_000_005, True, 2),
        (3_000_000_000, False, 3),
    ]
    assert {event.mode for event in events} == {"forward"}
    assert receiver.messages == 1


@pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
def test_packed_forward_stream_is_accepted_as_bin_and_as_str(receiver: ForwardReceiver, as_str: bool) -> None:
    stream = packed_entries([event_time(10, 1), {"log": "a"}], [11, {"log": "b"}])
    # out_forward sends the stream as msgpack str for backward compatibility; the spec allows both.
    request = pack_with_raw_strings(["tag", stream]) if as_str else pack(["tag", stream])
    events = send_and_wait(receiver, request, events=2)
    assert [(event.time_ns, event.record["log"], event.mode) for event in events] == [
        (10_000_000_001, "a", "packed"),
        (11_000_000_000, "b", "packed"),
    ]


def test_compressed_packed_forward_reads_several_gzip_members(receiver: ForwardReceiver) -> None:
    first = gzip.compress(packed_entries([1, {"log": "a"}], [2, {"log": "b"}]))
    second = gzip.compress(packed_entries([3, {"log": "c"}]))
    events = send_and_wait(receiver, ["tag", first + second, {"compressed": "gzip", "size": 3}], events=3)
    assert receiver.values("log") == ["a", "b", "c"]
    assert {event.mode for event in events} == {"compressed"}


def test_str_values_that_are_not_utf8_are_kept_as_their_bytes(receiver: ForwardReceiver) -> None:
    request = pack_with_raw_strings(["tag", 1, {"log": b"caf\xe9 \xff\xfe", "ok": "caf\u00e9".encode()}])
    [event] = send_and_wait(receiver, request, events=1)
    assert event.record["log"] == b"caf\xe9 \xff\xfe"
    assert type(event.record["log"]) is RawStr
    assert event.record["ok"] == "café"
    assert event.raw("log") == b"caf\xe9 \xff\xfe"
    assert event.raw("ok") == "café".encode()
    assert receiver.protocol_errors == []


def test_bin_values_are_plain_bytes_and_other_values_keep_their_types(receiver: ForwardReceiver) -> None:
    record = {"bin": b"\x00\xff", "int": -3, "float": 1.5, "bool": True, "nil": None, "nested": {"list": ["x", 2]}}
    [event] = send_and_wait(receiver, ["tag", 1, record], events=1)
    assert event.record == record
    assert type(event.record["bin"]) is bytes


def test_nil_heartbeat_is_ignored(receiver: ForwardReceiver) -> None:
    client = Client(receiver.address)
    client.send(None, ["tag", 1, {"log": "x"}, {"chunk": CHUNK}])
    assert client.reply() == {"ack": CHUNK}
    assert receiver.messages == 1
    assert receiver.event_count == 1
    assert receiver.protocol_errors == []


def test_requests_arriving_one_byte_at_a_time_are_reassembled(receiver: ForwardReceiver) -> None:
    client = Client(receiver.address)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in pack(["tag", [[1, {"log": "one"}], [2, {"log": "two"}]], {"chunk": CHUNK}]):
        client.send(bytes([byte]))
    assert client.reply() == {"ack": CHUNK}
    assert receiver.values("log") == ["one", "two"]


def test_unknown_option_keys_and_compressed_values_other_than_gzip_are_ignored(receiver: ForwardReceiver) -> None:
    # The spec: servers MAY ignore options; a compressed value other than "gzip" is ignored.
    request = ["tag", packed_entries([1, {"log": "x"}]), {"compressed": "text", "fluent_signal": 0}]
    [event] = send_and_wait(receiver, request, events=1)
    assert event.mode == "packed"
    assert receiver.protocol_errors == []


# ---- acks ----


@pytest.mark.parametrize(
    "request_",
    [
        ["tag", 1, {"log": "x"}, {"chunk": CHUNK}],
        ["tag", [[1, {"log": "x"}]], {"chunk": CHUNK}],
        ["tag", packed_entries([1, {"log": "x"}]), {"chunk": CHUNK}],
        ["tag", gzip.compress(packed_entries([1, {"log": "x"}])), {"chunk": CHUNK, "compressed": "gzip"}],
    ],
    ids=["message", "forward", "packed", "compressed"],
)
def test_chunk_is_acknowledged_on_the_same_connection(receiver: ForwardReceiver, request_: object) -> None:
    client = Client(receiver.address)
    client.send(request_)
    assert client.reply() == {"ack": CHUNK}
    [event] = receiver.events
    assert event.chunk == CHUNK
    assert receiver.acks_sent == 1


def test_the_ack_is_a_msgpack_map_with_a_str_value(receiver: ForwardReceiver) -> None:
    client = Client(receiver.address)
    client.send(["tag", 1, {"log": "x"}, {"chunk": CHUNK}])
    expected = b"\x81\xa3ack" + bytes([0xA0 | len(CHUNK)]) + CHUNK.encode()
    assert client.sock.recv(len(expected)) == expected


def test_a_request_without_chunk_gets_no_reply(receiver: ForwardReceiver) -> None:
    client = Client(receiver.address)
    client.send(["tag", 1, {"log": "first"}], ["tag", 1, {"log": "second"}, {"chunk": CHUNK}])
    assert client.reply() == {"ack": CHUNK}  # the first thing sent back answers the second request
    assert receiver.acks_sent == 1
    assert receiver.values("log") == ["first", "second"]


# ---- spec violations ----

GOOD_TIME = 1700000000
VIOLATIONS: list[tuple[str, bytes, str]] = [
    ("not-an-array", pack({"tag": "x"}), "must be a msgpack array"),
    ("tag-not-str", pack([1, GOOD_TIME, {}]), "the tag (first element) must be a msgpack str, got int"),
    ("tag-as-bin", pack([b"tag", GOOD_TIME, {}]), "the tag (first element) must be a msgpack str, got bin"),
    ("too-short", pack(["tag"]), "at least [tag, time or entries]"),
    ("message-without-record", pack(["tag", GOOD_TIME]), "the record is missing"),
    ("message-too-long", pack(["tag", GOOD_TIME, {}, {}, {}]), "Message mode is [tag, time, record, option] at most"),
    ("forward-too-long", pack(["tag", [], {}, {}]), "Forward mode is [tag, entries, option] at most"),
    ("second-element-nil", pack(["tag", None, {}]), "the second element must be a time"),
    ("time-bool", pack(["tag", True, {}]), "got bool"),
    ("time-float", pack(["tag", 1.5, {}]), "the time must be an int (seconds) or an EventTime (ext type 0), got float"),
    ("time-other-ext", pack(["tag", msgpack.ExtType(1, b"\0" * 8), {}]), "ext type 1; an EventTime is ext type 0"),
    ("event-time-4-bytes", pack(["tag", msgpack.ExtType(0, b"\0" * 4), {}]), "EventTime of 4 bytes; it must be 8"),
    ("event-time-16-bytes", pack(["tag", msgpack.ExtType(0, b"\0" * 16), {}]), "EventTime of 16 bytes"),
    ("event-time-ns-overflow", pack(["tag", event_time(1, 10**9), {}]), "1000000000 nanoseconds; must be below"),
    ("msgpack-timestamp", pack(["tag", msgpack.Timestamp(1, 0), {}]), "msgpack Timestamp (ext type -1)"),
    ("record-not-map", pack(["tag", GOOD_TIME, ["log"]]), "the record must be a msgpack map, got array of 1"),
    ("record-nil", pack(["tag", GOOD_TIME, None]), "the record must be a msgpack map, got nil"),
    ("record-int-key", pack(["tag", GOOD_TIME, {1: "x"}]), "the record has a key that is int (1); keys must be str"),
    ("option-not-map", pack(["tag", GOOD_TIME, {}, ["x"]]), "the option must be a msgpack map"),
    ("option-int-key", pack(["tag", GOOD_TIME, {}, {1: 2}]), "option keys must be str"),
    (
        "message-size",
        pack(["tag", GOOD_TIME, {}, {"size": 2}]),
        "Message mode: option size is 2 but the request holds 1",
    ),
    (
        "forward-size",
        pack(["tag", [[1, {}]] * 2, {"size": 3}]),
        "Forward mode: option size is 3 but the request holds 2",
    ),
    (
        "packed-size",
        pack(["tag", packed_entries([1, {}], [2, {}]), {"size": 1}]),
        "PackedForward mode: option size is 1 but the request holds 2",
    ),
    (
        "compressed-size",
        pack(["tag", gzip.compress(packed_entries([1, {}])), {"size": 0, "compressed": "gzip"}]),
        "CompressedPackedForward mode: option size is 0 but the request holds 1",
    ),
    ("size-not-int", pack(["tag", GOOD_TIME, {}, {"size": "1"}]), "option size must be a non-negative int, got str"),
    ("size-negative", pack(["tag", [], {"size": -1}]), "option size must be a non-negative int, got int -1"),
    ("chunk-not-base64", pack(["tag", GOOD_TIME, {}, {"chunk": "not base64!"}]), "Base64 of a 128-bit id"),
    ("chunk-wrong-length", pack(["tag", GOOD_TIME, {}, {"chunk": "AAAA"}]), "Base64 of a 128-bit id, got 'AAAA'"),
    ("chunk-not-str", pack(["tag", GOOD_TIME, {}, {"chunk": 5}]), "option chunk must be a str"),
    ("forward-entry-not-pair", pack(["tag", [[1]]]), "Forward mode: entry 0 must be an array [time, record]"),
    ("forward-entry-map", pack(["tag", [[1, {}], {"a": 1}]]), "entry 1 must be an array [time, record], got map"),
    ("forward-entry-bad-time", pack(["tag", [["now", {}]]]), "entry 0's time must be an int"),
    ("forward-entry-bad-record", pack(["tag", [[1, "log"]]]), "entry 0's record must be a msgpack map, got str"),
    (
        "packed-trailing-garbage",
        pack(["tag", packed_entries([1, {}]) + b"\x92\x01"]),
        "PackedForward mode: the entries end with 2 bytes that are not a complete msgpack value (after 1 entries)",
    ),
    ("packed-invalid-msgpack", pack(["tag", packed_entries([1, {}]) + b"\xc1"]), "not valid msgpack at byte 3"),
    ("packed-entry-not-pair", pack(["tag", packed_entries([1, {}, 3])]), "entry 0 must be an array [time, record]"),
    ("compressed-as-str", pack(["tag", "x", {"compressed": "gzip"}]), "must be msgpack bin, got str"),
    ("compressed-not-gzip", pack(["tag", b"plain", {"compressed": "gzip"}]), "the entries are not valid gzip"),
    (
        "compressed-truncated",
        pack(["tag", gzip.compress(packed_entries([1, {}]))[:-4], {"compressed": "gzip"}]),
        "the entries are not valid gzip",
    ),
    (
        "compressed-trailing-garbage",
        pack(["tag", gzip.compress(packed_entries([1, {}]) + b"\x92"), {"compressed": "gzip"}]),
        "CompressedPackedForward mode: the entries end with 1 bytes",
    ),
    ("compressed-in-forward", pack(["tag", [[1, {}]], {"compressed": "gzip"}]), "but this is Forward mode"),
    ("compressed-in-message", pack(["tag", 1, {}, {"compressed": "gzip"}]), "but this is Message mode"),
    ("invalid-msgpack", b"\xc1", "not valid msgpack at byte 0 of the connection"),
    ("array-as-map-key", b"\x81\x90\x01", "not valid msgpack at byte 0 of the connection"),
]


@pytest.mark.parametrize(
    ("request_", "expected"), [case[1:] for case in VIOLATIONS], ids=[case[0] for case in VIOLATIONS]
)
def test_a_spec_violation_is_recorded_and_closes_the_connection(
    receiver: ForwardReceiver, request_: bytes, expected: str
) -> None:
    client = Client(receiver.address)
    client.send(request_)
    assert client.read_to_end() == b""
    [error] = receiver.protocol_errors
    assert expected in error
    assert receiver.events == []
    assert receiver.messages == 0


def test_a_violation_keeps_earlier_requests_and_sends_no_ack(receiver: ForwardReceiver) -> None:
    client = Client(receiver.address)
    client.send(
        ["tag", 1, {"log": "good"}, {"chunk": CHUNK}],
        ["tag", 1, "not a record", {"chunk": OTHER_CHUNK}],
        ["tag", 1, {"log": "never read"}],
    )
    assert client.reply() == {"ack": CHUNK}
    assert client.read_to_end() == b""  # no ack for the bad request, then the connection ends
    assert receiver.values("log") == ["good"]
    assert len(receiver.protocol_errors) == 1


def test_a_client_closing_mid_request_counts_as_incomplete_not_as_a_protocol_error(
    receiver: ForwardReceiver,
) -> None:
    client = Client(receiver.address)
    request = pack(["tag", 1, {"log": "cut short"}])
    client.send(["tag", 1, {"log": "whole"}], request[:-3])
    client.close()
    receiver.wait_until(lambda: receiver.incomplete_requests == 1, what="the cut request")
    assert receiver.values("log") == ["whole"]
    assert receiver.protocol_errors == []


def test_wait_for_gives_up_with_a_summary_of_what_arrived(receiver: ForwardReceiver) -> None:
    with pytest.raises(TimeoutError, match=r"for 1 events; events 0, messages 0.*protocol errors: none"):
        receiver.wait_for(1, timeout=0.01)


# ---- transports ----


def test_unix_socket_transport(tmp_path: Path) -> None:
    path = tmp_path / "fluentd.sock"
    with ForwardReceiver(unix_path=path) as receiver:
        assert receiver.address == f"unix://{path}"
        client = Client(receiver.address)
        client.send(["tag", 1, {"log": "over unix"}, {"chunk": CHUNK}])
        assert client.reply() == {"ack": CHUNK}
        assert receiver.values("log") == ["over unix"]
    assert not path.exists()


def test_tls_transport_with_a_client_that_trusts_the_ca(certificate: tuple[str, str, str]) -> None:
    cert, key, ca = certificate
    with ForwardReceiver(tls=(cert, key)) as receiver:
        assert receiver.address.startswith("tls://127.0.0.1:")
        client = Client(receiver.address, ca=ca)
        client.send(["tag", [[1, {"log": "over tls"}]], {"chunk": CHUNK}])
        assert client.reply() == {"ack": CHUNK}
        assert receiver.values("log") == ["over tls"]


def test_tls_client_that_does_not_trust_the_certificate_is_counted_as_a_handshake_failure(
    certificate: tuple[str, str, str],
) -> None:
    cert, key, _ = certificate
    with ForwardReceiver(tls=(cert, key)) as receiver:
        with pytest.raises(ssl.SSLCertVerificationError):
            Client(receiver.address, ca=None)
        receiver.wait_until(lambda: receiver.handshake_failures == 1, what="the failed handshake")
        assert receiver.connections == 0
        assert receiver.protocol_errors == []


def test_tls_and_unix_socket_together_are_rejected(certificate: tuple[str, str, str], tmp_path: Path) -> None:
    cert, key, _ = certificate
    with pytest.raises(ValueError, match="unix socket address cannot use TLS"):
        ForwardReceiver(unix_path=tmp_path / "s", tls=(cert, key))


# ---- lifecycle ----


def test_stop_closes_connections_and_leaves_no_thread() -> None:
    receiver = ForwardReceiver()
    receiver.start()
    receiver.start()  # idempotent
    client = Client(receiver.address)
    receiver.stop()
    assert client.read_to_end() == b""
    assert [thread for thread in threading.enumerate() if thread.name == "fluentd-receiver"] == []
    receiver.stop()  # idempotent


def test_start_after_stop_listens_on_the_same_address_and_refuses_in_between() -> None:
    with ForwardReceiver() as receiver:
        address = receiver.address
        receiver.stop()
        with pytest.raises(ConnectionRefusedError):
            Client(address)
        receiver.start()
        assert receiver.address == address
        send_and_wait(receiver, ["tag", 1, {"log": "back"}], events=1)


@pytest.mark.parametrize("transport", ["tcp", "unix", "tls"])
def test_restart_drops_connections_and_listens_again_on_the_same_address(
    transport: str, tmp_path: Path, certificate: tuple[str, str, str]
) -> None:
    cert, key, ca = certificate
    per_transport: dict[str, dict[str, Any]] = {"unix": {"unix_path": tmp_path / "s"}, "tls": {"tls": (cert, key)}}
    options = per_transport.get(transport, {})
    with ForwardReceiver(**options) as receiver:
        address = receiver.address
        before = Client(address, ca=ca)
        before.send(["tag", 1, {"log": "before"}, {"chunk": CHUNK}])
        assert before.reply() == {"ack": CHUNK}

        receiver.restart(down_for=0.05)
        assert receiver.address == address
        with pytest.raises((ConnectionError, ssl.SSLError)):
            before.send(["tag", 1, {"log": "lost"}, {"chunk": OTHER_CHUNK}])
            before.reply()

        after = Client(address, ca=ca)
        after.send(["tag", 1, {"log": "after"}, {"chunk": OTHER_CHUNK}])
        assert after.reply() == {"ack": OTHER_CHUNK}
        assert receiver.values("log") == ["before", "after"]
        assert receiver.connections == 2
        assert receiver.protocol_errors == []


# ---- failure injection ----


def test_refuse_closes_new_connections_without_reading(receiver: ForwardReceiver) -> None:
    receiver.refuse = True
    assert Client(receiver.address).read_to_end() == b""
    assert receiver.refused == 1
    assert receiver.connections == 0

    receiver.refuse = False
    send_and_wait(receiver, ["tag", 1, {"log": "accepted"}], events=1)
    assert receiver.connections == 1


def test_reset_after_events_resets_once_after_the_nth_event_without_acking_it(receiver: ForwardReceiver) -> None:
    receiver.reset_after_events = 2
    client = Client(receiver.address)
    client.send(["tag", 1, {"log": "one"}, {"chunk": CHUNK}])
    assert client.reply() == {"ack": CHUNK}
    client.send(["tag", 1, {"log": "two"}, {"chunk": OTHER_CHUNK}])
    with pytest.raises(ConnectionResetError):
        client.reply()
    assert receiver.values("log") == ["one", "two"]
    assert receiver.resets == 1
    assert receiver.acks_sent == 1
    assert receiver.reset_after_events is None  # once

    again = Client(receiver.address)
    again.send(["tag", 1, {"log": "three"}, {"chunk": CHUNK}])
    assert again.reply() == {"ack": CHUNK}


def test_reset_after_events_counts_every_event_of_a_request(receiver: ForwardReceiver) -> None:
    receiver.reset_after_events = 2
    client = Client(receiver.address)
    client.send(["tag", [[1, {"log": "a"}], [1, {"log": "b"}], [1, {"log": "c"}]], {"chunk": CHUNK}])
    with pytest.raises(ConnectionResetError):
        client.reply()
    assert receiver.values("log") == ["a", "b", "c"]  # the request holding the 2nd event is kept whole


def test_reset_after_zero_events_drops_the_next_request(receiver: ForwardReceiver) -> None:
    receiver.reset_after_events = 0
    client = Client(receiver.address)
    client.send(["tag", 1, {"log": "dropped"}, {"chunk": CHUNK}])
    with pytest.raises(ConnectionResetError):
        client.reply()
    assert receiver.events == []
    assert receiver.messages == 0
    assert receiver.resets == 1


def test_ack_delay_holds_the_ack_back_after_accepting_the_event(receiver: ForwardReceiver) -> None:
    receiver.ack_delay = 3600
    client = Client(receiver.address)
    client.send(["tag", 1, {"log": "accepted"}, {"chunk": CHUNK}])
    receiver.wait_for(1)
    assert receiver.acks_sent == 0
    receiver.stop()
    assert client.read_to_end() == b""  # the connection ended before any ack


def test_ack_delay_still_sends_the_ack(receiver: ForwardReceiver) -> None:
    receiver.ack_delay = 0.01
    client = Client(receiver.address)
    client.send(["tag", 1, {"log": "x"}, {"chunk": CHUNK}])
    assert client.reply() == {"ack": CHUNK}


def test_drop_acks_accepts_requests_but_never_acknowledges_them(receiver: ForwardReceiver) -> None:
    receiver.drop_acks = True
    client = Client(receiver.address)
    client.send(["tag", 1, {"log": "unacked"}, {"chunk": CHUNK}])
    receiver.wait_for(1)
    receiver.drop_acks = False
    client.send(["tag", 1, {"log": "acked"}, {"chunk": OTHER_CHUNK}])
    assert client.reply() == {"ack": OTHER_CHUNK}  # nothing came for the first request
    assert receiver.values("log") == ["unacked", "acked"]
    assert receiver.acks_sent == 1


# ---- counting, in this process and in another ----


def every_mode_with_13_events() -> list[object]:
    return [
        ["tag", 1, {"log": "x"}],
        ["tag", [[1, {"log": "x"}]] * 3, {"size": 3}],
        ["tag", packed_entries(*[[event_time(1, 2), {"log": "x"}]] * 5), {"chunk": CHUNK}],
        pack_with_raw_strings(["tag", packed_entries([1, {"log": "x"}])]),  # a packed stream sent as str
        [
            "tag",
            gzip.compress(packed_entries([1, {"log": "x"}])) + gzip.compress(packed_entries(*[[1, {"n": 1}]] * 2)),
            {"compressed": "gzip", "chunk": OTHER_CHUNK, "size": 3},
        ],
    ]


def test_counting_receiver_counts_every_mode_and_still_acks() -> None:
    with CountingReceiver() as receiver:
        client = Client(receiver.address)
        client.send(*every_mode_with_13_events())
        assert client.reply() == {"ack": CHUNK}
        assert client.reply() == {"ack": OTHER_CHUNK}
        assert receiver.wait_for_count(13) == 13
        assert receiver.messages == 5
        assert receiver.events == []
        assert receiver.protocol_errors == []


def test_counting_receiver_still_reports_a_size_mismatch() -> None:
    with CountingReceiver() as receiver:
        client = Client(receiver.address)
        client.send(["tag", packed_entries([1, {}], [1, {}]) + b"\x93", {"size": 2}])
        assert client.read_to_end() == b""
        [error] = receiver.protocol_errors
        assert "the entries end with 1 bytes" in error


@pytest.mark.parametrize("how", ["sigterm", "eof"])
def test_receiver_process_prints_its_totals_when_stopped(how: Literal["sigterm", "eof"]) -> None:
    process = ReceiverProcess(count=True)
    process.start()
    try:
        client = Client(process.address)
        client.send(*every_mode_with_13_events())
        assert client.reply() == {"ack": CHUNK}
        assert client.reply() == {"ack": OTHER_CHUNK}
        assert process.totals()["events"] == 13
        client.close()
    finally:
        totals = process.stop(how)
    assert totals["events"] == 13
    assert totals["messages"] == 5
    assert totals["acks"] == 2
    assert totals["protocol_errors"] == []


def test_receiver_process_waits_until_it_has_counted_every_event() -> None:
    process = ReceiverProcess(count=True)
    process.start()
    try:
        client = Client(process.address)
        client.send(*[["tag", [[1, {"log": "x"}]] * 10]] * 1000)  # no chunk: nothing to wait for but the count
        assert process.wait_for_count(10_000)["events"] == 10_000
        with pytest.raises(TimeoutError, match="for 10001 events"):
            process.wait_for_count(10_001, timeout=0.01)
        client.close()
    finally:
        totals = process.stop()
    assert totals["events"] == 10_000
    assert totals["messages"] == 1000


def test_the_strict_receiver_runs_as_a_process_too() -> None:
    process = ReceiverProcess(count=False)
    process.start()
    try:
        client = Client(process.address)
        client.send(["tag", 1, {"log": "x"}], ["tag", 1, "not a record"])
        assert client.read_to_end() == b""
    finally:
        totals = process.stop()
    assert totals["events"] == 1
    assert totals["protocol_errors"] == ["the record must be a msgpack map, got str"]
