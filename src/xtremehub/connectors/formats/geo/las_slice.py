"""A slice of a LAS/LAZ/COPC object: whole LASzip chunks (or LAS record spans), optionally one grid tile.

``get()`` returns a laspy :class:`~laspy.ScaleAwarePointRecord`: ``.x/.y/.z`` are scaled
coordinates (float64), ``.X/.Y/.Z`` the stored integers, ``.array`` the NumPy structured
array of the point format. A slice fetches exactly its byte ranges (concurrent ranged GETs)
and decompresses each LASzip chunk independently with lazrs.

Example:
    >>> import numpy as np, laspy
    >>> from xtremehub import storage
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.pointcloud import LAS, partition_points
    >>> las = laspy.create(point_format=3, file_version="1.2")
    >>> las.x, las.y, las.z = np.arange(10.0), np.arange(10.0), np.zeros(10)
    >>> buf = __import__("io").BytesIO(); las.write(buf)
    >>> _ = storage.put("mem://pc/tiny.las", buf.getvalue())
    >>> co = CloudObject.from_path(LAS, "mem://pc/tiny.las").preprocess()
    >>> [len(s.get()) for s in co.partition(partition_points, num_batches=3)]
    [3, 4, 3]
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import laspy
import lazrs
import numpy as np

from xtremehub.connectors.base import DataSlice
from xtremehub.connectors.formats.geo.las_layout import parse_header
from xtremehub.connectors.formats.geo.pointcloud_grid import Grid
from xtremehub.errors import CorruptData, TruncatedData
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

__all__ = ["PointCloudSlice"]

log = logging.getLogger(__name__)

#: iter_records fetches and decodes at most this many bytes at once, compressed or decoded
#: (a LAZ batch decodes to several times its compressed size): memory stays bounded.
_BATCH = 16 * 1024 * 1024
_PART = 8 * 1024 * 1024  # concurrent ranged-GET part size
_ALL = laspy.DecompressionSelection.all()


@dataclass(frozen=True)
class PointCloudSlice(DataSlice):
    """Points of ``runs`` (``(byte offset, byte size, point count)``: LASzip chunks, or LAS record spans).

    With ``tile = (grid, col, row)`` only the points that the grid assigns to that cell are kept.
    ``header_bytes`` (the object's header and VLRs) let any worker rebuild the point format;
    ``access`` holds the object's settings (see :class:`~xtremehub.storage.access.StoreAccess`).
    """

    url: str
    object_size: int
    header_bytes: bytes
    laszip_vlr: bytes  # b"" for uncompressed LAS
    runs: tuple[tuple[int, int, int], ...]
    tile: tuple[Grid, int, int] | None = None
    #: the object's settings (they travel to workers without credentials)
    access: StoreAccess = PROCESS_DEFAULTS

    @property
    def compressed(self) -> bool:
        return bool(self.laszip_vlr)

    @property
    def point_count(self) -> int:
        """Points in the slice's runs (before filtering to the tile, if any)."""
        return sum(n for _, _, n in self.runs)

    @property
    def nbytes(self) -> int:
        """Bytes the slice fetches."""
        return sum(size for _, size, _ in self.runs)

    @cached_property
    def header(self) -> laspy.LasHeader:
        return parse_header(self.url, self.header_bytes)

    def _batches(self) -> Iterator[list[tuple[int, int, int]]]:
        """Runs grouped (LAS spans split) so that each batch stays under ``_BATCH`` bytes, fetched
        and decoded (one LASzip chunk larger than that is a batch of its own)."""
        batch: list[tuple[int, int, int]] = []
        size = 0
        record = int(self.header.point_format.size)
        for off, nbytes, count in self.runs:
            pieces = [(off, nbytes, count)]
            if not self.compressed and nbytes > _BATCH:
                per = max(1, _BATCH // record)
                pieces = [
                    (off + k * record, min(per, count - k) * record, min(per, count - k)) for k in range(0, count, per)
                ]
            for piece in pieces:
                cost = max(piece[1], piece[2] * record)
                if batch and size + cost > _BATCH:
                    yield batch
                    batch, size = [], 0
                batch.append(piece)
                size += cost
        if batch:
            yield batch

    def _fetch(self, batch: Sequence[tuple[int, int, int]]) -> bytes:
        """The batch's bytes: adjacent chunks merged into one range, long ranges cut into concurrent parts."""
        merged: list[list[int]] = []
        for off, nbytes, _ in batch:
            if off + nbytes > self.object_size:
                raise TruncatedData(
                    self.url, off, f"points at [{off}, {off + nbytes}) run past the object end {self.object_size}"
                )
            if merged and merged[-1][1] == off:
                merged[-1][1] = off + nbytes
            else:
                merged.append([off, off + nbytes])
        parts = [(a, min(a + _PART, end)) for start, end in merged for a in range(start, end, _PART)]
        store, key = self.access.open(self.url)
        blobs = store.get_ranges(key, parts)
        for (a, b), blob in zip(parts, blobs, strict=True):
            if len(blob) != b - a:
                raise TruncatedData(self.url, a + len(blob), f"short read of [{a}, {b}): the object was truncated")
        return b"".join(blobs)

    def _decompress(self, raw: bytes, batch: Sequence[tuple[int, int, int]], selection: Any) -> np.ndarray[Any, Any]:
        """lazrs's sequential decompressor over the batch's chunks, given their own chunk table.

        The single-threaded decompressor is used on purpose: lazrs's parallel entry points run
        on a rayon thread pool, which deadlocks in worker processes forked after the parent used it.
        """
        record = int(self.header.point_format.size)
        stream = io.BytesIO()
        stream.write(struct.pack("<q", 8 + len(raw)))  # where the chunk table below starts
        stream.write(raw)
        lazrs.write_chunk_table(stream, [(n, size) for _, size, n in batch], lazrs.LazVlr(self.laszip_vlr))
        stream.seek(0)
        out = np.zeros(sum(n for _, _, n in batch) * record, dtype=np.uint8)
        lazrs.LasZipDecompressor(stream, self.laszip_vlr, selection.to_lazrs()).decompress_many(out)
        return out

    def _decode(self, raw: bytes, batch: Sequence[tuple[int, int, int]], selection: Any) -> np.ndarray[Any, Any]:
        record = int(self.header.point_format.size)
        if not self.compressed:
            return np.frombuffer(raw, dtype=np.uint8, count=sum(n for _, _, n in batch) * record)
        try:
            return self._decompress(raw, batch, selection)
        except lazrs.LazrsError as exc:
            pos = 0
            for off, size, n in batch:  # decompress chunk by chunk to name the first bad one
                try:
                    self._decompress(raw[pos : pos + size], [(off, size, n)], selection)
                except lazrs.LazrsError as bad:
                    cls = TruncatedData if "fill whole buffer" in str(bad) else CorruptData
                    raise cls(
                        self.url, off, f"LAZ chunk of {n} points, {size} bytes does not decompress ({bad})"
                    ) from bad
                pos += size
            raise CorruptData(self.url, batch[0][0], f"LAZ chunks do not decompress ({exc})") from exc

    def iter_records(
        self, selection: laspy.DecompressionSelection | None = None
    ) -> Iterator[laspy.ScaleAwarePointRecord]:
        """The points batch by batch (bounded memory). ``selection`` limits which LAS 1.4 fields
        (point formats 6-10) are decompressed; the others read as zeros."""
        header = self.header
        for batch in self._batches():
            raw = self._fetch(batch)
            packed = laspy.PackedPointRecord.from_buffer(
                self._decode(raw, batch, selection or _ALL), header.point_format
            )
            records = laspy.ScaleAwarePointRecord(packed.array, header.point_format, header.scales, header.offsets)
            if self.tile is not None:
                grid, col, row = self.tile
                cols, rows = grid.cells(np.asarray(records.x), np.asarray(records.y))
                keep = (cols == col) & (rows == row)
                records = laspy.ScaleAwarePointRecord(
                    records.array[keep], header.point_format, header.scales, header.offsets
                )
            yield records

    def read(self, selection: laspy.DecompressionSelection | None = None) -> laspy.ScaleAwarePointRecord:
        """All the slice's points in one record (see :meth:`iter_records` for ``selection``)."""
        parts = [r.array for r in self.iter_records(selection)]
        h = self.header
        array = np.concatenate(parts) if parts else np.zeros(0, h.point_format.dtype())
        return laspy.ScaleAwarePointRecord(array, h.point_format, h.scales, h.offsets)

    def get(self) -> laspy.ScaleAwarePointRecord:
        """All the slice's points as a laspy ``ScaleAwarePointRecord`` (``.array``: NumPy structured)."""
        return self.read()

    def iter_chunks(self) -> Iterator[bytes]:
        """The slice's points as packed (uncompressed) point records, batch by batch."""
        for records in self.iter_records():
            yield records.array.tobytes()

    def to_file(self, path: str | Path) -> Path:
        """Write the slice's points as a LAS file (LAZ if ``path`` ends in ``.laz``), same point format,
        scales, offsets and VLRs as the object."""
        target = Path(path)
        header = parse_header(self.url, self.header_bytes)
        for vlr in [v for v in header.vlrs if type(v).__name__ in {"LasZipVlr", "CopcInfoVlr"}]:
            header.vlrs.remove(vlr)  # laspy writes its own LASzip VLR; the slice is no COPC
        with laspy.open(target, mode="w", header=header, do_compress=target.suffix.lower() == ".laz") as writer:
            for records in self.iter_records():
                writer.write_points(records)
        return target
