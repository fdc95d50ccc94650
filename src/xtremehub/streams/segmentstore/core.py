"""What the parts of one segment store share: configuration, WAL, tail cache, state and its lock.

The store (public API), its :class:`~xtremehub.streams.segmentstore.commit.CommitEngine`, its
:class:`~xtremehub.streams.segmentstore.admission.Admission` and its
:class:`~xtremehub.streams.segmentstore.tierhost.StoreTieringHost` each hold the same
:class:`StoreCore`. Readers look at ``state`` under ``lock``; only the holder of the commit
lock changes it (under ``lock`` as well, notifying ``cond`` for tail readers).
"""

from __future__ import annotations

import threading

from xtremehub.errors import StoreClosed
from xtremehub.streams.segmentstore.cache import TailCache
from xtremehub.streams.segmentstore.config import SegmentStoreConfig
from xtremehub.streams.segmentstore.state import StoreState
from xtremehub.streams.segmentstore.wal import WalFiles

__all__ = ["StoreCore"]


class StoreCore:
    """The shared parts of one store and its closed / failed flags."""

    def __init__(self, config: SegmentStoreConfig, wal: WalFiles, cache: TailCache, state: StoreState) -> None:
        self.config = config
        self.wal = wal
        self.cache = cache
        self.state = state
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.closed = False
        #: The WAL write error that stopped the store (it then refuses every change).
        self.failed: BaseException | None = None

    def check_open(self) -> None:
        """Raise :class:`~xtremehub.errors.StoreClosed` once the store is closed or stopped by a disk error."""
        if self.failed is not None:
            raise StoreClosed(f"segment store {self.config.data_dir} stopped after a disk error: {self.failed}")
        if self.closed:
            raise StoreClosed(f"segment store {self.config.data_dir} is closed")
