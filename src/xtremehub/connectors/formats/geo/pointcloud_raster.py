"""Terrain and surface models: the lowest (DTM-like) or highest (DSM) Z per grid cell, in parallel.

Each slice bins its own points into the whole grid (map); the partial grids are merged
cell by cell with ``fmin``/``fmax`` (reduce), so any partition strategy gives the same
model. Cells without points are NaN. The model is written as a GeoTIFF (tifffile; the
transform as ModelPixelScale + ModelTiepoint tags, and the object's own GeoKeys when its
LAS header carries them) or as a PNG with a colour bar (matplotlib, Agg backend).

Example:
    >>> import numpy as np
    >>> from xtremehub.connectors.pointcloud import Grid
    >>> g = Grid(0.0, 0.0, 2.0, 2.0, cols=2, rows=2)
    >>> _, z = bin_extremes(g, np.array([0.5, 0.6, 1.5]), np.array([0.5, 0.5, 1.5]), np.array([3.0, 1.0, 7.0]), "min")
    >>> merge_extremes([("min", z)]).reshape(2, 2)  # row 0 = south
    array([[ 1., nan],
           [nan,  7.]])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import laspy
import numpy as np

from xtremehub.connectors.formats.geo.las_slice import PointCloudSlice
from xtremehub.connectors.formats.geo.pointcloud_grid import Grid
from xtremehub.errors import ConfigError

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = ["TerrainModel", "bin_extremes", "cell_extremes", "merge_extremes", "terrain_model"]

log = logging.getLogger(__name__)

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
_STATS = ("min", "max")
_XYZ = laspy.DecompressionSelection.XY_RETURNS_CHANNEL | laspy.DecompressionSelection.Z
# GeoTIFF tags: ModelPixelScale, ModelTiepoint, GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams, GDAL_NODATA
_SCALE, _TIEPOINT, _GEOKEYS, _GEODOUBLES, _GEOASCII, _NODATA = 33550, 33922, 34735, 34736, 34737, 42113
# Without the object's GeoKeys: version 1.1.0, 2 keys: model type user-defined, raster type PixelIsArea
_MINIMAL_GEOKEYS = (1, 1, 0, 2, 1024, 0, 1, 32767, 1025, 0, 1, 1)


def bin_extremes(grid: Grid, x: FloatArray, y: FloatArray, z: FloatArray, stat: str) -> tuple[str, FloatArray]:
    """(stat, per-cell extreme of ``z`` as a flat row-major array from the south-west; ±inf where empty)."""
    if stat not in _STATS:
        raise ConfigError(f"stat must be one of {_STATS}, got {stat!r}")
    cols, rows = grid.cells(x, y)
    fill, ufunc = (np.inf, np.minimum) if stat == "min" else (-np.inf, np.maximum)
    out = np.full(grid.cols * grid.rows, fill)
    ufunc.at(out, rows * grid.cols + cols, z)
    return stat, out


def cell_extremes(data_slice: PointCloudSlice, grid: Grid, stat: str = "min") -> tuple[str, FloatArray]:
    """Map step: bin one slice's points (only X, Y and Z are decompressed where the format allows)."""
    _, out = bin_extremes(grid, np.zeros(0), np.zeros(0), np.zeros(0), stat)
    ufunc = np.fmin if stat == "min" else np.fmax
    for records in data_slice.iter_records(_XYZ):
        _, part = bin_extremes(grid, np.asarray(records.x), np.asarray(records.y), np.asarray(records.z), stat)
        ufunc(out, part, out=out)
    return stat, out


def merge_extremes(parts: Sequence[tuple[str, FloatArray]]) -> FloatArray:
    """Reduce step: the cell-wise extreme of the partial grids; NaN where no slice had points."""
    stat = parts[0][0]
    values = np.stack([p for _, p in parts])
    merged: FloatArray = values.min(axis=0) if stat == "min" else values.max(axis=0)
    merged[np.isinf(merged)] = np.nan
    return merged


def _geokeys(header: laspy.LasHeader) -> dict[int, Any]:
    """The GeoTIFF key tags the LAS header carries (LAS stores them verbatim as VLRs)."""
    out: dict[int, Any] = {}
    for vlr in header.vlrs:
        if getattr(vlr, "user_id", "") != "LASF_Projection":
            continue
        raw = vlr.record_data_bytes()
        if vlr.record_id == _GEOKEYS:
            out[_GEOKEYS] = tuple(np.frombuffer(raw, "<u2").tolist())
        elif vlr.record_id == _GEODOUBLES:
            out[_GEODOUBLES] = tuple(np.frombuffer(raw, "<f8").tolist())
        elif vlr.record_id == _GEOASCII:
            out[_GEOASCII] = raw.rstrip(b"\0").decode("ascii", errors="replace")
    return out


@dataclass(frozen=True)
class TerrainModel:
    """A raster of per-cell Z extremes. ``values[0]`` is the *north* row (image order); NaN: no points."""

    grid: Grid
    values: FloatArray
    stat: str
    geokeys: dict[int, Any] = field(default_factory=dict)

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL-style geotransform ``(x0, dx, 0, y0, 0, -dy)`` of the top-left corner."""
        dx, dy = self.grid.cell_size
        return self.grid.xmin, dx, 0.0, self.grid.ymax, 0.0, -dy

    def to_geotiff(self, path: str | Path) -> Path:
        """A float32 GeoTIFF with the transform and, when the LAS had them, its GeoKeys; NaN = no data."""
        import tifffile

        dx, dy = self.grid.cell_size
        keys = self.geokeys.get(_GEOKEYS, _MINIMAL_GEOKEYS)
        tags: list[tuple[int, str, int, Any, bool]] = [
            (_SCALE, "d", 3, (dx, dy, 0.0), True),
            (_TIEPOINT, "d", 6, (0.0, 0.0, 0.0, self.grid.xmin, self.grid.ymax, 0.0), True),
            (_GEOKEYS, "H", len(keys), keys, True),
            (_NODATA, "s", 0, "nan", True),
        ]
        if _GEODOUBLES in self.geokeys:
            tags.append((_GEODOUBLES, "d", len(self.geokeys[_GEODOUBLES]), self.geokeys[_GEODOUBLES], True))
        if _GEOASCII in self.geokeys:
            tags.append((_GEOASCII, "s", 0, self.geokeys[_GEOASCII], True))
        target = Path(path)
        tifffile.imwrite(target, self.values.astype(np.float32), extratags=tags, photometric="minisblack")
        return target

    def to_png(self, path: str | Path, title: str = "") -> Path:
        """A shaded PNG with a colour bar (matplotlib, Agg backend; no display needed)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 5.5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        g = self.grid
        image = ax.imshow(self.values, extent=(g.xmin, g.xmax, g.ymin, g.ymax), cmap="terrain", interpolation="nearest")
        fig.colorbar(image, ax=ax, label=f"{self.stat} Z per cell")
        ax.set_title(title or f"{'terrain' if self.stat == 'min' else 'surface'} model, {g.cols} x {g.rows} cells")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        target = Path(path)
        fig.savefig(target)
        return target


def terrain_model(
    co: CloudObject,
    executor: FunctionExecutor | None = None,
    *,
    resolution: float,
    stat: str = "min",
    slices: Sequence[PointCloudSlice] | None = None,
    num_batches: int | None = None,
) -> TerrainModel:
    """The ``stat`` Z per ``resolution``-sized cell over the header bounds (map on ``executor``, then reduce).

    ``slices`` default to ``partition_points`` with ``num_batches`` (default: one per chunk, at most 64).
    """
    from xtremehub.connectors.formats.geo.las import partition_points

    if stat not in _STATS:
        raise ConfigError(f"stat must be one of {_STATS}, got {stat!r}")
    mins, maxs = co["mins"], co["maxs"]
    grid = Grid.with_resolution(mins[0], mins[1], maxs[0], maxs[1], resolution)
    if slices is None:
        n = num_batches or max(1, min(int(co["chunks"]) or 8, 64))
        slices = cast("list[PointCloudSlice]", co.partition(partition_points, num_batches=n))
    if executor is None:
        flat = merge_extremes([cell_extremes(s, grid, stat) for s in slices])
    else:
        futures = executor.map_reduce(
            cell_extremes, list(slices), merge_extremes, extra_args={"grid": grid, "stat": stat}
        )
        flat = executor.get_result(futures)
        if isinstance(flat, list):  # one reducer: some executors hand back a one-item list
            flat = flat[0]
    values = np.asarray(flat).reshape(grid.rows, grid.cols)[::-1].copy()
    header = slices[0].header if slices else None
    return TerrainModel(grid, values, stat, _geokeys(header) if header is not None else {})
