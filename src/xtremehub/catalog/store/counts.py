"""Search counts cached per catalog generation: never older than the catalog a search reads.

The database increments ``catalog_state.generation`` in every transaction that changes a
dataset or its tags (triggers, migration 0002), whichever process or connection writes. A
search reads the generation in the same snapshot as its page; counts cached under that
generation were computed over exactly that catalog, so a hit is always current, and a write
anywhere makes every older entry unreachable (they age out of the LRU).

Example:
    >>> cache = CountCache(size=2)
    >>> cache.put((7, "q"), Counts(12, False, {}, False))
    >>> cache.get((7, "q")).total, cache.get((8, "q"))
    (12, None)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

__all__ = ["CountCache", "Counts"]


@dataclass(frozen=True)
class Counts:
    """The total and facet counts of one query at one generation."""

    total: int
    total_is_lower_bound: bool
    facets: Mapping[str, Mapping[str, int]]
    facets_are_lower_bounds: bool


class CountCache:
    """A thread-safe LRU of :class:`Counts` keyed by ``(generation, query key)``."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Counts] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Counts | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, counts: Counts) -> None:
        with self._lock:
            self._items[key] = counts
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
