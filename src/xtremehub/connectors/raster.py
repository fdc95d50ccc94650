"""Raster connectors: Cloud-Optimized GeoTIFF windows, their georeferencing, band math and writers.

Example:
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.raster import COG, partition_grid
    >>> co = CloudObject.from_path(COG, "s3://bucket/scenes/scene.tif")
    >>> co.metadata_url
    's3://bucket/scenes/.xhub/scene.tif.cog.xhidx'

Then ``co.preprocess()``, ``co.partition(partition_grid, n_rows=4, n_cols=4, level=1)`` and
``window = slices[0].get()``: ``window.data`` is ``(bands, rows, cols)``, ``window.transform``
and ``window.epsg`` say where it lies. ``ndvi(co, red=0, nir=3, executor=fexec).to_cog(url)``
computes a band in parallel and writes it back.
"""

from __future__ import annotations

from xtremehub.connectors.formats.geo.cog import COG
from xtremehub.connectors.formats.geo.cog_bandmath import BandMathResult, NormalizedDifference, band_math, ndvi
from xtremehub.connectors.formats.geo.cog_georef import GeoReference
from xtremehub.connectors.formats.geo.cog_layout import Level
from xtremehub.connectors.formats.geo.cog_slice import COGSlice, RasterWindow, partition_grid, partition_strips
from xtremehub.connectors.formats.geo.cog_write import write_cog, write_png

__all__ = [
    "COG",
    "BandMathResult",
    "COGSlice",
    "GeoReference",
    "Level",
    "NormalizedDifference",
    "RasterWindow",
    "band_math",
    "ndvi",
    "partition_grid",
    "partition_strips",
    "write_cog",
    "write_png",
]
