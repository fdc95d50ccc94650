"""GeoTIFF georeferencing: the affine transform of an image, an overview and a window, and the CRS.

Transforms use the rasterio/affine order ``(a, b, c, d, e, f)``: a pixel's corner at
``(col, row)`` lies at ``x = a*col + b*row + c``, ``y = d*col + e*row + f``. Like GDAL, a
raster whose GeoKey says PixelIsPoint is shifted by half a pixel so that ``(c, f)`` is the
corner of the first pixel, not its centre.

Example:
    >>> g = GeoReference((10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0), epsg=32621, width=100, height=50)
    >>> g.at_level(50, 25).transform
    (20.0, 0.0, 1000.0, 0.0, -20.0, 5000.0)
    >>> g.window(row=5, col=2).transform
    (10.0, 0.0, 1020.0, 0.0, -10.0, 4950.0)
    >>> g.xy(row=50, col=100)
    (2000.0, 4500.0)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["GeoReference", "georeference_from_tags"]

Transform = tuple[float, float, float, float, float, float]

_USER_DEFINED = 32767
_GEOKEYS, _GEODOUBLE, _GEOASCII = 34735, 34736, 34737
_PIXEL_IS_POINT = 2


@dataclass(frozen=True)
class GeoReference:
    """Where a raster (or a window of it) lies: affine ``transform``, ``epsg`` code, size in pixels.

    ``transform`` is ``None`` for rasters without georeferencing (or with ground control points only).
    """

    transform: Transform | None
    epsg: int | None = None
    crs_name: str = ""
    width: int = 0
    height: int = 0
    #: the source's GeoKeyDirectory, ASCII and double parameters, copied when writing a GeoTIFF
    geokeys: tuple[int, ...] = ()
    geoascii: str = ""
    geodouble: tuple[float, ...] = ()

    @property
    def crs(self) -> str | None:
        """``"EPSG:<code>"`` or ``None``."""
        return f"EPSG:{self.epsg}" if self.epsg else None

    def at_level(self, width: int, height: int) -> GeoReference:
        """The same extent sampled as ``width`` x ``height`` pixels (an overview), as GDAL scales it."""
        if self.transform is None or not width or not height:
            return replace(self, width=width, height=height)
        a, b, c, d, e, f = self.transform
        sx, sy = self.width / width, self.height / height
        return replace(self, transform=(a * sx, b * sy, c, d * sx, e * sy, f), width=width, height=height)

    def window(self, row: int, col: int, height: int | None = None, width: int | None = None) -> GeoReference:
        """The georeference of the window whose top-left pixel is ``(row, col)``."""
        size = (width if width is not None else self.width - col, height if height is not None else self.height - row)
        if self.transform is None:
            return replace(self, width=size[0], height=size[1])
        c, f = self.xy(row, col)
        a, b, _, d, e, _ = self.transform
        return replace(self, transform=(a, b, c, d, e, f), width=size[0], height=size[1])

    def xy(self, row: float, col: float) -> tuple[float, float]:
        """Map coordinates of the corner of pixel ``(row, col)``."""
        if self.transform is None:
            raise ValueError("the raster has no georeferencing")
        a, b, c, d, e, f = self.transform
        return (a * col + b * row + c, d * col + e * row + f)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of a north-up raster."""
        x0, y0 = self.xy(0, 0)
        x1, y1 = self.xy(self.height, self.width)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def to_json(self) -> dict[str, Any]:
        return {
            "transform": list(self.transform) if self.transform else None,
            "epsg": self.epsg,
            "crs_name": self.crs_name,
            "width": self.width,
            "height": self.height,
            "geokeys": list(self.geokeys),
            "geoascii": self.geoascii,
            "geodouble": list(self.geodouble),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GeoReference:
        t = d.get("transform")
        transform: Transform | None = None
        if t:
            a, b, c, dd, e, f = (float(v) for v in t)
            transform = (a, b, c, dd, e, f)
        return cls(
            transform,
            d.get("epsg"),
            d.get("crs_name", ""),
            d["width"],
            d["height"],
            tuple(d.get("geokeys", ())),
            d.get("geoascii", ""),
            tuple(d.get("geodouble", ())),
        )


def georeference_from_tags(
    geo: dict[str, Any], width: int, height: int, raw: dict[int, Any] | None = None
) -> GeoReference:
    """Build a :class:`GeoReference` from tifffile's ``TiffFile.geotiff_metadata`` dictionary
    (``raw``: the GeoKey tags 34735-34737 as read, kept to copy them into new files)."""
    epsg = None
    for key in ("ProjectedCSTypeGeoKey", "GeographicTypeGeoKey"):
        value = geo.get(key)
        if value is not None and int(value) not in (0, _USER_DEFINED):
            epsg = int(value)
            break
    name = str(geo.get("GTCitationGeoKey") or geo.get("GeogCitationGeoKey") or "")
    transform: Transform | None = None
    matrix = geo.get("ModelTransformation")
    tiepoint = geo.get("ModelTiepoint")
    scale = geo.get("ModelPixelScale")
    if matrix is not None:
        m = _flat(matrix)
        transform = (m[0], m[1], m[3], m[4], m[5], m[7])
    elif tiepoint is not None and scale is not None and len(_flat(tiepoint)) == 6:
        i, j, _, x, y, _ = _flat(tiepoint)
        sx, sy = _flat(scale)[:2]
        transform = (sx, 0.0, x - i * sx, 0.0, -sy, y + j * sy)
    raster_type = geo.get("GTRasterTypeGeoKey")
    if transform is not None and raster_type is not None and int(raster_type) == _PIXEL_IS_POINT:
        a, b, c, d, e, f = transform
        transform = (a, b, c - (a + b) / 2, d, e, f - (d + e) / 2)
    raw = raw or {}
    keys = tuple(int(v) for v in raw.get(_GEOKEYS) or ())
    ascii_params = raw.get(_GEOASCII) or ""
    doubles = tuple(float(v) for v in raw.get(_GEODOUBLE) or ())
    return GeoReference(transform, epsg, name, width, height, keys, str(ascii_params), doubles)


def _flat(value: Any) -> list[float]:
    """tifffile gives nested lists or numpy arrays for matrix tags."""
    return [float(v) for v in np.asarray(value, dtype=float).ravel()]
