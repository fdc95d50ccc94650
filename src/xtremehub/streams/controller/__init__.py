"""The stream controller: scopes, streams, segments, scaling, transactions, reader groups, retention."""

from xtremehub.streams.controller._controller import Controller
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import (
    MAX_EVENT_SIZE,
    Checkpoint,
    ReaderAssignment,
    ReaderGroupConfig,
    ReaderGroupSegment,
    ReaderGroupState,
    RetentionPolicy,
    ScalingPolicy,
    SegmentRange,
    StreamConfig,
    StreamCut,
    StreamEncryption,
    StreamInfo,
    SuccessorInfo,
    TxnInfo,
    TxnSegment,
)

__all__ = [
    "MAX_EVENT_SIZE",
    "Checkpoint",
    "Controller",
    "ControllerContract",
    "ReaderAssignment",
    "ReaderGroupConfig",
    "ReaderGroupSegment",
    "ReaderGroupState",
    "RetentionPolicy",
    "ScalingPolicy",
    "SegmentRange",
    "StreamConfig",
    "StreamCut",
    "StreamEncryption",
    "StreamInfo",
    "SuccessorInfo",
    "TxnInfo",
    "TxnSegment",
]
