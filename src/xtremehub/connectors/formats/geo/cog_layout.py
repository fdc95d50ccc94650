"""The layout of a TIFF as the COG index keeps it: resolution levels, block tables, header bytes.

Example:
    >>> lv = Level(0, width=100, height=40, block_width=32, block_height=32, bands=3, planar_separate=True,
    ...            tiled=True, dtype="|u1", compression="NONE", predictor=1, ifd_offset=8)
    >>> lv.blocks_down, lv.blocks_across, lv.num_segments, lv.segments_at(1, 2)
    (2, 4, 24, [6, 14, 22])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub.connectors.formats.geo.cog_georef import GeoReference
from xtremehub.errors import ConfigError, CorruptData, MissingDependency

if TYPE_CHECKING:
    import tifffile

    from xtremehub.connectors.cloudobject import CloudObject

_MAGICS = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF, both byte orders

__all__ = ["IndexView", "Level", "level_of", "open_level", "parse_tiff", "tifffile_module"]


def tifffile_module() -> Any:
    """tifffile, or a clear error naming the extra to install."""
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover - the geo extra is installed in tests
        raise MissingDependency("the COG connector needs tifffile: pip install 'xtremehub[geo]'") from exc
    return tifffile


@dataclass(frozen=True)
class Level:
    """One resolution level: its pixel size and block grid (a block is a tile or a strip)."""

    level: int
    width: int
    height: int
    block_width: int
    block_height: int
    bands: int
    planar_separate: bool
    tiled: bool
    dtype: str
    compression: str
    predictor: int
    ifd_offset: int
    #: top-level page index of an internal mask (its ``level`` is the image level it masks); -1 for images
    page: int = -1

    @property
    def blocks_down(self) -> int:
        return math.ceil(self.height / self.block_height)

    @property
    def blocks_across(self) -> int:
        return math.ceil(self.width / self.block_width)

    @property
    def num_segments(self) -> int:
        """Blocks stored: one per block position, times the bands when planes are separate."""
        return self.blocks_down * self.blocks_across * (self.bands if self.planar_separate else 1)

    def segments_at(self, row: int, col: int) -> list[int]:
        """Indices (into the offsets/byte counts) of the block at tile ``(row, col)``, one per plane."""
        k = row * self.blocks_across + col
        per_plane = self.blocks_down * self.blocks_across
        return [p * per_plane + k for p in range(self.bands if self.planar_separate else 1)]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "blocks": [self.blocks_down, self.blocks_across]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Level:
        return cls(**{k: v for k, v in d.items() if k != "blocks"})


def level_of(k: int, page: tifffile.TiffPage, index: int = -1) -> Level:
    tiled = bool(page.is_tiled)
    return Level(
        level=k,
        width=int(page.imagewidth),
        height=int(page.imagelength),
        block_width=int(page.tilewidth if tiled else page.imagewidth),
        block_height=int(page.tilelength if tiled else min(page.rowsperstrip or page.imagelength, page.imagelength)),
        bands=int(page.samplesperpixel),
        planar_separate=int(page.planarconfig) == 2 and page.samplesperpixel > 1,
        tiled=tiled,
        dtype=np.dtype(page.dtype).str if page.dtype is not None else "|u1",
        compression=str(getattr(page.compression, "name", page.compression)),
        predictor=int(page.predictor),
        ifd_offset=int(page.offset),
        page=index,
    )


def open_level(tif: tifffile.TiffFile, level: int, mask_page: int = -1) -> tifffile.TiffPage:
    """The first page of resolution ``level`` of the first image series (0 = full resolution),
    or the top-level page ``mask_page`` (an internal mask)."""
    if mask_page >= 0:
        found = tif.pages[mask_page]
        return found  # type: ignore[return-value]
    levels = tif.series[0].levels
    if not 0 <= level < len(levels):
        raise ConfigError(f"{tif.filehandle.name}: level {level} does not exist (the image has {len(levels)})")
    page = levels[level].keyframe
    return page


def parse_tiff(fh: Any, url: str, size: int) -> Any:
    """Open ``fh`` with tifffile, turning its parse errors into :class:`CorruptData`."""
    tifffile = tifffile_module()
    head = fh.read(4)
    fh.seek(0)
    if head not in _MAGICS:
        raise CorruptData(url, 0, f"not a TIFF: bad byte-order mark / magic number {head!r}", "uncompressed")
    try:
        return tifffile.TiffFile(fh, name=url, _useframes=False)
    except CorruptData:
        raise
    except (tifffile.TiffFileError, ValueError, OSError, EOFError) as exc:
        pos = fh.tell() if hasattr(fh, "tell") else 0
        raise CorruptData(url, min(pos, size), f"not a readable TIFF: {exc}", "uncompressed") from exc


@dataclass(frozen=True)
class IndexView:
    """What strategies need from an index: levels, block tables, header segments, georeference."""

    levels: tuple[Level, ...]
    header: tuple[tuple[int, bytes], ...]
    tables: tuple[tuple[np.ndarray, np.ndarray], ...]
    georef: GeoReference
    nodata: float | int | None
    #: per image level, its internal mask (or None) and the mask's block table
    masks: tuple[tuple[Level, tuple[np.ndarray, np.ndarray]] | None, ...] = ()

    @classmethod
    def of(cls, co: CloudObject) -> IndexView:
        index = co.index
        blob, pos = index.blob, 0
        header = []
        for offset, length in index.data["header"]:
            header.append((int(offset), bytes(blob[pos : pos + length])))
            pos += length
        levels = tuple(Level.from_json(d) for d in index.data["levels"])
        masks_json = index.data.get("masks") or [None] * len(levels)
        tables, masks = [], []
        for lv in [*levels, *(Level.from_json(m) for m in masks_json if m)]:
            n = lv.num_segments * 8
            offsets = np.frombuffer(blob, dtype="<u8", count=lv.num_segments, offset=pos)
            counts = np.frombuffer(blob, dtype="<u8", count=lv.num_segments, offset=pos + n)
            tables.append((offsets, counts))
            pos += 2 * n
        mask_tables = iter(tables[len(levels) :])
        for m in masks_json:
            masks.append((Level.from_json(m), next(mask_tables)) if m else None)
        return cls(
            levels,
            tuple(header),
            tuple(tables[: len(levels)]),
            GeoReference.from_json(index.data["georef"]),
            index.data["nodata"],
            tuple(masks),
        )

    def level(self, k: int) -> Level:
        if not 0 <= k < len(self.levels):
            raise ConfigError(f"level {k} does not exist: levels 0..{len(self.levels) - 1}")
        return self.levels[k]
