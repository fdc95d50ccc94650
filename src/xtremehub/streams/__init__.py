"""Tiered stream store with Pravega semantics (embedded or as a server).

The public API: :class:`StreamManager` and the policies and values it takes and returns.
"""

from xtremehub.streams.client import (
    ByteStream,
    EventPointer,
    EventPosition,
    EventRead,
    EventStreamReader,
    EventStreamWriter,
    ReaderGroup,
    SegmentSlice,
    StreamManager,
    Transaction,
    TransactionalEventStreamWriter,
)
from xtremehub.streams.controller.model import (
    MAX_EVENT_SIZE,
    Checkpoint,
    RetentionPolicy,
    ScalingPolicy,
    StreamConfig,
    StreamCut,
    StreamEncryption,
    StreamInfo,
)

__all__ = [
    "MAX_EVENT_SIZE",
    "ByteStream",
    "Checkpoint",
    "EventPointer",
    "EventPosition",
    "EventRead",
    "EventStreamReader",
    "EventStreamWriter",
    "ReaderGroup",
    "RetentionPolicy",
    "ScalingPolicy",
    "SegmentSlice",
    "StreamConfig",
    "StreamCut",
    "StreamEncryption",
    "StreamInfo",
    "StreamManager",
    "Transaction",
    "TransactionalEventStreamWriter",
]
