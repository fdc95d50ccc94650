"""Segment store: write-ahead log, cache, tiering to long-term storage, spill tier.

Example:
    >>> import tempfile
    >>> from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
    >>> with SegmentStore(SegmentStoreConfig(data_dir=tempfile.mkdtemp())) as store:
    ...     store.create_segment("s")
    ...     store.append("s", b"event").offset
    True
    0
"""

from xtremehub.streams.segmentstore.config import SegmentStoreConfig
from xtremehub.streams.segmentstore.contract import (
    AppendResult,
    ReadResult,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
)
from xtremehub.streams.segmentstore.store import SegmentStore

__all__ = [
    "AppendResult",
    "ReadResult",
    "SegmentInfo",
    "SegmentStore",
    "SegmentStoreConfig",
    "SegmentStoreContract",
    "StoreStats",
]
