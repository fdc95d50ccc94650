"""TIFF header bytes: fetched by range reads while tifffile parses, recorded, and replayed on workers.

Preprocessing parses the TIFF structure with tifffile through a :class:`HeaderReader`, a
seekable file object that fetches aligned blocks on demand (so only header blocks travel,
never tile data) and records the exact byte ranges tifffile read. Those few KiB are kept
in the index; a slice carries them and a worker re-opens the TIFF from them (``offline``),
which gives tifffile its decoders (compression, predictor, JPEG tables, colour space)
without another request.

Example:
    >>> from xtremehub.storage import open_store
    >>> store, key = open_store("mem://hdr/x")
    >>> _ = store.put(key, b"0123456789" * 10)
    >>> reader = HeaderReader(store, key, 100, block_size=16)
    >>> _ = reader.seek(20)
    >>> reader.read(4), reader.read(2), reader.fetched
    (b'0123', b'45', 16)
    >>> segments = reader.segments()
    >>> segments
    [(20, b'012345')]
    >>> replay = HeaderReader(store, key, 100, known=segments, offline=True)
    >>> _ = replay.seek(21)
    >>> replay.read(2), replay.fetched
    (b'12', 0)
"""

from __future__ import annotations

from collections.abc import Sequence

from xtremehub.errors import CorruptData, TruncatedData
from xtremehub.storage import RangeReader, Store

__all__ = ["HeaderReader", "merge_ranges"]

DEFAULT_BLOCK = 16 * 1024  # GDAL also starts with 16 KiB: a COG's IFDs normally fit in it
MIN_FETCH = 4096


def merge_ranges(ranges: Sequence[tuple[int, int]], gap: int = 0) -> list[tuple[int, int]]:
    """Sort half-open ranges and merge those that overlap or lie at most ``gap`` bytes apart.

    Example:
        >>> merge_ranges([(10, 20), (0, 5), (5, 8), (30, 40)], gap=1)
        [(0, 8), (10, 20), (30, 40)]
    """
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class HeaderReader(RangeReader):
    """A seekable reader of one object that records the byte ranges read, fetching little.

    The first read fetches ``block_size`` bytes (the IFDs of a COG are there); a later read
    outside what was fetched fetches ``min_fetch`` bytes or more from where it starts (an IFD
    elsewhere, a tile-offset array, the first bytes of a JPEG tile). ``fetched`` counts the
    bytes transferred; :meth:`segments` returns the merged ranges read, with their bytes.
    With ``known`` segments and ``offline=True`` it serves only those and fetches nothing
    (a worker re-opening the header kept in the index).
    """

    def __init__(
        self,
        store: Store,
        key: str,
        size: int,
        *,
        block_size: int = DEFAULT_BLOCK,
        min_fetch: int = MIN_FETCH,
        known: Sequence[tuple[int, bytes]] = (),
        offline: bool = False,
    ) -> None:
        super().__init__(store, key, size=size)
        self._block, self._min, self._offline = block_size, min_fetch, offline
        self._have: list[tuple[int, bytes]] = list(known)
        self._asked: list[tuple[int, int]] = []
        self.fetched = 0

    def _bytes_at(self, start: int, end: int) -> bytes:
        self._asked.append((start, end))
        for offset, data in self._have:
            if offset <= start and end <= offset + len(data):
                return data[start - offset : end - offset]
        if self._offline:
            raise CorruptData(
                self.name, start, f"TIFF header bytes [{start}, {end}) are not in the index; run preprocess() again"
            )
        hi = min(self.size, max(end, start + (self._min if self._have else self._block)))
        data = self._store.get_range(self._key, start, hi)
        if len(data) < end - start:
            raise TruncatedData(self.name, start + len(data), "the object ended while reading the TIFF header")
        self.fetched += len(data)
        self._have.append((start, data))
        return data[: end - start]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        end = min(self.tell() + len(buffer), self.size)
        if end <= self.tell():
            return 0
        data = self._bytes_at(self.tell(), end)
        memoryview(buffer)[: len(data)] = data
        self.seek(end)
        return len(data)

    def readall(self) -> bytes:
        return self.read(max(0, self.size - self.tell())) or b""

    def segments(self) -> list[tuple[int, bytes]]:
        """The merged byte ranges read so far, with their content."""
        asked = self._asked
        out = [(a, self._bytes_at(a, b)) for a, b in merge_ranges(asked)]
        self._asked = asked
        return out
