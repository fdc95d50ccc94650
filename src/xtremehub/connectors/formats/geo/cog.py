"""Cloud-Optimized GeoTIFF (and any tiled or stripped TIFF): an index of every block at every level.

Preprocessing lets tifffile parse the TIFF header and IFDs through range reads (only the
header bytes travel, see :mod:`.cog_header`) and keeps, per resolution level (the full image
and each overview): its size, block (tile or strip) layout, compression, predictor, data
type, bands and planar configuration, and the offset and byte count of every block. The
GeoTIFF tags give the transform and EPSG code; ``GDAL_NODATA`` the nodata value. TIFFs cut
in strips are indexed too (one block = one strip) and reported with ``cloud_optimized``
false and the reasons in ``cog_problems``.

Example:
    >>> import numpy as np, tifffile, io
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> buf = io.BytesIO()
    >>> tifffile.imwrite(buf, np.arange(64 * 48, dtype="uint16").reshape(48, 64), tile=(16, 16))
    >>> _ = storage.put("mem://cog/small.tif", buf.getvalue())
    >>> co = CloudObject.from_path(COG, "mem://cog/small.tif").preprocess()
    >>> co["width"], co["height"], co["num_levels"], co["levels"][0]["blocks"]
    (64, 48, 1, [3, 4])
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub import storage
from xtremehub.connectors.base import Format, Index, Strategy
from xtremehub.connectors.formats.geo.cog_georef import georeference_from_tags
from xtremehub.connectors.formats.geo.cog_header import HeaderReader
from xtremehub.connectors.formats.geo.cog_layout import Level, level_of, open_level, parse_tiff
from xtremehub.connectors.formats.geo.cog_slice import partition_grid, partition_strips
from xtremehub.errors import CorruptData, TruncatedData

if TYPE_CHECKING:
    from xtremehub.connectors.cloudobject import CloudObject
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = ["COG"]

log = logging.getLogger(__name__)

_GDAL_NODATA = 42113
_MASK_BIT = 4  # NewSubfileType: transparency mask
_SMALL_SIDE = 512  # rio-cogeo asks for overviews only above this size


def _problems(levels: list[Level], pages: list[Any], data_start: int) -> list[str]:
    """Why a TIFF is not cloud-optimized (empty for a COG); GDAL's ghost header is not required."""
    out = []
    if not all(lv.tiled for lv in levels):
        out.append("not tiled")
    if len(levels) == 1 and max(levels[0].width, levels[0].height) > _SMALL_SIDE:
        out.append("no overviews")
    if any(int(p.offset) > data_start for p in pages):
        out.append("IFDs are not all before the image data")
    return out


class COG(Format):
    """Cloud-Optimized GeoTIFF, and tiled or stripped TIFF in general (first image series).

    Options: ``header_block`` (bytes fetched per header read, default 16 KiB).
    """

    name = "cog"
    index_version = 1

    def __init__(self, header_block: int = 16 * 1024, **options: Any) -> None:
        super().__init__(header_block=header_block, **options)
        self.header_block = header_block

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        store, key = storage.open_store(co.url, co.settings)
        reader = HeaderReader(store, key, co.size, block_size=self.header_block)
        with parse_tiff(reader, co.url, co.size) as tif:
            n_levels = len(tif.series[0].levels) if tif.series else 0
            if n_levels == 0:
                raise CorruptData(co.url, 0, "the TIFF holds no image", "uncompressed")
            pages = [open_level(tif, k) for k in range(n_levels)]
            levels = [level_of(k, p) for k, p in enumerate(pages)]
            masks = _masks_of(tif, levels)
            arrays = []
            mask_pages = [tif.pages[m.page] for m in masks if m]
            for lv, page in zip([*levels, *(m for m in masks if m)], [*pages, *mask_pages], strict=True):
                _ = page.decode  # builds the decoder: reads every tag it needs (JPEG tables ...)
                offsets = np.asarray(page.dataoffsets, dtype="<u8")
                counts = np.asarray(page.databytecounts, dtype="<u8")
                if len(offsets) != lv.num_segments or len(counts) != lv.num_segments:
                    raise CorruptData(
                        co.url,
                        lv.ifd_offset,
                        f"level {lv.level}: {len(offsets)} offsets / {len(counts)} byte counts "
                        f"for {lv.num_segments} blocks",
                        "uncompressed",
                    )
                _check_extent(co.url, co.size, lv, offsets, counts)
                arrays += [offsets, counts]
            all_pages = list(tif.pages)
            geo = tif.geotiff_metadata or {}
            raw_keys = {code: pages[0].tags.valueof(code) for code in (34735, 34736, 34737)}
            nodata_tag = pages[0].tags.valueof(_GDAL_NODATA)
            segments = reader.segments()
        nonempty = [int(a[a > 0].min()) for a in arrays[: 2 * len(levels) : 2] if (a > 0).any()]
        problems = _problems(levels, all_pages, min(nonempty) if nonempty else co.size)
        full = levels[0]
        georef = georeference_from_tags(geo, full.width, full.height, raw_keys)
        nodata = _parse_nodata(nodata_tag)
        header_blob = b"".join(data for _, data in segments)
        blob = header_blob + b"".join(a.tobytes() for a in arrays)
        attributes = {
            "width": full.width,
            "height": full.height,
            "bands": full.bands,
            "dtype": np.dtype(full.dtype).name,
            "compression": full.compression,
            "predictor": full.predictor,
            "tiled": full.tiled,
            "block_size": [full.block_height, full.block_width],
            "num_levels": len(levels),
            "internal_mask": any(masks),
            "overviews": [round(full.width / lv.width) for lv in levels[1:]],
            "levels": [lv.to_json() for lv in levels],
            "num_blocks": sum(lv.num_segments for lv in levels),
            "epsg": georef.epsg,
            "crs": georef.crs,
            "crs_name": georef.crs_name,
            "transform": list(georef.transform) if georef.transform else None,
            "nodata": nodata,
            "cloud_optimized": not problems,
            "cog_problems": problems,
            "header_bytes": len(header_blob),
            "header_bytes_fetched": reader.fetched,
        }
        log.info(
            "%s: %d levels, %d blocks, header %d B fetched",
            co.url,
            len(levels),
            attributes["num_blocks"],
            reader.fetched,
        )
        data = {
            "header": [[offset, len(chunk)] for offset, chunk in segments],
            "levels": [lv.to_json() for lv in levels],
            "masks": [m.to_json() if m else None for m in masks],
            "georef": georef.to_json(),
            "nodata": nodata,
        }
        return Index(self.name, self.index_version, {}, attributes, data, blob)


def _masks_of(tif: Any, levels: list[Level]) -> list[Level | None]:
    """Per image level, the internal (GDAL) mask of the same size, if any: NewSubfileType bit 4."""
    found: dict[tuple[int, int], Level] = {}
    for index, page in enumerate(tif.pages):
        if int(page.subfiletype) & _MASK_BIT:
            lv = level_of(-1, page, index)
            found.setdefault((lv.height, lv.width), lv)
    out: list[Level | None] = []
    for lv in levels:
        mask = found.get((lv.height, lv.width))
        out.append(replace(mask, level=lv.level) if mask else None)
    return out


def _check_extent(url: str, size: int, lv: Level, offsets: np.ndarray, counts: np.ndarray) -> None:
    """Every block must lie inside the object: name the first one that does not."""
    ends = offsets + counts
    bad = np.flatnonzero((counts > 0) & (ends > size))
    if len(bad):
        i = int(bad[0])
        per_plane = lv.blocks_down * lv.blocks_across
        row, col = divmod(i % per_plane, lv.blocks_across)
        raise TruncatedData(
            url,
            int(offsets[i]),
            f"level {lv.level} {'tile' if lv.tiled else 'strip'} {i} (row {row}, col {col}) of "
            f"{int(counts[i])} bytes ends at {int(ends[i])}, past the end of the object ({size} bytes)",
            "uncompressed",
        )


def _parse_nodata(value: Any) -> float | int | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.strip().strip("\x00")
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


_STRATEGIES: dict[str, Strategy] = {"grid": partition_grid, "strips": partition_strips}
COG.strategies = _STRATEGIES
