"""imzML mass-spectrometry imaging: an XML description (``.imzML``) and a binary ``.ibd`` beside it.

Preprocessing streams the XML from storage into a columnar NumPy index (one row per
spectrum: pixel x, y, z; offset, length and encoded length and dtype of the m/z and
intensity arrays), finds the ``.ibd`` (same stem, any case of the extension) and checks
it: its first 16 bytes must be the UUID the XML declares, every array must lie inside
it, and a declared SHA-1/MD5 is verified when "cheap" (``.ibd`` at most
``checksum_max_bytes``, default 256 MiB). Neither file is ever rewritten; the index
(about 62 bytes per spectrum) is stored beside the ``.imzML``, and a changed ``.ibd``
makes it stale just like a changed ``.imzML``.

Lenient by default, strict on request: a placeholder UUID or checksum (``0000...``,
wrong length) is recorded in ``attributes["notes"]`` and not checked, and a
``spectrumList count`` that differs from the spectra present (``pewlib_test.imzML``
declares 95,993 and holds 4) is recorded as ``declared_spectra``; the spectra present
are indexed, as pyimzML reads them. ``ImzML(strict=True)`` raises
:class:`~xtremehub.errors.MalformedRecord` for both instead. A UUID or checksum that is
declared and differs always raises :class:`~xtremehub.errors.CorruptData`.

Strategies: :func:`partition_spectra` (N slices of consecutive spectra),
:func:`partition_bytes` (whole spectra, greedy, at most N bytes of ``.ibd`` per slice)
and :func:`partition_tiles` (rectangular tiles of the pixel grid).

Example:
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.imaging import write_synthetic_imzml
    >>> ds = write_synthetic_imzml("mem://ms/tiny", width=4, height=3, n_mz=50)
    >>> co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    >>> co["num_spectra"], co["mode"], co["grid"], co["ibd_url"]
    (12, 'processed', [4, 3], 'mem://ms/tiny.ibd')
    >>> [len(s) for s in co.partition(partition_tiles, tile_width=2, tile_height=2)]
    [4, 4, 2, 2]
    >>> batch = co.partition(partition_spectra, num_batches=2)[1].get()
    >>> batch.coords[0].tolist(), batch.spectrum(0)[1].shape
    ([3, 2, 1], (50,))
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub import storage
from xtremehub.connectors.base import Format, Index, Strategy
from xtremehub.connectors.formats.imaging.imzml_slice import ImzMLSlice
from xtremehub.connectors.formats.imaging.imzml_xml import DTYPES, ROW_DTYPE, ImzMLHeader, parse_imzml
from xtremehub.errors import ConfigError, CorruptData, MalformedRecord, ObjectNotFound, TruncatedData

if TYPE_CHECKING:
    from xtremehub.config import Settings
    from xtremehub.connectors.cloudobject import CloudObject
    from xtremehub.connectors.codecs.mapper import MapperLike

__all__ = [
    "DEFAULT_CHECKSUM_MAX_BYTES",
    "ImzML",
    "find_ibd",
    "partition_bytes",
    "partition_spectra",
    "partition_tiles",
    "spectra_table",
]

log = logging.getLogger(__name__)

#: Verify a declared .ibd checksum only up to this size (a full read of the .ibd).
DEFAULT_CHECKSUM_MAX_BYTES = 256 * 1024 * 1024
_HASH_BLOCK = 8 * 1024 * 1024
_UUID_BYTES = 16

Table = np.ndarray[Any, np.dtype[np.void]]


def find_ibd(imzml_url: str, settings: Settings | None = None) -> str:
    """The ``.ibd`` beside an ``.imzML``: same stem, extension in any case.

    Raises :class:`ObjectNotFound` naming the expected URL when there is none.
    """
    stem = imzml_url.rpartition(".")[0] if "." in imzml_url.rpartition("/")[2] else imzml_url
    for ext in (".ibd", ".IBD"):
        if storage.exists(stem + ext, settings=settings):
            return stem + ext
    wanted = (stem.rpartition("/")[2] + ".ibd").lower()
    try:
        for info in storage.list(stem, settings=settings):
            if info.url.rpartition("/")[2].lower() == wanted:
                return info.url
    except ObjectNotFound:
        pass
    raise ObjectNotFound(stem + ".ibd", detail=f"no .ibd beside {imzml_url} (same stem, any case of '.ibd')")


def _valid_hex(value: str | None, length: int) -> bool:
    return (
        bool(value)
        and len(value or "") == length
        and set(value or "") <= set("0123456789abcdef")
        and bool((value or "").strip("0"))
    )


class ImzML(Format):
    """imzML (continuous or processed, uncompressed arrays) with its ``.ibd``.

    Options: ``ibd_url`` (default: found beside the ``.imzML``), ``checksum_max_bytes``
    (verify a declared SHA-1/MD5 up to this ``.ibd`` size; 0 never), ``strict``
    (placeholder UUID/checksum and a wrong ``spectrumList count`` are errors).
    """

    name = "imzml"
    index_version = 1

    def __init__(
        self,
        ibd_url: str | None = None,
        checksum_max_bytes: int = DEFAULT_CHECKSUM_MAX_BYTES,
        strict: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(ibd_url=ibd_url, checksum_max_bytes=checksum_max_bytes, strict=strict, **options)
        self.ibd_url, self.checksum_max_bytes, self.strict = ibd_url, checksum_max_bytes, strict
        self._found: dict[str, str] = {}

    def ibd(self, co: CloudObject) -> str:
        """The ``.ibd`` URL of ``co`` (looked up once)."""
        if self.ibd_url:
            return self.ibd_url
        if co.url not in self._found:
            self._found[co.url] = find_ibd(co.url, co.settings)
        return self._found[co.url]

    def companion_identity(self, co: CloudObject) -> dict[str, Any]:
        info = storage.head(self.ibd(co), settings=co.settings)
        return {"ibd": {"url": info.url, "size": info.size, "etag": info.etag}}

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        ibd_url = self.ibd(co)
        ibd_size = storage.head(ibd_url, settings=co.settings).size
        with storage.open(co.url, settings=co.settings) as fh:
            header, table = parse_imzml(fh, co.url)
        notes = list(header.notes)
        notes += self._check_uuid(co, header, ibd_url, ibd_size)
        notes += self._check_count(co, header, len(table))
        _check_extents(table, ibd_url, ibd_size)
        continuous = header.mode == "continuous"
        if continuous:
            _check_shared_mz(co.url, table)
        checksum = self._check_checksum(co, header, ibd_url, ibd_size)
        for note in notes:
            log.warning("%s: %s", co.url, note)
        width = max(int(table["x"].max()) if len(table) else 0, header.max_x or 0)
        height = max(int(table["y"].max()) if len(table) else 0, header.max_y or 0)
        array_bytes = int(table["int_bytes"].sum()) + (
            int(table["mz_bytes"][0]) if continuous and len(table) else int(table["mz_bytes"].sum())
        )
        attributes: dict[str, Any] = {
            "num_spectra": len(table),
            "declared_spectra": header.declared_spectra,
            "mode": header.mode,
            "uuid": header.uuid,
            "ibd_url": ibd_url,
            "ibd_size": ibd_size,
            "grid": [width, height],
            "z_values": sorted({int(z) for z in np.unique(table["z"])}),
            "mz_dtypes": sorted({DTYPES[c] for c in np.unique(table["mz_dtype"])}),
            "intensity_dtypes": sorted({DTYPES[c] for c in np.unique(table["int_dtype"])}),
            "mz_values_total": int(table["mz_length"].sum()),
            "array_bytes": array_bytes,
            "checksum": checksum,
            "notes": notes,
        }
        data = {"ibd_url": ibd_url, "rows": len(table)}
        return Index(self.name, self.index_version, {}, attributes, data, table.tobytes())

    def _check_uuid(self, co: CloudObject, header: ImzMLHeader, ibd_url: str, ibd_size: int) -> list[str]:
        if ibd_size < _UUID_BYTES:
            raise TruncatedData(ibd_url, ibd_size, f"the .ibd has {ibd_size} bytes, fewer than its 16-byte UUID")
        found = storage.get_range(ibd_url, 0, _UUID_BYTES, settings=co.settings).hex()
        if header.uuid is None:
            detail = (
                f"UUID {header.uuid_declared!r} is a placeholder (the .ibd starts with {found}); not checked"
                if header.uuid_declared is not None
                else f"no UUID declared (the .ibd starts with {found}); not checked"
            )
            if self.strict:
                raise MalformedRecord(co.url, 0, detail + " [strict]", "record")
            return [detail]
        if found != header.uuid:
            raise CorruptData(
                ibd_url,
                0,
                f"the .ibd's UUID {found} differs from UUID {header.uuid} declared in {co.url}: "
                "the two files do not belong together",
                "uncompressed",
            )
        return []

    def _check_count(self, co: CloudObject, header: ImzMLHeader, present: int) -> list[str]:
        if header.declared_spectra is None or header.declared_spectra == present:
            return []
        detail = f"<spectrumList count> declares {header.declared_spectra} spectra but {present} are present"
        if self.strict:
            raise MalformedRecord(co.url, present, detail + " [strict]", "record")
        return [detail + "; the spectra present are indexed"]

    def _check_checksum(self, co: CloudObject, header: ImzMLHeader, ibd_url: str, ibd_size: int) -> str:
        declared = [(n, v) for n, v, k in (("sha1", header.sha1, 40), ("md5", header.md5, 32)) if _valid_hex(v, k)]
        placeholders = [n for n, v in (("sha1", header.sha1), ("md5", header.md5)) if v and (n, v) not in declared]
        if not declared:
            status = f"placeholder {'/'.join(placeholders)}: not checked" if placeholders else "none declared"
            if placeholders and self.strict:
                raise MalformedRecord(co.url, 0, f"the .ibd {status} [strict]", "record")
            return status
        name, value = declared[0]
        if ibd_size > self.checksum_max_bytes:
            return (
                f"{name} declared, not checked (.ibd {ibd_size} bytes > checksum_max_bytes {self.checksum_max_bytes})"
            )
        digest = hashlib.new(name)
        with storage.open(ibd_url, block_size=_HASH_BLOCK, settings=co.settings) as fh:
            for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
                digest.update(block)
        if digest.hexdigest() != value:
            raise CorruptData(
                ibd_url,
                0,
                f"the .ibd's {name} {digest.hexdigest()} differs from {value} declared in {co.url}",
                "record",
            )
        return f"{name} verified"


def _check_extents(table: Table, ibd_url: str, ibd_size: int) -> None:
    """Every array must lie in ``[16, ibd size)``; the first one that does not is named."""
    for kind in ("mz", "int"):
        offsets, nbytes = table[f"{kind}_offset"], table[f"{kind}_bytes"]
        ends = offsets + nbytes
        bad = np.flatnonzero(ends > ibd_size)
        if len(bad):
            i = int(bad[0])
            raise TruncatedData(
                ibd_url,
                ibd_size,
                f"spectrum {i} at {_xyz(table, i)}: its {'m/z' if kind == 'mz' else 'intensity'} array "
                f"[{int(offsets[i])}, {int(ends[i])}) ends past the end of the .ibd ({ibd_size} bytes)",
                "uncompressed",
            )
        low = np.flatnonzero((offsets < _UUID_BYTES) & (nbytes > 0))
        if len(low):
            i = int(low[0])
            raise MalformedRecord(
                ibd_url, int(offsets[i]), f"spectrum {i}: {kind} array starts inside the 16-byte UUID", "uncompressed"
            )


def _check_shared_mz(url: str, table: Table) -> None:
    if not len(table):
        return
    first = table[["mz_offset", "mz_length", "mz_dtype"]][0]
    differs = np.flatnonzero(table[["mz_offset", "mz_length", "mz_dtype"]] != first)
    if len(differs):
        i = int(differs[0])
        raise MalformedRecord(
            url, i, f"continuous mode, but spectrum {i} at {_xyz(table, i)} has its own m/z array", "record"
        )


def _xyz(table: Table, i: int) -> tuple[int, int, int]:
    return int(table["x"][i]), int(table["y"][i]), int(table["z"][i])


def spectra_table(co: CloudObject) -> Table:
    """The index as a structured array (:data:`~.imzml_xml.ROW_DTYPE`), one row per spectrum."""
    return np.frombuffer(co.index.blob, dtype=ROW_DTYPE, count=int(co.index.data["rows"]))


def _make(co: CloudObject, table: Table, indices: np.ndarray[Any, Any]) -> ImzMLSlice:
    continuous = co["mode"] == "continuous"
    return ImzMLSlice(co.index.data["ibd_url"], table[indices].copy(), indices, continuous, access=co.access)


def partition_spectra(
    co: CloudObject, num_batches: int | None = None, spectra_per_slice: int | None = None
) -> list[ImzMLSlice]:
    """Consecutive spectra (file order): ``num_batches`` near-equal slices, or ``spectra_per_slice`` each."""
    table = spectra_table(co)
    n = len(table)
    if (num_batches is None) == (spectra_per_slice is None):
        raise ConfigError("give num_batches or spectra_per_slice")
    if num_batches is not None:
        if num_batches < 1:
            raise ConfigError("num_batches must be >= 1")
        bounds = np.linspace(0, n, min(num_batches, max(n, 1)) + 1).round().astype(np.int64)
    else:
        if spectra_per_slice is None or spectra_per_slice < 1:
            raise ConfigError("spectra_per_slice must be >= 1")
        bounds = np.append(np.arange(0, n, spectra_per_slice), n)
    return [_make(co, table, np.arange(a, b)) for a, b in itertools.pairwise(bounds) if b > a]


def partition_bytes(co: CloudObject, bytes_per_slice: int) -> list[ImzMLSlice]:
    """Whole consecutive spectra, greedily, at most ``bytes_per_slice`` bytes of ``.ibd`` per slice.

    In continuous mode the shared m/z array counts once per slice. A spectrum that alone
    exceeds the limit raises :class:`ConfigError` naming it.
    """
    table = spectra_table(co)
    continuous = co["mode"] == "continuous"
    fixed = int(table["mz_bytes"][0]) if continuous and len(table) else 0
    sizes = table["int_bytes"] + (0 if continuous else table["mz_bytes"])
    over = np.flatnonzero(sizes + fixed > bytes_per_slice)
    if len(over):
        i = int(over[0])
        raise ConfigError(
            f"{co.url}: spectrum {i} at {_xyz(table, i)} needs {int(sizes[i]) + fixed} bytes, "
            f"more than bytes_per_slice={bytes_per_slice}"
        )
    slices, start, acc = [], 0, fixed
    for i, size in enumerate(sizes.tolist()):
        if acc + size > bytes_per_slice:
            slices.append(_make(co, table, np.arange(start, i)))
            start, acc = i, fixed
        acc += size
    if start < len(table):
        slices.append(_make(co, table, np.arange(start, len(table))))
    return slices


def partition_tiles(
    co: CloudObject,
    tile_width: int | None = None,
    tile_height: int | None = None,
    *,
    tiles: tuple[int, int] | None = None,
) -> list[ImzMLSlice]:
    """Rectangular tiles of the pixel grid, row by row; every spectrum in exactly one tile.

    Give the tile size in pixels (``tile_width``, ``tile_height``; square by default) or
    the number of tiles across and down (``tiles=(nx, ny)``). Empty tiles are left out;
    spectra keep file order within a tile, so contiguous runs are read together.
    """
    table = spectra_table(co)
    width, height = co["grid"]
    if tiles is not None:
        if tile_width is not None or tile_height is not None:
            raise ConfigError("give tile_width/tile_height or tiles, not both")
        tile_width, tile_height = math.ceil(width / max(tiles[0], 1)), math.ceil(height / max(tiles[1], 1))
    if tile_width is None:
        raise ConfigError("give tile_width (and tile_height) or tiles=(nx, ny)")
    tile_height = tile_height or tile_width
    if tile_width < 1 or tile_height < 1:
        raise ConfigError("tiles must be at least 1x1 pixel")
    x0, y0 = (int(table["x"].min()), int(table["y"].min())) if len(table) else (1, 1)
    across = max(math.ceil((width - x0 + 1) / tile_width), 1)
    key = ((table["y"] - y0) // tile_height).astype(np.int64) * across + (table["x"] - x0) // tile_width
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return [_make(co, table, group) for group in np.split(order, cuts) if len(group)]


_STRATEGIES: dict[str, Strategy] = {"spectra": partition_spectra, "bytes": partition_bytes, "tiles": partition_tiles}
ImzML.strategies = _STRATEGIES
