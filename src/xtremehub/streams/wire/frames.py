"""Framing of the stream server's wire protocol (see ``docs/streams-protocol.md``).

Every message is one frame: a 12-byte header followed by a payload::

    0        4        5        6        8                12
    +--------+--------+--------+--------+----------------+---------------
    | length | version|  type  | flags  |   request id   | payload ...
    +--------+--------+--------+--------+----------------+---------------
      u32 BE    u8       u8      u16 BE       u32 BE       length - 8 bytes

``length`` counts every byte after itself (header rest + payload), so a reader needs exactly
one 4-byte read to know how much follows. Requests carry a client-chosen request id and the
answer carries the same id, so a client keeps many requests in flight on one connection
(pipelining) and answers may come back in any order.

Example:
    >>> frame = encode_frame(MessageType.PING, 7, b"hi")
    >>> header = decode_header(frame[:HEADER_SIZE])
    >>> header.type, header.request_id, header.payload_length
    (<MessageType.PING: 48>, 7, 2)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from xtremehub.errors import ProtocolError

__all__ = [
    "CONTROLLER_TARGET",
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_BATCH_EVENTS",
    "MESSAGE_VERSION",
    "PREVIOUS_NUMBER_VERSION",
    "PROTOCOL_VERSION",
    "STORE_TARGET",
    "SUPPORTED_VERSIONS",
    "FrameHeader",
    "MessageType",
    "decode_header",
    "encode_frame",
]

#: Version of the frame layout and message set this code speaks (2: adds APPEND_BATCH; 3: adds
#: the optional previous event number to APPEND and to each APPEND_BATCH batch, see
#: ``PREVIOUS_NUMBER_VERSION``).
PROTOCOL_VERSION = 3
#: Versions this code can negotiate in HELLO (newest first); version 1 and 2 peers keep working.
SUPPORTED_VERSIONS = (3, 2, 1)
#: The negotiated version from which APPEND may carry a 6th field and an APPEND_BATCH batch a
#: 4th: the writer's previous event number on the segment (the store refuses a gap). The frames
#: keep the version of their message type (a version 2 frame with one more field).
PREVIOUS_NUMBER_VERSION = 3
#: Most events one APPEND_BATCH may carry (a client splits larger batches).
MAX_BATCH_EVENTS = 65536
#: First bytes of every HELLO payload, so a stray client (HTTP, Redis...) is told apart at once.
MAGIC = b"XHUB"
#: Largest frame accepted by default: an 8 MiB event, its framing and room for a large read.
DEFAULT_MAX_FRAME = 32 * 1024 * 1024

#: CALL target names: the segment store and the controller.
STORE_TARGET = "store"
CONTROLLER_TARGET = "controller"

_HEADER = struct.Struct(">IBBHI")
HEADER_SIZE = _HEADER.size
_AFTER_LENGTH = HEADER_SIZE - 4


class MessageType(IntEnum):
    """The message types; answers to a request share its request id."""

    HELLO = 0x01
    HELLO_OK = 0x02
    GOODBYE = 0x03
    #: Generic call of a contract method by name (control plane).
    CALL = 0x10
    RESULT = 0x11
    #: Hot path: durable append, answered by APPENDED.
    APPEND = 0x20
    APPENDED = 0x21
    #: Hot path: segment read (with long-poll wait at the tail), answered by DATA.
    READ = 0x22
    DATA = 0x23
    #: Hot path (version 2): many events of one writer to one segment, answered by APPENDED_BATCH.
    APPEND_BATCH = 0x24
    APPENDED_BATCH = 0x25
    PING = 0x30
    PONG = 0x31
    ERROR = 0x7F


_KNOWN_TYPES = frozenset(int(t) for t in MessageType)
#: The protocol version that introduced a message type (1 when not listed). A frame carries the
#: version of its message, so a version 1 peer never sees a version 2 frame it did not ask for.
MESSAGE_VERSION: dict[MessageType, int] = {MessageType.APPEND_BATCH: 2, MessageType.APPENDED_BATCH: 2}


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A decoded frame header; ``type`` is an int when the type is unknown to this version."""

    version: int
    type: MessageType | int
    flags: int
    request_id: int
    payload_length: int


def encode_frame(msg_type: MessageType, request_id: int, payload: bytes, *, flags: int = 0) -> bytes:
    """One frame: header (version: the one that introduced ``msg_type``) and payload."""
    version = MESSAGE_VERSION.get(msg_type, 1)
    return _HEADER.pack(_AFTER_LENGTH + len(payload), version, msg_type, flags, request_id) + payload


def decode_header(raw: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> FrameHeader:
    """Parse the 12 header bytes; ``ProtocolError`` when the length cannot be a frame.

    A bad length means the stream of frames is lost (the reader cannot find the next frame),
    so callers close the connection after answering. Unknown types and versions keep framing
    intact and are rejected per frame by the caller.

    Example:
        >>> decode_header(b"GET / HTTP/1.1")
        Traceback (most recent call last):
        ...
        xtremehub.errors.ProtocolError: frame length 1195725856 is over the limit of 33554432 bytes
    """
    length, version, msg_type, flags, request_id = _HEADER.unpack_from(raw)
    if length < _AFTER_LENGTH:
        raise ProtocolError(f"frame length {length} is shorter than the {_AFTER_LENGTH}-byte header rest")
    if length > max_frame:
        raise ProtocolError(f"frame length {length} is over the limit of {max_frame} bytes")
    typ: MessageType | int = MessageType(msg_type) if msg_type in _KNOWN_TYPES else msg_type
    return FrameHeader(version, typ, flags, request_id, length - _AFTER_LENGTH)
