"""Where the points of a LAS, LAZ or COPC object are: header, LASzip chunk table, COPC hierarchy.

Everything here is read with a few ranged GETs, never the point data: the header
and VLRs (parsed by laspy), the LASzip chunk table at the offset written just after
the header (decoded by lazrs), and, for COPC, the hierarchy pages named by the COPC
info VLR (root page and any sub-pages). The result is a table of *chunks* in file
order, each independently decompressible: ``offset``, ``byte_size``, ``point_count``
and, for COPC, the octree key ``(level, kx, ky, kz)`` (``level = -1`` otherwise).

Example:
    >>> import numpy as np
    >>> from xtremehub.connectors.formats.geo.las_layout import CHUNK_DTYPE, merge_runs
    >>> chunks = np.array([(100, 10, 5, -1, 0, 0, 0), (110, 20, 5, -1, 0, 0, 0), (200, 5, 2, -1, 0, 0, 0)], CHUNK_DTYPE)
    >>> merge_runs(chunks)
    [(100, 130), (200, 205)]
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import laspy
import lazrs
import numpy as np
from laspy.copc import CopcInfoVlr

from xtremehub import storage
from xtremehub.errors import CorruptData, TruncatedData, UnsupportedData

if TYPE_CHECKING:
    from xtremehub.config import Settings

__all__ = ["CHUNK_DTYPE", "LasLayout", "merge_runs", "parse_header", "read_layout"]

log = logging.getLogger(__name__)

#: One independently readable block of points (a LASzip chunk, or a COPC octree node).
CHUNK_DTYPE = np.dtype(
    [
        ("offset", "<u8"),
        ("byte_size", "<u8"),
        ("point_count", "<u8"),
        ("level", "<i4"),
        ("kx", "<i4"),
        ("ky", "<i4"),
        ("kz", "<i4"),
    ]
)
# COPC hierarchy entry: VoxelKey (level, x, y, z), offset, byteSize, pointCount (-1: a sub-page)
_ENTRY = np.dtype(
    [
        ("level", "<i4"),
        ("x", "<i4"),
        ("y", "<i4"),
        ("z", "<i4"),
        ("offset", "<u8"),
        ("byte_size", "<i4"),
        ("point_count", "<i4"),
    ]
)
_MIN_HEADER = 227  # LAS 1.0-1.2 header size; 1.3 and 1.4 are longer
_FIRST_FETCH = 64 * 1024
_MAX_PAGES = 1_000_000
_VLR_HEADER = 54  # a VLR's header before its record: reserved, user id, record id, length, description


@dataclass(frozen=True)
class LasLayout:
    """The parsed header and where the points are.

    Attributes:
        header_bytes: the raw header and VLRs (``[0, offset_to_point_data)``), enough to rebuild
            the laspy header on any worker.
        compressed: LAZ (LASzip) point data.
        laszip_vlr: the raw LASzip VLR record data (``b""`` for LAS).
        chunks: :data:`CHUNK_DTYPE` rows in file order (empty for LAS).
        copc: the COPC info (center, halfsize, spacing, hierarchy root) or ``None``.
    """

    header_bytes: bytes
    compressed: bool
    laszip_vlr: bytes
    chunks: np.ndarray[Any, np.dtype[Any]]
    copc: dict[str, Any] | None

    @property
    def header(self) -> laspy.LasHeader:
        return parse_header("<layout>", self.header_bytes)


def parse_header(url: str, header_bytes: bytes) -> laspy.LasHeader:
    """laspy's header from the raw header + VLR bytes; laspy's complaints become :class:`CorruptData`."""
    try:
        return laspy.LasHeader.read_from(io.BytesIO(header_bytes))
    except (laspy.LaspyException, ValueError, struct.error, EOFError, IndexError) as exc:
        raise CorruptData(url, 0, f"invalid LAS header ({exc})") from exc


def merge_runs(chunks: np.ndarray[Any, np.dtype[Any]]) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` covering ``chunks`` (in their order), adjacent ones merged."""
    runs: list[tuple[int, int]] = []
    for off, size in zip(chunks["offset"].tolist(), chunks["byte_size"].tolist(), strict=True):
        if runs and runs[-1][1] == off:
            runs[-1] = (runs[-1][0], off + size)
        else:
            runs.append((off, off + size))
    return runs


def _fetch(url: str, start: int, end: int, size: int, settings: Settings | None, what: str) -> bytes:
    if end > size:
        raise TruncatedData(url, size, f"{what} needs bytes [{start}, {end}) but the object has {size} bytes")
    data = storage.get_range(url, start, end, settings=settings)
    if len(data) != end - start:
        raise TruncatedData(url, start + len(data), f"{what}: short read ({len(data)} of {end - start} bytes)")
    return data


def read_layout(url: str, size: int, settings: Settings | None = None) -> LasLayout:
    """Read the header, the LASzip chunk table and the COPC hierarchy of the object at ``url``."""
    head = storage.get_range(url, 0, min(size, _FIRST_FETCH), settings=settings)
    if head[:4] != b"LASF":
        raise CorruptData(url, 0, f"bad LAS file signature {head[:4]!r} (expected b'LASF')")
    if len(head) < _MIN_HEADER:
        raise TruncatedData(url, len(head), f"the LAS header needs {_MIN_HEADER} bytes, the object has {len(head)}")
    (point_data_start,) = struct.unpack_from("<I", head, 96)
    if point_data_start < _MIN_HEADER:
        raise CorruptData(url, 96, f"offset to point data {point_data_start} is inside the header")
    if point_data_start > len(head):
        head = _fetch(url, 0, point_data_start, size, settings, "the LAS header and VLRs")
    header_bytes = head[:point_data_start]
    header = parse_header(url, header_bytes)
    compressed = bool(header_bytes[104] & 0x80)
    total = int(header.point_count)
    if not compressed:
        end = point_data_start + total * int(header.point_format.size)
        if end > size:
            raise TruncatedData(
                url, size, f"{total} points of {header.point_format.size} bytes end at byte {end}, past the object"
            )
        return LasLayout(header_bytes, False, b"", np.zeros(0, CHUNK_DTYPE), None)
    zip_vlrs = header.vlrs.get("LasZipVlr")
    if not zip_vlrs:
        raise CorruptData(url, 104, "LAZ point format bit is set but there is no LASzip VLR")
    laszip_vlr = bytes(zip_vlrs[0].record_data_bytes())
    _check_laszip_version(url, laszip_vlr, _vlr_offset(header_bytes))
    try:
        laz_vlr = lazrs.LazVlr(laszip_vlr)
    except lazrs.LazrsError as exc:
        raise CorruptData(url, 0, f"invalid LASzip VLR ({exc})") from exc
    copc_info = next((v for v in header.vlrs if isinstance(v, CopcInfoVlr)), None)
    if copc_info is not None:
        chunks = _copc_nodes(url, size, settings, copc_info, point_data_start)
        copc: dict[str, Any] | None = {
            "center": [float(c) for c in copc_info.center],
            "halfsize": float(copc_info.halfsize),
            "spacing": float(copc_info.spacing),
            "hierarchy_root_offset": int(copc_info.hierarchy_root_offset),
            "hierarchy_root_size": int(copc_info.hierarchy_root_size),
        }
    else:
        chunks, copc = _laszip_chunks(url, size, settings, laz_vlr, point_data_start, total), None
    counted = int(chunks["point_count"].sum())
    if counted != total:
        raise CorruptData(url, point_data_start, f"the chunks hold {counted} points, the header says {total}")
    return LasLayout(header_bytes, True, laszip_vlr, chunks, copc)


#: LASzip VLR ``compressor`` codes (LASzip's laszip.hpp).
_COMPRESSORS = {0: "none", 1: "pointwise", 2: "pointwise chunked", 3: "layered chunked"}
_CHUNKED = (2, 3)


def _vlr_offset(header_bytes: bytes) -> int:
    """Byte offset of the LASzip VLR's record (for error messages; 0 if not found)."""
    at = header_bytes.find(b"laszip encoded")
    return at - 2 + _VLR_HEADER if at >= 2 else 0


def _check_laszip_version(url: str, vlr: bytes, offset: int) -> None:
    """Refuse LAZ variants without a chunk table, naming the LASzip version that wrote them.

    LASzip 1.x (e.g. "1.2r0") compressed point by point (``compressor`` 1): the point data
    holds no chunk-table offset and no chunks, so nothing can be read independently. The
    8 bytes read as that offset would be the first point's coordinates (a nonsense offset).
    """
    if len(vlr) < 8:
        raise CorruptData(url, offset, f"the LASzip VLR holds {len(vlr)} bytes, fewer than its 8-byte preamble")
    compressor, _coder, major, minor, revision = struct.unpack_from("<HHBBH", vlr)
    if compressor in _CHUNKED:
        return
    kind = _COMPRESSORS.get(compressor, f"unknown ({compressor})")
    raise UnsupportedData(
        url,
        offset,
        f"LAZ written by LASzip {major}.{minor}r{revision} with the {kind!r} compressor is not supported: "
        f"it has no chunk table, so its points cannot be read in independent parts; "
        f"re-compress it with LASzip >= 2.0 (e.g. `laszip -i in.laz -o out.laz`, PDAL or laspy)",
    )


def _laszip_chunks(
    url: str, size: int, settings: Settings | None, laz_vlr: lazrs.LazVlr, start: int, total: int
) -> np.ndarray[Any, np.dtype[Any]]:
    (table_offset,) = struct.unpack("<q", _fetch(url, start, start + 8, size, settings, "the chunk table offset"))
    if table_offset == -1:  # written at the very end by streaming LASzip writers
        (table_offset,) = struct.unpack("<q", _fetch(url, size - 8, size, size, settings, "the chunk table offset"))
    if table_offset == start:  # LASzip's mark of a writer stopped before it wrote the table
        raise CorruptData(url, start, "the LASzip writer was interrupted before it wrote the chunk table")
    if not start + 8 <= table_offset <= size - 8:
        raise CorruptData(url, start, f"chunk table offset {table_offset} is outside the object (size {size})")
    _version, count = struct.unpack("<II", _fetch(url, table_offset, table_offset + 8, size, settings, "chunk table"))
    end = min(size, table_offset + 8 + 16 * count + 64)
    raw = storage.get_range(url, table_offset, end, settings=settings)
    try:
        table = lazrs.read_chunk_table_only(io.BytesIO(raw), laz_vlr)
    except lazrs.LazrsError as exc:
        raise CorruptData(url, table_offset, f"unreadable LASzip chunk table ({exc})") from exc
    if not table:
        raise CorruptData(url, table_offset, "the LASzip chunk table is empty")
    chunks = np.zeros(len(table), CHUNK_DTYPE)
    sizes = np.array([s for _, s in table], dtype=np.uint64)
    chunks["byte_size"] = sizes
    chunks["offset"] = start + 8 + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.uint64)
    chunks["level"] = -1
    if laz_vlr.uses_variable_size_chunks():
        chunks["point_count"] = [n for n, _ in table]
    else:
        per = int(laz_vlr.chunk_size())
        last = total - per * (len(table) - 1)
        if not 0 < last <= per:
            raise CorruptData(url, table_offset, f"{len(table)} chunks of {per} points cannot hold {total} points")
        chunks["point_count"] = per
        chunks["point_count"][-1] = last
    data_end = int(chunks["offset"][-1] + chunks["byte_size"][-1])
    if data_end > table_offset:
        raise CorruptData(url, table_offset, f"the chunk table says point data ends at byte {data_end}, past itself")
    return chunks


def _copc_nodes(
    url: str, size: int, settings: Settings | None, info: CopcInfoVlr, start: int
) -> np.ndarray[Any, np.dtype[Any]]:
    pages = [(int(info.hierarchy_root_offset), int(info.hierarchy_root_size))]
    found: list[np.ndarray[Any, np.dtype[Any]]] = []
    while pages:
        if len(found) > _MAX_PAGES:
            raise CorruptData(url, pages[0][0], "the COPC hierarchy has too many pages (a loop?)")
        offset, nbytes = pages.pop()
        if nbytes % _ENTRY.itemsize:
            raise CorruptData(url, offset, f"COPC hierarchy page of {nbytes} bytes is not whole 32-byte entries")
        entries = np.frombuffer(_fetch(url, offset, offset + nbytes, size, settings, "COPC hierarchy page"), _ENTRY)
        sub = entries[entries["point_count"] == -1]
        pages.extend(zip(sub["offset"].tolist(), sub["byte_size"].tolist(), strict=True))
        found.append(entries[entries["point_count"] > 0])
    entries = np.concatenate(found)
    chunks = np.zeros(len(entries), CHUNK_DTYPE)
    for ours, theirs in (("offset", "offset"), ("byte_size", "byte_size"), ("point_count", "point_count")):
        chunks[ours] = entries[theirs]
    for ours, theirs in (("level", "level"), ("kx", "x"), ("ky", "y"), ("kz", "z")):
        chunks[ours] = entries[theirs]
    chunks = chunks[np.argsort(chunks["offset"], kind="stable")]
    bad = (chunks["offset"] < start) | (chunks["offset"] + chunks["byte_size"] > size)
    if bad.any():
        row = chunks[np.flatnonzero(bad)[0]]
        raise TruncatedData(
            url,
            int(row["offset"]),
            f"COPC node {row['level']}-{row['kx']}-{row['ky']}-{row['kz']} lies outside the object",
        )
    return chunks
