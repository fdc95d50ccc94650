"""Writing rasters back: a tiled GeoTIFF with internal overviews (tifffile), or a PNG with a colour bar.

:func:`write_cog` writes ``(bands, rows, cols)`` (or ``(rows, cols)``) pixels as a tiled,
DEFLATE-compressed GeoTIFF whose overviews (nearest-neighbour, halving until they fit in
one tile) follow as reduced-resolution IFDs, with the georeferencing tags
(ModelPixelScale + ModelTiepoint, or ModelTransformation when rotated), the source's
GeoKeys (forced to PixelIsArea, since the transform is corner-based) and ``GDAL_NODATA``.
tifffile writes each IFD just before its pixels, so the file is tiled with overviews but not
in GDAL's strict COG layout (all IFDs first); readers that range-read tiles (GDAL, this
connector) still fetch only the tiles they need.
:func:`write_png` draws one band with a colour bar (matplotlib, Agg canvas).

Example:
    >>> import numpy as np
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.raster import COG
    >>> g = GeoReference((30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0), epsg=32630, width=600, height=500)
    >>> pixels = np.arange(600 * 500, dtype="float32").reshape(500, 600)
    >>> write_cog("mem://out/ramp.tif", pixels, g, tile=256)
    'mem://out/ramp.tif'
    >>> co = CloudObject.from_path(COG, "mem://out/ramp.tif").preprocess()
    >>> co["epsg"], co["transform"], co["overviews"], co["tiled"]
    (32630, [30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0], [2, 4], True)
    >>> co["cog_problems"]  # tifffile writes each IFD just before its data
    ['IFDs are not all before the image data']
"""

from __future__ import annotations

import io
import math
import tempfile
from typing import Any

import numpy as np

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors.formats.geo.cog_georef import GeoReference
from xtremehub.connectors.formats.geo.cog_layout import tifffile_module

__all__ = ["geotiff_tags", "write_cog", "write_png"]

_RASTER_TYPE_KEY = 1025
_PIXEL_IS_AREA = 1
_GEOGRAPHIC_EPSG = range(4000, 5000)  # EPSG's geographic 2D CRS codes (4326 ...)


def _geokeys(georef: GeoReference) -> tuple[int, ...]:
    """The source's GeoKey directory with RasterType set to PixelIsArea, or a minimal one from the EPSG code."""
    if georef.geokeys:
        keys = list(georef.geokeys)
        for k in range(4, len(keys) - 3, 4):
            if keys[k] == _RASTER_TYPE_KEY and keys[k + 1] == 0:
                keys[k + 3] = _PIXEL_IS_AREA
        return tuple(keys)
    entries = [(1025, 0, 1, _PIXEL_IS_AREA)]
    epsg = georef.epsg
    if epsg and epsg in _GEOGRAPHIC_EPSG:
        entries = [(1024, 0, 1, 2), *entries, (2048, 0, 1, epsg)]
    elif epsg:
        entries = [(1024, 0, 1, 1), *entries, (3072, 0, 1, epsg)]
    return (1, 1, 0, len(entries), *(v for e in entries for v in e))


def geotiff_tags(georef: GeoReference, nodata: float | None = None) -> list[tuple[int, str, int, Any, bool]]:
    """tifffile ``extratags`` for the georeferencing of an image (or one of its overviews)."""
    tags: list[tuple[int, str, int, Any, bool]] = []
    if georef.transform is not None:
        a, b, c, d, e, f = georef.transform
        if b == 0 and d == 0:
            tags.append((33550, "d", 3, (a, -e, 0.0), False))
            tags.append((33922, "d", 6, (0.0, 0.0, 0.0, c, f, 0.0), False))
        else:
            matrix = (a, b, 0.0, c, d, e, 0.0, f, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
            tags.append((34264, "d", 16, matrix, False))
    if georef.transform is not None or georef.epsg:
        keys = _geokeys(georef)
        tags.append((34735, "H", len(keys), keys, False))
        if georef.geodouble:
            tags.append((34736, "d", len(georef.geodouble), georef.geodouble, False))
        if georef.geoascii:
            tags.append((34737, "s", 0, georef.geoascii, False))
    if nodata is not None:
        tags.append((42113, "s", 0, repr(float(nodata)) if not float(nodata).is_integer() else str(int(nodata)), False))
    return tags


def _overviews(data: np.ndarray, tile: int) -> list[np.ndarray]:
    """Halve (nearest neighbour) until the level fits in one tile."""
    levels = []
    current = data
    while max(current.shape[-2:]) > tile:
        current = current[..., ::2, ::2]
        levels.append(current)
    return levels


def write_cog(
    url: str,
    data: np.ndarray,
    georef: GeoReference,
    *,
    nodata: float | None = None,
    tile: int = 256,
    compression: str = "zlib",
    overviews: bool = True,
    settings: Settings | None = None,
) -> str:
    """Write ``data`` (``(rows, cols)`` or ``(bands, rows, cols)``) as a tiled GeoTIFF at ``url``."""
    tifffile = tifffile_module()
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise ValueError(f"expected (rows, cols) or (bands, rows, cols), got shape {data.shape}")
    tile = max(16, int(math.ceil(tile / 16) * 16))  # TIFF tiles are multiples of 16
    options: dict[str, Any] = {"tile": (tile, tile), "compression": compression, "metadata": None}
    if data.shape[0] > 1:
        options["planarconfig"] = "separate"
    else:
        options["photometric"] = "minisblack"
    levels = [data, *(_overviews(data, tile) if overviews else [])]
    with tempfile.NamedTemporaryFile(prefix="xhub-cog-", suffix=".tif") as fh:
        with tifffile.TiffWriter(fh, bigtiff=data.nbytes > 2**32 - 2**25) as tif:
            for k, level in enumerate(levels):
                pixels = level[0] if level.shape[0] == 1 else level
                tags = geotiff_tags(georef, nodata) if k == 0 else []
                tif.write(pixels, subfiletype=1 if k else 0, extratags=tags, **options)
        fh.seek(0)
        storage.put(url, fh, settings=settings)
    return url


def write_png(
    url: str,
    band: np.ndarray,
    *,
    title: str = "",
    cmap: str = "RdYlGn",
    vmin: float | None = None,
    vmax: float | None = None,
    label: str = "",
    dpi: int = 100,
    settings: Settings | None = None,
) -> str:
    """Draw one band (NaN transparent) with a colour bar and write it as a PNG at ``url``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if band.ndim == 3 and band.shape[0] == 1:
        band = band[0]
    height, width = band.shape
    scale = 8.0 / max(height, width)
    fig = Figure(figsize=(max(3.0, width * scale) + 1.5, max(3.0, height * scale)), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(band), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    storage.put(url, buf.getvalue(), settings=settings)
    return url
