"""A lazily fetched window of an object's bytes, read with (concurrent) ranged GETs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xtremehub.storage import open_store

if TYPE_CHECKING:
    from xtremehub.config import Settings

__all__ = ["RangeSource"]

_PART = 8 * 1024 * 1024  # concurrent part size for the first, planned fetch
_MORE = 16 * 1024  # first increment past the plan; doubles up to _PART while streaming on


class RangeSource:
    """Sequential reader over ``[start, ...)`` of an object that fetches on demand.

    The first read fetches the planned range ``[start, planned_end)`` in concurrent
    parts; reads past it fetch small increments, so a slice whose last record
    straddles the plan costs little extra. ``fetched`` counts bytes transferred.
    ``settings`` are the storage settings to read with (default: this process's).
    """

    def __init__(self, url: str, size: int, start: int, planned_end: int, *, settings: Settings | None = None) -> None:
        self.url, self.size = url, size
        self.pos = start
        self._planned_end = min(max(planned_end, start), size)
        self._store, self._key = open_store(url, settings)
        self.fetched = 0
        self._more = _MORE

    def read(self) -> bytes:
        """The next block of bytes, or ``b""`` at the end of the object."""
        if self.pos >= self.size:
            return b""
        if self.pos < self._planned_end:
            end = self._planned_end
            ranges = [(a, min(a + _PART, end)) for a in range(self.pos, end, _PART)]
            data = b"".join(self._store.get_ranges(self._key, ranges))
        else:
            end = min(self.size, self.pos + self._more)
            self._more = min(2 * self._more, _PART)
            data = self._store.get_range(self._key, self.pos, end)
        self.fetched += len(data)
        self.pos += len(data)
        return data

    def seek(self, pos: int) -> None:
        """Continue reading at ``pos`` (bytes already fetched past it are fetched again)."""
        self.pos = pos

    def peek(self, pos: int, n: int) -> bytes:
        """``n`` bytes at ``pos`` without moving (one small ranged GET)."""
        if pos >= self.size:
            return b""
        data = self._store.get_range(self._key, pos, min(self.size, pos + n))
        self.fetched += len(data)
        return data
