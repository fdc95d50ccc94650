"""Windows of a COG: slices aligned to tiles (or strips), fetched by coalesced ranged GETs and decoded.

A :class:`COGSlice` names the blocks (tiles or strips) of one window at one level, with
their offsets and byte counts, and carries the few KiB of TIFF header that give tifffile
its decoder. ``get()`` fetches exactly those blocks (adjacent ones in one request, all
requests concurrently), decodes them and returns a :class:`RasterWindow`: the pixels as a
``(bands, rows, cols)`` array plus the window's georeferencing.

Strategies: :func:`partition_grid` (``n_rows`` x ``n_cols`` windows, or windows of
``window_tiles`` tiles, at any overview ``level``) and :func:`partition_strips` (full-width
windows: rows of tiles, or groups of strips for TIFFs that are not tiled). Every block of
the level is in exactly one window.

Example:
    >>> import numpy as np, tifffile, io
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.raster import COG
    >>> pixels = np.arange(40 * 50, dtype="uint16").reshape(40, 50)
    >>> buf = io.BytesIO()
    >>> tifffile.imwrite(buf, pixels, tile=(16, 16), compression="zlib")
    >>> _ = storage.put("mem://cogslice/a.tif", buf.getvalue())
    >>> co = CloudObject.from_path(COG, "mem://cogslice/a.tif").preprocess()
    >>> windows = [s.get() for s in co.partition("grid", n_rows=2, n_cols=2)]
    >>> [(w.row, w.col, w.data.shape) for w in windows]
    [(0, 0, (1, 32, 32)), (0, 32, (1, 32, 18)), (32, 0, (1, 8, 32)), (32, 32, (1, 8, 18))]
    >>> int(sum(w.data.sum() for w in windows)) == int(pixels.sum())
    True
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub.connectors.base import DataSlice
from xtremehub.connectors.formats.geo.cog_georef import GeoReference
from xtremehub.connectors.formats.geo.cog_header import HeaderReader, merge_ranges
from xtremehub.connectors.formats.geo.cog_layout import IndexView, Level, open_level, parse_tiff
from xtremehub.errors import ConfigError, CorruptData, TruncatedData
from xtremehub.storage import Store
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

if TYPE_CHECKING:
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = ["COGSlice", "RasterWindow", "partition_grid", "partition_strips"]

log = logging.getLogger(__name__)

_DECODE_THREADS = 4
_THREADED_FROM = 4  # blocks per window from which decoding uses threads


@functools.lru_cache(maxsize=16)
def _decoder(
    url: str, size: int, level: int, mask_page: int, header: tuple[tuple[int, bytes], ...], access: StoreAccess
) -> tuple[Any, bytes | None]:
    """tifffile's decode function (and JPEG tables) for ``level`` (or a mask page), from the header
    bytes in the slice. Cached per process: the windows of one object a worker evaluates share one parse.
    """
    store, key = access.open(url)
    reader = HeaderReader(store, key, size, known=header, offline=True)
    with parse_tiff(reader, url, size) as tif:
        page = open_level(tif, level, mask_page)
        return page.decode, page.jpegtables


def _name(lv: Level, seg: int) -> str:
    """How an error names a block: level, tile or strip, index, row and column."""
    per_plane = lv.blocks_down * lv.blocks_across
    row, col = divmod(seg % per_plane, lv.blocks_across)
    kind = ("mask " if lv.page >= 0 else "") + ("tile" if lv.tiled else "strip")
    return f"level {lv.level} {kind} {seg} (row {row}, col {col})"


@dataclass(frozen=True, eq=False)
class RasterWindow:
    """Pixels of one window, ``data`` shaped ``(bands, rows, cols)``, and where they lie.

    ``row``/``col`` locate the window in its ``level``; ``bytes_fetched`` is what ``get()`` transferred.
    """

    data: np.ndarray
    georef: GeoReference
    level: int
    row: int
    col: int
    nodata: float | int | None = None
    bytes_fetched: int = 0
    #: ``(rows, cols)``, True where valid, from the TIFF's internal mask; None without one
    mask: np.ndarray | None = None

    @property
    def transform(self) -> tuple[float, float, float, float, float, float] | None:
        return self.georef.transform

    @property
    def epsg(self) -> int | None:
        return self.georef.epsg

    @property
    def crs(self) -> str | None:
        return self.georef.crs


@dataclass(frozen=True)
class COGSlice(DataSlice):
    """One window: the blocks ``(segment index, offset, byte count)`` covering pixels
    ``[row, row + height) x [col, col + width)`` of ``level``."""

    url: str
    object_size: int
    header: tuple[tuple[int, bytes], ...]
    level: Level
    row: int
    col: int
    height: int
    width: int
    blocks: tuple[tuple[int, int, int], ...]
    georef: GeoReference
    nodata: float | int | None = None
    coalesce_gap: int = 0
    #: the level's internal mask (GDAL's per-dataset mask) and its blocks covering the window
    mask: Level | None = None
    mask_blocks: tuple[tuple[int, int, int], ...] = ()
    #: the object's settings (they travel to workers without credentials)
    access: StoreAccess = PROCESS_DEFAULTS

    @property
    def byte_count(self) -> int:
        """Sum of the byte counts of the window's blocks and mask blocks (what ``get()`` fetches)."""
        return sum(count for _, _, count in (*self.blocks, *self.mask_blocks))

    def ranges(self, blocks: Sequence[tuple[int, int, int]] | None = None) -> list[tuple[int, int]]:
        """The byte ranges requested for ``blocks`` (default: the image's): sorted, adjacent ones merged."""
        blocks = self.blocks if blocks is None else blocks
        return merge_ranges([(off, off + n) for _, off, n in blocks if n > 0], self.coalesce_gap)

    def _fetch(
        self, store: Store, key: str, lv: Level, blocks: Sequence[tuple[int, int, int]]
    ) -> tuple[dict[int, bytes], int]:
        ranges = self.ranges(blocks)
        parts = store.get_ranges(key, ranges) if ranges else []
        starts = [a for a, _ in ranges]
        out: dict[int, bytes] = {}
        for seg, off, n in blocks:
            if n == 0:
                continue
            k = bisect.bisect_right(starts, off) - 1
            part = parts[k]
            lo = off - starts[k]
            if lo + n > len(part):
                raise TruncatedData(
                    self.url, off, f"{_name(lv, seg)}: the object ends inside the block", "uncompressed"
                )
            out[seg] = part[lo : lo + n]
        return out, sum(len(p) for p in parts)

    def _read(self, store: Store, key: str, lv: Level, blocks: Sequence[tuple[int, int, int]], out: np.ndarray) -> int:
        """Fetch, decode and place ``blocks`` of ``lv`` into ``out``; returns the bytes fetched."""
        raw, fetched = self._fetch(store, key, lv, blocks)
        decode, tables = _decoder(self.url, self.object_size, lv.level, lv.page, self.header, self.access)
        offsets = {seg: off for seg, off, _ in blocks}

        def one(seg: int) -> tuple[Any, Any]:
            try:
                array, where, _ = decode(raw[seg], seg, jpegtables=tables)
            except Exception as exc:  # imagecodecs, zlib and tifffile raise many types
                raise CorruptData(
                    self.url, offsets[seg], f"{_name(lv, seg)} cannot be decoded ({lv.compression}): {exc}"
                ) from exc
            return array, where

        segs = sorted(raw)
        if len(segs) >= _THREADED_FROM:  # decoders release the GIL; threads cost ~1 ms each to start
            with ThreadPoolExecutor(min(_DECODE_THREADS, len(segs)), thread_name_prefix="xhub-cog") as pool:
                decoded = list(pool.map(one, segs))
        else:
            decoded = [one(seg) for seg in segs]
        for array, (plane, _, top, left, _) in decoded:
            self._place(out, array, plane if lv.planar_separate else -1, top, left)
        return fetched

    def get(self) -> RasterWindow:
        store, key = self.access.open(self.url)
        lv = self.level
        fill = self.nodata if self.nodata is not None else 0
        out = np.full((lv.bands, self.height, self.width), fill, dtype=np.dtype(lv.dtype))
        fetched = self._read(store, key, lv, self.blocks, out)
        mask = None
        if self.mask is not None:
            valid = np.zeros((1, self.height, self.width), dtype=np.uint8)
            fetched += self._read(store, key, self.mask, self.mask_blocks, valid)
            mask = valid[0] != 0
        return RasterWindow(out, self.georef, lv.level, self.row, self.col, self.nodata, fetched, mask)

    def _place(self, out: np.ndarray, array: np.ndarray, plane: int, top: int, left: int) -> None:
        """Copy the part of a decoded block ``(depth, rows, cols, samples)`` that lies in the window
        (into band ``plane``, or all bands for ``-1``)."""
        r0, r1 = max(top, self.row), min(top + array.shape[1], self.row + self.height)
        c0, c1 = max(left, self.col), min(left + array.shape[2], self.col + self.width)
        if r1 <= r0 or c1 <= c0:
            return
        piece = array[0, r0 - top : r1 - top, c0 - left : c1 - left, :]
        bands = slice(plane, plane + 1) if plane >= 0 else slice(None)
        out[bands, r0 - self.row : r1 - self.row, c0 - self.col : c1 - self.col] = np.moveaxis(piece, -1, 0)

    def iter_chunks(self) -> Iterator[bytes]:
        """The window's pixels, band after band, C order, native byte order."""
        data = self.get().data
        for band in data:
            yield band.tobytes()

    def to_file(self, path: str | Path) -> Path:
        """Write the window as a tiled GeoTIFF (its georeferencing included)."""
        from xtremehub.connectors.formats.geo.cog_write import write_cog

        window = self.get()
        target = Path(path)
        write_cog(str(target), window.data, window.georef, nodata=window.nodata)
        return target


def _groups(total: int, count: int | None, size: int | None, what: str) -> list[tuple[int, int]]:
    """Split ``range(total)`` into ``count`` balanced groups, or groups of ``size``."""
    if size is not None:
        if size < 1:
            raise ConfigError(f"{what} window size must be >= 1 block")
        return [(a, min(a + size, total)) for a in range(0, total, size)]
    n = min(max(1, count or 1), total)
    if count is not None and count < 1:
        raise ConfigError(f"{what} window count must be >= 1")
    bounds = [round(i * total / n) for i in range(n + 1)]
    return list(itertools.pairwise(bounds))


def partition_grid(
    co: CloudObject,
    n_rows: int | None = None,
    n_cols: int | None = None,
    *,
    window_tiles: int | Sequence[int] | None = None,
    level: int = 0,
    coalesce_gap: int = 0,
) -> list[COGSlice]:
    """A grid of windows aligned to blocks at ``level`` (0 = full resolution).

    Either ``n_rows`` x ``n_cols`` windows (each clamped to the number of blocks; balanced),
    or windows of ``window_tiles`` blocks (an int, or ``(down, across)``). Row-major order.
    ``coalesce_gap``: merge block reads at most this many bytes apart (0 = only adjacent blocks).
    """
    if window_tiles is not None and (n_rows is not None or n_cols is not None):
        raise ConfigError("give n_rows/n_cols or window_tiles, not both")
    view = IndexView.of(co)
    lv = view.level(level)
    down: int | None = None
    across: int | None = None
    if window_tiles is not None:
        down, across = (window_tiles, window_tiles) if isinstance(window_tiles, int) else tuple(window_tiles)
    rows = _groups(lv.blocks_down, n_rows, down, "row")
    cols = _groups(lv.blocks_across, n_cols, across, "column")
    offsets, counts = view.tables[level]
    georef = view.georef.at_level(lv.width, lv.height)
    mask = view.masks[level] if view.masks else None
    slices = []
    for r0, r1 in rows:
        for c0, c1 in cols:
            segs = [s for r in range(r0, r1) for c in range(c0, c1) for s in lv.segments_at(r, c)]
            top, left = r0 * lv.block_height, c0 * lv.block_width
            height = min(r1 * lv.block_height, lv.height) - top
            width = min(c1 * lv.block_width, lv.width) - left
            slices.append(
                COGSlice(
                    co.url,
                    co.size,
                    view.header,
                    lv,
                    top,
                    left,
                    height,
                    width,
                    tuple((s, int(offsets[s]), int(counts[s])) for s in segs),
                    georef.window(top, left, height, width),
                    view.nodata,
                    coalesce_gap,
                    mask[0] if mask else None,
                    _mask_blocks(mask, top, left, height, width) if mask else (),
                    co.access,
                )
            )
    return slices


def _mask_blocks(
    mask: tuple[Level, tuple[np.ndarray, np.ndarray]], top: int, left: int, height: int, width: int
) -> tuple[tuple[int, int, int], ...]:
    """The mask blocks that cover a window (masks may be tiled differently from their image)."""
    lv, (offsets, counts) = mask
    rows = range(top // lv.block_height, (top + height - 1) // lv.block_height + 1)
    cols = range(left // lv.block_width, (left + width - 1) // lv.block_width + 1)
    segs = [s for r in rows for c in cols for s in lv.segments_at(r, c)]
    return tuple((s, int(offsets[s]), int(counts[s])) for s in segs)


def partition_strips(
    co: CloudObject,
    strips_per_slice: int | None = None,
    num_slices: int | None = None,
    *,
    level: int = 0,
    coalesce_gap: int = 0,
) -> list[COGSlice]:
    """Full-width windows: ``strips_per_slice`` block rows each (strips, or rows of tiles), or
    ``num_slices`` balanced windows. The natural partition of a TIFF that is not tiled."""
    if (strips_per_slice is None) == (num_slices is None):
        raise ConfigError("give strips_per_slice or num_slices")
    if strips_per_slice is not None:
        lv = IndexView.of(co).level(level)
        return partition_grid(
            co, window_tiles=(strips_per_slice, lv.blocks_across), level=level, coalesce_gap=coalesce_gap
        )
    return partition_grid(co, num_slices, 1, level=level, coalesce_gap=coalesce_gap)
