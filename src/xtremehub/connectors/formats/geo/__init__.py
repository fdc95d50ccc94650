"""Geospatial formats: Cloud-Optimized GeoTIFF (cog*), point clouds (las*).

They need the ``geo`` extra (laspy, lazrs, tifffile, imagecodecs): importing this package
(or :mod:`xtremehub.connectors.pointcloud` / :mod:`xtremehub.connectors.raster`) without it
raises :class:`~xtremehub.errors.MissingDependency` saying ``pip install 'xtremehub[geo]'``.
"""

from __future__ import annotations

from xtremehub.plugins import require_extra

require_extra("the geospatial connectors (COG, LAS, LAZ, COPC)", "geo", "laspy", "lazrs", "tifffile")
