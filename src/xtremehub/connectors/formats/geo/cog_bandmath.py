"""Band math over COG windows in parallel: NDVI-style normalized differences or any function of the bands.

Each window (a :class:`~.cog_slice.COGSlice`) is evaluated on a worker with
``executor.map``; the results are placed into one ``(rows, cols)`` float32 array (NaN where
a band is nodata, the internal mask says invalid, or the formula is undefined), which can be
written as a tiled GeoTIFF with the source's georeferencing or drawn as a PNG with a colour bar.

Example:
    >>> import numpy as np, tifffile, io
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.raster import COG
    >>> red = np.full((40, 40), 10, dtype="uint8"); nir = np.full((40, 40), 30, dtype="uint8")
    >>> buf = io.BytesIO()
    >>> tifffile.imwrite(buf, np.stack([red, nir]), tile=(16, 16), planarconfig="separate")
    >>> _ = storage.put("mem://bm/two.tif", buf.getvalue())
    >>> co = CloudObject.from_path(COG, "mem://bm/two.tif").preprocess()
    >>> result = band_math(co, NormalizedDifference(1, 0), n_rows=2, n_cols=2)
    >>> result.data.shape, float(result.data[0, 0])
    ((40, 40), 0.5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub.config import Settings
from xtremehub.connectors.formats.geo.cog_georef import GeoReference
from xtremehub.connectors.formats.geo.cog_layout import IndexView
from xtremehub.connectors.formats.geo.cog_slice import COGSlice, partition_grid
from xtremehub.connectors.formats.geo.cog_write import write_cog, write_png
from xtremehub.errors import ConfigError

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = ["BandMathResult", "NormalizedDifference", "band_math", "ndvi"]

#: ``func(bands) -> (rows, cols)``: ``bands`` is a window's float32 ``(bands, rows, cols)`` array.
BandFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class NormalizedDifference:
    """``(b[a] - b[b]) / (b[a] + b[b])`` with 0-based band indices; NaN where the sum is 0.

    NDVI is ``NormalizedDifference(nir, red)``.

    Example:
        >>> NormalizedDifference(0, 1)(np.array([[[3.0, 1.0]], [[1.0, -1.0]]]))
        array([[0.5, nan]])
    """

    a: int
    b: int

    def __call__(self, bands: np.ndarray) -> np.ndarray:
        if max(self.a, self.b) >= bands.shape[0]:
            raise ConfigError(f"band {max(self.a, self.b)} asked, the raster has {bands.shape[0]} band(s)")
        x, y = bands[self.a], bands[self.b]
        total = x + y
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (x - y) / total
        out = np.asarray(out, dtype=np.float32 if bands.dtype == np.float32 else np.float64)
        out[total == 0] = np.nan
        return out


@dataclass(frozen=True, eq=False)
class BandMathResult:
    """The computed band over a whole level, and its georeferencing."""

    data: np.ndarray
    georef: GeoReference
    level: int
    windows: int

    def to_cog(self, url: str, *, tile: int = 256, settings: Settings | None = None) -> str:
        """Write the result as a tiled GeoTIFF with overviews (NaN as nodata)."""
        return write_cog(url, self.data, self.georef, nodata=float("nan"), tile=tile, settings=settings)

    def to_png(self, url: str, *, title: str = "", cmap: str = "RdYlGn", **kwargs: Any) -> str:
        """Draw the result with a colour bar."""
        return write_png(url, self.data, title=title, cmap=cmap, **kwargs)


def evaluate_window(piece: COGSlice, func: BandFunction) -> tuple[int, int, np.ndarray]:
    """Map step: one window's result, with where it goes."""
    window = piece.get()
    bands = window.data.astype(np.float32)
    if window.nodata is not None:
        invalid = (window.data == window.nodata).any(axis=0)
        bands[:, invalid] = np.nan
    if window.mask is not None:
        bands[:, ~window.mask] = np.nan
    result = np.asarray(func(bands), dtype=np.float32)
    if result.shape != bands.shape[1:]:
        raise ConfigError(f"band function returned shape {result.shape}, expected {bands.shape[1:]}")
    return window.row, window.col, result


def band_math(
    co: CloudObject,
    func: BandFunction,
    *,
    executor: FunctionExecutor | None = None,
    level: int = 0,
    n_rows: int | None = None,
    n_cols: int | None = None,
    window_tiles: int | tuple[int, int] | None = None,
) -> BandMathResult:
    """Evaluate ``func`` on every window of ``level`` (in parallel on ``executor``) into one band.

    The window grid is :func:`partition_grid`'s (default: one window per tile).
    """
    if n_rows is None and n_cols is None and window_tiles is None:
        window_tiles = 1
    slices = partition_grid(co, n_rows, n_cols, window_tiles=window_tiles, level=level)
    args = [(s, func) for s in slices]
    if executor is not None and len(args) > 1:
        results = executor.get_result(executor.map(evaluate_window, args))
    else:
        results = [evaluate_window(*a) for a in args]
    view = IndexView.of(co)
    lv = view.level(level)
    out = np.full((lv.height, lv.width), np.nan, dtype=np.float32)
    for row, col, block in results:
        out[row : row + block.shape[0], col : col + block.shape[1]] = block
    return BandMathResult(out, view.georef.at_level(lv.width, lv.height), level, len(slices))


def ndvi(co: CloudObject, red: int, nir: int, **kwargs: Any) -> BandMathResult:
    """NDVI ``(nir - red) / (nir + red)`` (0-based band indices); options as :func:`band_math`."""
    return band_math(co, NormalizedDifference(nir, red), **kwargs)
