"""LAS, LAZ and COPC point clouds: header and chunk table once, then slices of whole chunks.

Preprocessing reads only the header, VLRs, the LASzip chunk table and, for COPC, the
octree hierarchy (:mod:`~xtremehub.connectors.formats.geo.las_layout`); the index keeps
the raw header bytes and one row per chunk (byte offset, size, point count, octree key).

Strategies (every point in exactly one slice, none dropped):

- :func:`partition_points` (``"points"``): ``num_batches`` slices of about equal point
  counts; cut at chunk boundaries for LAZ/COPC, at any record for LAS.
- :func:`partition_grid` (``"grid"``): ``cols x rows`` tiles over the header's XY bounds;
  a point belongs to the tile its (x, y) falls in by the rule of
  :class:`~xtremehub.connectors.formats.geo.pointcloud_grid.Grid` (half-open cells, the
  max edge in the last cell, outliers clipped to edge tiles). On COPC a tile reads only the
  octree nodes that can hold its points; on LAS/LAZ without a spatial index each tile reads
  every chunk and keeps its own points (prefer ``"points"`` plus a reduce there).

COPC only: ``max_level`` keeps the octree levels ``0..max_level`` (level-of-detail).

Example:
    >>> from xtremehub.connectors.pointcloud import LAS, COPC
    >>> sorted(LAS.strategies), COPC.name
    (['grid', 'points'], 'copc')
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub.connectors.base import Format, Index, Strategy
from xtremehub.connectors.formats.geo.las_layout import CHUNK_DTYPE, LasLayout, read_layout
from xtremehub.connectors.formats.geo.las_slice import PointCloudSlice
from xtremehub.connectors.formats.geo.pointcloud_grid import Grid
from xtremehub.errors import ConfigError, CorruptData

if TYPE_CHECKING:
    from xtremehub.connectors.cloudobject import CloudObject
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = ["COPC", "LAS", "chunk_table", "partition_grid", "partition_points"]

ChunkArray = np.ndarray[Any, np.dtype[Any]]


class LAS(Format):
    """LAS 1.0-1.4, LAZ (LASzip, fixed or variable chunks) and COPC objects."""

    name = "las"
    index_version = 1

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        layout = read_layout(co.url, co.size, co.settings)
        return self._index(co, layout)

    def _index(self, co: CloudObject, layout: LasLayout) -> Index:
        h = layout.header
        chunks = layout.chunks
        attributes: dict[str, Any] = {
            "version": str(h.version),
            "point_format": int(h.point_format.id),
            "point_record_length": int(h.point_format.size),
            "point_count": int(h.point_count),
            "scales": [float(v) for v in h.scales],
            "offsets": [float(v) for v in h.offsets],
            "mins": [float(v) for v in h.mins],
            "maxs": [float(v) for v in h.maxs],
            "offset_to_point_data": len(layout.header_bytes),
            "vlrs": [type(v).__name__ for v in h.vlrs],
            "evlrs": int(getattr(h, "number_of_evlrs", 0) or 0),
            "compressed": layout.compressed,
            "chunks": len(chunks),
            "copc": layout.copc is not None,
        }
        if layout.compressed:
            attributes["chunk_points_max"] = int(chunks["point_count"].max())
        if layout.copc is not None:
            levels, counts = np.unique(chunks["level"], return_inverse=True)
            per_level = np.bincount(counts, weights=chunks["point_count"].astype(np.float64))
            attributes["copc_info"] = layout.copc
            attributes["copc_points_per_level"] = {
                str(int(lv)): int(n) for lv, n in zip(levels, per_level, strict=True)
            }
            attributes["copc_max_level"] = int(levels.max())
        data = {"header_len": len(layout.header_bytes), "laszip_len": len(layout.laszip_vlr), "nchunks": len(chunks)}
        blob = layout.header_bytes + layout.laszip_vlr + chunks.tobytes()
        return Index(self.name, self.index_version, {}, attributes, data, blob)


class COPC(LAS):
    """A LAS format that insists on COPC (its octree is the index; level-of-detail queries)."""

    name = "copc"

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        layout = read_layout(co.url, co.size, co.settings)
        if layout.copc is None:
            raise CorruptData(co.url, 0, "not a COPC file: no 'copc' info VLR")
        return self._index(co, layout)


def _parts(co: CloudObject) -> tuple[bytes, bytes, ChunkArray]:
    d, blob = co.index.data, co.index.blob
    h, z = d["header_len"], d["laszip_len"]
    chunks = np.frombuffer(blob, CHUNK_DTYPE, count=d["nchunks"], offset=h + z)
    return blob[:h], blob[h : h + z], chunks


def chunk_table(co: CloudObject) -> ChunkArray:
    """The index's chunks (offset, byte_size, point_count, level, kx, ky, kz) in file order."""
    return _parts(co)[2].copy()


def _level_filter(co: CloudObject, chunks: ChunkArray, max_level: int | None) -> ChunkArray:
    if max_level is None:
        return chunks
    if not co["copc"]:
        raise ConfigError(f"{co.url}: max_level needs a COPC object (this one has no octree)")
    return chunks[chunks["level"] <= max_level]


def _runs(chunks: ChunkArray) -> tuple[tuple[int, int, int], ...]:
    return tuple(
        zip(chunks["offset"].tolist(), chunks["byte_size"].tolist(), chunks["point_count"].tolist(), strict=True)
    )


def _las_runs(co: CloudObject, first: int, end: int) -> tuple[tuple[int, int, int], ...]:
    record, start = int(co["point_record_length"]), int(co["offset_to_point_data"])
    return ((start + first * record, (end - first) * record, end - first),) if end > first else ()


def _cuts(counts: ChunkArray, num_batches: int) -> list[int]:
    """Chunk indices cutting ``counts`` into ``min(num_batches, len(counts))`` groups of about equal sums."""
    cum = np.cumsum(counts.astype(np.float64))
    n = len(counts)
    groups = min(num_batches, n)
    cuts = [0]
    for i in range(1, groups):
        target = cum[-1] * i / groups
        k = int(np.searchsorted(cum, target))  # first chunk whose running total reaches the target
        before = cum[k - 1] if k > 0 else 0.0
        nearest = k + 1 if cum[k] - target < target - before else k
        cuts.append(min(max(nearest, cuts[-1] + 1), n - (groups - i)))
    return [*cuts, n]


def partition_points(co: CloudObject, num_batches: int, max_level: int | None = None) -> list[PointCloudSlice]:
    """About ``num_batches`` slices of equal point counts (whole chunks for LAZ/COPC)."""
    if num_batches < 1:
        raise ConfigError("num_batches must be >= 1")
    header, laszip, chunks = _parts(co)

    def make(runs: tuple[tuple[int, int, int], ...]) -> PointCloudSlice:
        return PointCloudSlice(co.url, co.size, header, laszip, runs, access=co.access)

    if not co["compressed"]:
        if max_level is not None:
            _level_filter(co, chunks, max_level)
        total = int(co["point_count"])
        bounds = sorted({round(i * total / num_batches) for i in range(num_batches + 1)})
        return [make(_las_runs(co, a, b)) for a, b in itertools.pairwise(bounds) if b > a]
    chunks = _level_filter(co, chunks, max_level)
    cuts = _cuts(chunks["point_count"], num_batches)
    return [make(_runs(chunks[a:b])) for a, b in itertools.pairwise(cuts) if b > a]


def _copc_nodes_in(co: CloudObject, chunks: ChunkArray, area: tuple[float, float, float, float]) -> ChunkArray:
    """COPC nodes whose XY square touches ``area`` (closed, widened by one coordinate step)."""
    info = co["copc_info"]
    side = 2 * info["halfsize"] / np.exp2(chunks["level"].astype(np.float64))
    x0 = info["center"][0] - info["halfsize"] + chunks["kx"] * side
    y0 = info["center"][1] - info["halfsize"] + chunks["ky"] * side
    tol = max(co["scales"][:2])
    ax0, ay0, ax1, ay1 = area
    keep = (x0 <= ax1 + tol) & (x0 + side >= ax0 - tol) & (y0 <= ay1 + tol) & (y0 + side >= ay0 - tol)
    found: ChunkArray = chunks[keep]
    return found


def partition_grid(co: CloudObject, cols: int, rows: int, max_level: int | None = None) -> list[PointCloudSlice]:
    """``cols x rows`` tiles over the header bounds, in row-major order from the south-west tile."""
    mins, maxs = co["mins"], co["maxs"]
    grid = Grid(mins[0], mins[1], maxs[0], maxs[1], cols, rows)
    header, laszip, chunks = _parts(co)
    chunks = _level_filter(co, chunks, max_level)
    out = []
    for row in range(rows):
        for col in range(cols):
            if co["copc"]:
                runs = _runs(_copc_nodes_in(co, chunks, grid.catchment(col, row)))
            elif co["compressed"]:
                runs = _runs(chunks)
            else:
                runs = _las_runs(co, 0, int(co["point_count"]))
            out.append(PointCloudSlice(co.url, co.size, header, laszip, runs, (grid, col, row), co.access))
    return out


_STRATEGIES: dict[str, Strategy] = {"points": partition_points, "grid": partition_grid}
LAS.strategies = _STRATEGIES
COPC.strategies = _STRATEGIES
