"""Codec, framing and dispatch of the stream server's wire protocol (no network)."""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod

import msgpack
import pytest

from xtremehub import errors
from xtremehub.errors import ProtocolError, StreamError
from xtremehub.streams.controller.model import (
    ReaderGroupConfig,
    RetentionPolicy,
    ScalingPolicy,
    SegmentRange,
    StreamConfig,
    StreamCut,
    StreamInfo,
)
from xtremehub.streams.segmentstore.contract import ReadResult, SegmentInfo
from xtremehub.streams.server.dispatch import Dispatcher, remote_methods
from xtremehub.streams.wire import (
    HEADER_SIZE,
    MessageType,
    WireCodec,
    decode_error,
    decode_header,
    encode_error,
    encode_frame,
)


@pytest.fixture
def codec() -> WireCodec:
    return WireCodec.default()


def test_nested_dataclasses_and_tuples_round_trip(codec: WireCodec) -> None:
    seg = SegmentRange("s/st/0.#epoch.0", 0, 0, 0.0, 0.5)
    info = StreamInfo(
        "s",
        "st",
        StreamConfig(ScalingPolicy.by_event_rate(10), RetentionPolicy.by_size(1 << 20)),
        False,
        3,
        (seg, SegmentRange("s/st/1.#epoch.0", 1, 0, 0.5, 1.0)),
        1.5,
    )
    value = {
        "info": info,
        "cut": StreamCut("s", "st", (("s/st/0.#epoch.0", 42),)),
        "group": ReaderGroupConfig(("s/st",), "tail"),
        "pairs": [(0.0, 0.5), (0.5, 1.0)],
        "raw": b"\x00\xff" * 10,
        7: None,
    }
    back = codec.decode(codec.encode(value))
    assert back == value
    assert isinstance(back["pairs"][0], tuple)
    assert isinstance(back["info"].active_segments, tuple)


def test_decoded_dataclasses_are_validated(codec: WireCodec) -> None:
    # A ScalingPolicy with min_segments=0 is refused by its constructor on the receiving side.
    forged = msgpack.packb(
        msgpack.ExtType(2, msgpack.packb(["ScalingPolicy", "fixed", 0, 0.0, 2, 10.0, 5.0])), use_bin_type=True
    )
    with pytest.raises(errors.InvalidStreamArgument, match="min_segments"):
        codec.decode(forged)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # never-used msgpack byte
        b"\x92\x01",  # array of 2 with one item
        msgpack.packb(msgpack.ExtType(2, msgpack.packb(["os.system", "x"]))),  # class not on the wire
        msgpack.packb(msgpack.ExtType(9, msgpack.packb([1]))),  # unknown extension
        msgpack.packb(msgpack.ExtType(2, msgpack.packb(["SegmentInfo", 1]))),  # missing fields
        msgpack.packb(msgpack.ExtType(1, b"\x01")),  # tuple ext not holding an array
    ],
)
def test_bad_payloads_raise_protocol_error(codec: WireCodec, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(payload)


def test_unknown_objects_are_not_encoded(codec: WireCodec) -> None:
    with pytest.raises(TypeError, match="cannot send a set"):
        codec.encode({1, 2})


@pytest.mark.parametrize("name", [n for n in errors.__all__ if issubclass(getattr(errors, n), StreamError)])
def test_stream_errors_come_back_as_the_same_class(codec: WireCodec, name: str) -> None:
    cls = getattr(errors, name)
    back = decode_error(codec.decode(codec.encode(encode_error(cls(f"{name} happened")))))
    assert type(back) is cls
    assert str(back) == f"{name} happened"


def test_storage_errors_and_foreign_errors(codec: WireCodec) -> None:
    back = decode_error(encode_error(errors.StorageUnavailable("s3://b/k", detail="refused")))
    assert isinstance(back, errors.StorageUnavailable)
    assert "s3://b/k: refused" in str(back)
    assert type(decode_error(encode_error(ValueError("bad")))) is ValueError
    foreign = decode_error(encode_error(KeyError("k")))
    assert type(foreign) is StreamError
    assert "KeyError" in str(foreign)
    assert isinstance(decode_error("nonsense"), ProtocolError)
    # A name outside errors.__all__ is never looked up as a class.
    assert type(decode_error({"error": "__builtins__", "message": "x"})) is StreamError


def test_frame_header_round_trip_and_limits() -> None:
    frame = encode_frame(MessageType.APPEND, 0xFFFFFFFF, b"abc", flags=5)
    header = decode_header(frame[:HEADER_SIZE])
    assert (header.version, header.type, header.flags, header.request_id) == (1, MessageType.APPEND, 5, 0xFFFFFFFF)
    assert frame[HEADER_SIZE:] == b"abc"
    assert header.payload_length == 3
    unknown = decode_header(struct.pack(">IBBHI", 8, 1, 0x55, 0, 1))
    assert unknown.type == 0x55
    with pytest.raises(ProtocolError, match="over the limit"):
        decode_header(struct.pack(">IBBHI", 1001, 1, 1, 0, 1), max_frame=1000)
    with pytest.raises(ProtocolError, match="shorter"):
        decode_header(struct.pack(">IBBHI", 3, 1, 1, 0, 1))


class _Contract(ABC):
    @abstractmethod
    def info(self, segment: str) -> SegmentInfo: ...

    @abstractmethod
    def read(self, segment: str, offset: int, *, wait: float = 0.0) -> ReadResult: ...

    @abstractmethod
    def close(self) -> None: ...


class _Impl(_Contract):
    def __init__(self) -> None:
        self.closed = False

    def info(self, segment: str) -> SegmentInfo:
        return SegmentInfo(segment, 0, 10, False)

    def read(self, segment: str, offset: int, *, wait: float = 0.0) -> ReadResult:
        return ReadResult(segment, offset, b"x" * int(wait))

    def close(self) -> None:
        self.closed = True

    def helper(self) -> str:
        return "not remote"


def test_dispatcher_calls_only_contract_methods_with_valid_arguments() -> None:
    impl = _Impl()
    d = Dispatcher({"t": (impl, _Contract)})
    assert remote_methods(_Contract) == {"info", "read"}
    assert d.call("t", "info", ["seg"], {}) == SegmentInfo("seg", 0, 10, False)
    assert d.call("t", "read", ["seg", 3], {"wait": 2}).data == b"xx"
    for method in ("close", "helper", "__class__", 5):
        with pytest.raises(ProtocolError, match="no remote method"):
            d.call("t", method, [], {})
    assert not impl.closed
    with pytest.raises(ProtocolError, match="unknown call target"):
        d.call("other", "info", ["seg"], {})
    with pytest.raises(ProtocolError, match=r"t\.info"):
        d.call("t", "info", ["a", "b"], {})
    with pytest.raises(ProtocolError, match=r"t\.read"):
        d.call("t", "read", ["seg", 1], {"nope": 1})
    with pytest.raises(ProtocolError, match="arguments must be"):
        d.check("t", "info", "seg", {})
    with pytest.raises(TypeError, match="does not implement"):
        Dispatcher({"t": (object(), _Contract)})
