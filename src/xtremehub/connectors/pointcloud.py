"""Point-cloud connectors (LAS, LAZ, COPC) and the terrain-model helper, in one import.

Example:
    >>> from xtremehub.connectors.pointcloud import LAS, COPC, partition_points, partition_grid
    >>> LAS.name, COPC.name
    ('las', 'copc')
"""

from __future__ import annotations

from xtremehub.connectors.formats.geo.las import COPC, LAS, chunk_table, partition_grid, partition_points
from xtremehub.connectors.formats.geo.las_slice import PointCloudSlice
from xtremehub.connectors.formats.geo.pointcloud_grid import Grid
from xtremehub.connectors.formats.geo.pointcloud_raster import (
    TerrainModel,
    bin_extremes,
    cell_extremes,
    merge_extremes,
    terrain_model,
)

__all__ = [
    "COPC",
    "LAS",
    "Grid",
    "PointCloudSlice",
    "TerrainModel",
    "bin_extremes",
    "cell_extremes",
    "chunk_table",
    "merge_extremes",
    "partition_grid",
    "partition_points",
    "terrain_model",
]
