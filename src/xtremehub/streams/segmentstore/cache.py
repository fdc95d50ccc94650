"""The tail cache: recently appended bytes kept in memory for tail readers, within a budget.

Cached bytes hang off their :class:`~xtremehub.streams.segmentstore.state.Extent`; the cache
only keeps the insertion order and the byte count, and evicts the oldest extents first.
Evicted bytes are still in the WAL file (or in LTS), so eviction never loses data.

Example:
    >>> from xtremehub.streams.segmentstore.state import Extent
    >>> cache = TailCache(budget=8)
    >>> a, b = Extent(0, 5, file_id=1), Extent(5, 5, file_id=1)
    >>> cache.add(a, b"hello"); cache.add(b, b"world")
    >>> a.data, b.data, cache.bytes
    (None, b'world', 5)
"""

from __future__ import annotations

from collections import deque

from xtremehub.streams.segmentstore.state import Extent

__all__ = ["TailCache"]


class TailCache:
    """FIFO byte-budgeted cache of extent bytes (not thread-safe: used under the store lock)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self._order: deque[Extent] = deque()

    def add(self, ext: Extent, data: bytes) -> None:
        if not data or len(data) > self.budget:
            return
        ext.data = data
        self.bytes += len(data)
        self._order.append(ext)
        while self._order and (self.bytes > self.budget or self._order[0].data is None):
            self.drop(self._order.popleft())

    def drop(self, ext: Extent) -> None:
        """Forget an extent's bytes (evicted, tiered, truncated or deleted)."""
        if ext.data is not None:
            self.bytes -= len(ext.data)
            ext.data = None

    def clear(self) -> None:
        for ext in self._order:
            self.drop(ext)
        self._order.clear()
