"""TIFF header bytes: fetched by range reads while tifffile parses, recorded, and replayed on workers.

Preprocessing parses the TIFF structure with tifffile through a :class:`HeaderReader`, a
seekable file object that fetches aligned blocks on demand (so only header blocks travel,
never tile data) and records the exact byte ranges tifffile read. Those few KiB are kept
in the index; a slice carries them and a worker re-opens the TIFF from them with a
:class:`SparseFile`, which gives tifffile its decoders (compression, predictor, JPEG tables,
colour space) without another request.

Example:
    >>> data = b"0123456789" * 10
    >>> reader = HeaderReader(lambda a, b: data[a:b], len(data), "mem://x", block_size=16)
    >>> _ = reader.seek(20)
    >>> reader.read(4), reader.read(2), reader.fetched
    (b'0123', b'45', 16)
    >>> segments = reader.segments()
    >>> segments
    [(20, b'012345')]
    >>> sparse = SparseFile(segments, len(data), "mem://x")
    >>> _ = sparse.seek(21)
    >>> sparse.read(2)
    b'12'
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from xtremehub.errors import CorruptData, TruncatedData

__all__ = ["HeaderReader", "SparseFile", "merge_ranges"]

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


class _SeekableRaw(io.RawIOBase):
    """Position bookkeeping shared by the two readers."""

    def __init__(self, size: int, url: str) -> None:
        super().__init__()
        self._size, self._pos, self.name = size, 0, url

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"{self.name}: negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def _bytes_at(self, start: int, end: int) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        end = min(self._pos + len(buffer), self._size)
        if end <= self._pos:
            return 0
        data = self._bytes_at(self._pos, end)
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        return len(data)


class HeaderReader(_SeekableRaw):
    """Reads through ``fetch(start, end)``, recording what was asked for.

    The first read fetches ``block_size`` bytes (the IFDs of a COG are there); a later read
    outside what was fetched fetches ``min_fetch`` bytes or more from where it starts (an IFD
    elsewhere, a tile-offset array, the first bytes of a JPEG tile). ``fetched`` counts the
    bytes transferred; :meth:`segments` returns the merged ranges the parser read, with their bytes.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        size: int,
        url: str,
        *,
        block_size: int = DEFAULT_BLOCK,
        min_fetch: int = MIN_FETCH,
    ) -> None:
        super().__init__(size, url)
        self._fetch, self._block, self._min = fetch, block_size, min_fetch
        self._have: list[tuple[int, bytes]] = []
        self._asked: list[tuple[int, int]] = []
        self.fetched = 0

    def _bytes_at(self, start: int, end: int) -> bytes:
        self._asked.append((start, end))
        for offset, data in self._have:
            if offset <= start and end <= offset + len(data):
                return data[start - offset : end - offset]
        hi = min(self._size, max(end, start + (self._min if self._have else self._block)))
        data = self._fetch(start, hi)
        if len(data) < end - start:
            raise TruncatedData(self.name, start + len(data), "the object ended while reading the TIFF header")
        self.fetched += len(data)
        self._have.append((start, data))
        return data[: end - start]

    def segments(self) -> list[tuple[int, bytes]]:
        """The merged byte ranges the parser read, with their content."""
        asked = self._asked
        out = [(a, self._bytes_at(a, b)) for a, b in merge_ranges(asked)]
        self._asked = asked
        return out


class SparseFile(_SeekableRaw):
    """A file of ``size`` bytes of which only ``segments`` are known; reading elsewhere is an error."""

    def __init__(self, segments: Sequence[tuple[int, bytes]], size: int, url: str) -> None:
        super().__init__(size, url)
        self._segments = sorted(segments)

    def _bytes_at(self, start: int, end: int) -> bytes:
        for offset, data in self._segments:
            if offset <= start and end <= offset + len(data):
                return data[start - offset : end - offset]
        raise CorruptData(
            self.name, start, f"TIFF header bytes [{start}, {end}) are not in the index; run preprocess() again"
        )
