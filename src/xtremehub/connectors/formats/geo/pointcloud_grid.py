"""A regular XY grid over a point cloud's bounds, with one boundary rule used everywhere.

Cells are half-open ``[x0 + i*w, x0 + (i+1)*w)``; the maximum edge belongs to the last
cell, and points outside the extent (header bounds are rounded) are clipped into the
edge cells. So every point falls in exactly one cell and none is ever dropped.
Rows count from the *south* (``ymin``) upwards.

Example:
    >>> import numpy as np
    >>> g = Grid(0.0, 0.0, 10.0, 10.0, cols=2, rows=2)
    >>> g.cells(np.array([0.0, 5.0, 10.0, -3.0]), np.array([0.0, 4.9, 10.0, 99.0]))
    (array([0, 1, 1, 0]), array([0, 0, 1, 1]))
    >>> g.tile_bounds(1, 0)
    (5.0, 0.0, 10.0, 5.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtremehub.errors import ConfigError

__all__ = ["Grid"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.intp]]


@dataclass(frozen=True)
class Grid:
    """``cols`` x ``rows`` cells over ``[xmin, xmax] x [ymin, ymax]``."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    cols: int
    rows: int

    def __post_init__(self) -> None:
        if self.cols < 1 or self.rows < 1:
            raise ConfigError(f"a grid needs at least 1 x 1 cells, got {self.cols} x {self.rows}")
        if not (self.xmax >= self.xmin and self.ymax >= self.ymin):
            raise ConfigError(f"empty grid extent ({self.xmin}, {self.ymin}) - ({self.xmax}, {self.ymax})")

    @classmethod
    def with_resolution(cls, xmin: float, ymin: float, xmax: float, ymax: float, resolution: float) -> Grid:
        """Square cells of ``resolution`` anchored at ``(xmin, ymin)``; the extent grows to whole cells."""
        if resolution <= 0:
            raise ConfigError(f"resolution must be > 0, got {resolution}")
        cols = max(1, math.ceil((xmax - xmin) / resolution))
        rows = max(1, math.ceil((ymax - ymin) / resolution))
        return cls(xmin, ymin, xmin + cols * resolution, ymin + rows * resolution, cols, rows)

    @property
    def cell_size(self) -> tuple[float, float]:
        return (self.xmax - self.xmin) / self.cols, (self.ymax - self.ymin) / self.rows

    @staticmethod
    def _axis(v: FloatArray, lo: float, hi: float, n: int) -> IntArray:
        if hi <= lo:
            return np.zeros(len(v), dtype=np.intp)
        # truncation equals floor once negatives are clipped to 0; cheaper than floor + clip on floats
        idx = ((v - lo) * (n / (hi - lo))).astype(np.intp)
        np.maximum(idx, 0, out=idx)
        np.minimum(idx, n - 1, out=idx)
        return idx

    def cells(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, IntArray]:
        """(column, row) of each point, by the boundary rule above."""
        return self._axis(x, self.xmin, self.xmax, self.cols), self._axis(y, self.ymin, self.ymax, self.rows)

    def tile_bounds(self, col: int, row: int) -> tuple[float, float, float, float]:
        """The cell's nominal ``(xmin, ymin, xmax, ymax)``."""
        w, h = self.cell_size
        return self.xmin + col * w, self.ymin + row * h, self.xmin + (col + 1) * w, self.ymin + (row + 1) * h

    def catchment(self, col: int, row: int) -> tuple[float, float, float, float]:
        """Where points of this cell can lie: edge cells reach to infinity (clipping)."""
        x0, y0, x1, y1 = self.tile_bounds(col, row)
        return (
            -math.inf if col == 0 else x0,
            -math.inf if row == 0 else y0,
            math.inf if col == self.cols - 1 else x1,
            math.inf if row == self.rows - 1 else y1,
        )
