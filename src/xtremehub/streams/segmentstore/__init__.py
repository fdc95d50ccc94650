"""Segment store: write-ahead log, cache, tiering to long-term storage, spill tier."""

from xtremehub.streams.segmentstore.contract import (
    AppendResult,
    ReadResult,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
)

__all__ = ["AppendResult", "ReadResult", "SegmentInfo", "SegmentStoreContract", "StoreStats"]
