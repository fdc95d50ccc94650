"""The stream server's wire protocol: framing and payload codec, shared by server and client."""

from xtremehub.streams.wire.codec import WireCodec, decode_error, encode_error
from xtremehub.streams.wire.frames import (
    CONTROLLER_TARGET,
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    MAGIC,
    MAX_BATCH_EVENTS,
    MESSAGE_VERSION,
    PREVIOUS_NUMBER_VERSION,
    PROTOCOL_VERSION,
    STORE_TARGET,
    SUPPORTED_VERSIONS,
    FrameHeader,
    MessageType,
    decode_header,
    encode_frame,
)

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
    "WireCodec",
    "decode_error",
    "decode_header",
    "encode_error",
    "encode_frame",
]
