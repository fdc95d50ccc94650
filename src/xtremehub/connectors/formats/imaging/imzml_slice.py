"""Reading spectra: an :class:`ImzMLSlice` plans coalesced ranged reads of the ``.ibd`` and
decodes them into a :class:`Spectra` batch of NumPy arrays.

Example:
    >>> import numpy as np
    >>> plan_parts([(16, 8), (24, 8), (40, 8)], part_size=1 << 20)
    ([(16, 32), (40, 48)], [(0, 0), (0, 8), (1, 0)])
    >>> s = Spectra(np.arange(2), np.array([[1, 1, 1], [2, 1, 1]], dtype=np.int32),
    ...             np.array([100.0, 200.0]), np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 2, 4]), True)
    >>> s.spectrum(1)
    (array([100., 200.]), array([3., 4.]))
    >>> s.intensity_sums().tolist()
    [3.0, 7.0]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from xtremehub.connectors.base import DataSlice
from xtremehub.connectors.formats.imaging.imzml_xml import DTYPES
from xtremehub.errors import TruncatedData
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

__all__ = ["BATCH_BYTES", "PART_SIZE", "ImzMLSlice", "Spectra", "batch_bounds", "plan_parts"]

#: Coalesced reads are cut into parts of at most this many bytes, fetched concurrently.
PART_SIZE = 8 * 1024 * 1024
#: Iteration (``iter_spectra``, ``iter_records``, ``iter_chunks``) holds about this many
#: ``.ibd`` bytes at a time, whatever the slice's size (``get()`` holds the whole slice).
BATCH_BYTES = 16 * 1024 * 1024

Array = np.ndarray[Any, Any]


def plan_parts(
    arrays: list[tuple[int, int]], part_size: int = PART_SIZE
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Coalesce byte spans ``(offset, nbytes)`` (sorted by offset) into ranged reads.

    Adjacent or overlapping spans share one read; a read grows up to ``part_size`` and
    never cuts a span. Returns the reads ``[(start, end)]`` and, per span, ``(read, offset
    within the read)``.
    """
    parts: list[tuple[int, int]] = []
    where: list[tuple[int, int]] = []
    for offset, nbytes in arrays:
        if parts:
            start, end = parts[-1]
            if offset >= start and offset <= end and max(end, offset + nbytes) - start <= max(part_size, nbytes):
                parts[-1] = (start, max(end, offset + nbytes))
                where.append((len(parts) - 1, offset - start))
                continue
        parts.append((offset, offset + nbytes))
        where.append((len(parts) - 1, 0))
    return parts, where


@dataclass(frozen=True, eq=False)
class Spectra:
    """A batch of spectra as flat NumPy arrays (CSR layout).

    ``intensities[offsets[i]:offsets[i + 1]]`` belongs to spectrum ``indices[i]`` at
    ``coords[i]`` (x, y, z; 1-based as in the file). In continuous mode ``mz`` is the one
    shared m/z array; in processed mode it is flat like ``intensities``.
    """

    indices: Array
    coords: Array
    mz: Array
    intensities: Array
    offsets: Array
    continuous: bool
    fetched_bytes: int = 0

    def __len__(self) -> int:
        return len(self.indices)

    def spectrum(self, i: int) -> tuple[Array, Array]:
        """(m/z, intensities) of the ``i``-th spectrum of the batch."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return (self.mz if self.continuous else self.mz[a:b]), self.intensities[a:b]

    def intensity_matrix(self) -> Array:
        """Continuous mode only: intensities as a (spectra, m/z values) matrix (a view)."""
        if not self.continuous:
            raise ValueError("intensity_matrix() needs continuous mode (one shared m/z array)")
        return self.intensities.reshape(len(self), len(self.mz))

    def intensity_sums(self) -> Array:
        """Total intensity of each spectrum (float64)."""
        if not len(self):
            return np.zeros(0)
        sums = np.add.reduceat(self.intensities.astype(np.float64, copy=False), self.offsets[:-1])
        return np.where(np.diff(self.offsets) > 0, sums, 0.0)


def batch_bounds(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """Cut consecutive items of ``sizes`` bytes into runs ``[(start, stop)]`` of at most ``limit``
    bytes each (an item larger than ``limit`` is a run of its own).

    Example:
        >>> batch_bounds([4, 4, 4, 10, 1], limit=8)
        [(0, 2), (2, 3), (3, 4), (4, 5)]
    """
    bounds: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            bounds.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        bounds.append((start, len(sizes)))
    return bounds


def _gather(bufs: list[Array], where: list[tuple[int, int, int]], codes: list[int]) -> Array:
    """Concatenate arrays found at ``(part, offset, nbytes)`` of the fetched parts, decoded."""
    dtypes = {DTYPES[c] for c in codes}
    if len(dtypes) == 1:  # the usual case: one byte-level concatenation, then a view
        (dtype,) = dtypes
        views = [bufs[p][a : a + n] for p, a, n in where]
        return (np.concatenate(views) if views else np.zeros(0, np.uint8)).view(dtype)
    common = np.result_type(*dtypes)
    pieces = [bufs[p][a : a + n].view(DTYPES[c]).astype(common) for (p, a, n), c in zip(where, codes, strict=True)]
    return np.concatenate(pieces)


@dataclass(frozen=True, eq=False)
class ImzMLSlice(DataSlice):
    """Some spectra of an imzML dataset; ``get()`` gives a :class:`Spectra` batch.

    ``rows`` are the spectra's index rows (:data:`~.imzml_xml.ROW_DTYPE`), ``indices``
    their numbers in the file. Only their arrays' byte ranges of the ``.ibd`` are read.
    """

    ibd_url: str
    rows: Array
    indices: Array
    continuous: bool
    part_size: int = PART_SIZE
    #: the dataset's settings (they travel to workers without credentials)
    access: StoreAccess = PROCESS_DEFAULTS

    def __len__(self) -> int:
        return len(self.rows)

    def _spans(self) -> list[tuple[int, int, int]]:
        """Every array to read as (offset, bytes, dtype code); the shared m/z array once."""
        r = self.rows
        spans = list(zip(r["int_offset"].tolist(), r["int_bytes"].tolist(), r["int_dtype"].tolist(), strict=True))
        if self.continuous:
            if len(r):
                spans.append((int(r["mz_offset"][0]), int(r["mz_bytes"][0]), int(r["mz_dtype"][0])))
        else:
            spans += zip(r["mz_offset"].tolist(), r["mz_bytes"].tolist(), r["mz_dtype"].tolist(), strict=True)
        return spans

    @property
    def nbytes(self) -> int:
        """Bytes this slice reads from the ``.ibd``."""
        return sum(b for _, b, _ in set(self._spans()))

    def _get_ranges(self, parts: list[tuple[int, int]]) -> list[bytes]:
        """The ``.ibd``'s bytes ``[start, end)`` of each part (concurrent ranged reads), checked whole."""
        if not parts:
            return []
        store, key = self.access.open(self.ibd_url)
        data = store.get_ranges(key, parts)
        for (start, end), got in zip(parts, data, strict=True):
            if len(got) != end - start:
                raise TruncatedData(
                    self.ibd_url, start + len(got), f"the .ibd ends before byte {end} (bytes [{start}, {end}) wanted)"
                )
        return data

    def _fetch(self) -> tuple[list[Array], dict[tuple[int, int], tuple[int, int, int]], int]:
        """Fetch the slice's arrays: the parts (uint8) and, per (offset, bytes), where it lies."""
        spans = sorted({(o, b) for o, b, _ in self._spans()})
        parts, where = plan_parts(spans, self.part_size)
        data = self._get_ranges(parts)
        located = {(o, b): (p, at, b) for (o, b), (p, at) in zip(spans, where, strict=True)}
        return [np.frombuffer(d, dtype=np.uint8) for d in data], located, sum(e - s for s, e in parts)

    def get(self) -> Spectra:
        """Fetch the slice's arrays (concurrent, coalesced ranged reads) and decode them."""
        bufs, located, fetched = self._fetch()
        r = self.rows
        offsets = np.zeros(len(r) + 1, dtype=np.int64)
        np.cumsum(r["int_length"], out=offsets[1:])
        spots = [located[k] for k in zip(r["int_offset"].tolist(), r["int_bytes"].tolist(), strict=True)]
        intensities = _gather(bufs, spots, r["int_dtype"].tolist()) if len(r) else np.zeros(0, np.float32)
        if self.continuous and len(r):
            mz = _gather(bufs, [located[(int(r["mz_offset"][0]), int(r["mz_bytes"][0]))]], [int(r["mz_dtype"][0])])
        elif len(r):
            spots = [located[k] for k in zip(r["mz_offset"].tolist(), r["mz_bytes"].tolist(), strict=True)]
            mz = _gather(bufs, spots, r["mz_dtype"].tolist())
        else:
            mz = np.zeros(0)
        coords = np.stack([r["x"], r["y"], r["z"]], axis=1) if len(r) else np.zeros((0, 3), dtype=np.int32)
        return Spectra(self.indices, coords, mz, intensities, offsets, self.continuous, fetched)

    def iter_spectra(self, batch_bytes: int = BATCH_BYTES) -> Iterator[Spectra]:
        """The slice's spectra as :class:`Spectra` batches of consecutive spectra, each reading
        about ``batch_bytes`` of the ``.ibd`` (bounded memory: one batch is held at a time).

        Concatenated, the batches hold what :meth:`get` returns.
        """
        r = self.rows
        sizes = (r["int_bytes"].astype(np.int64) + (0 if self.continuous else r["mz_bytes"])).tolist()
        for a, b in batch_bounds(sizes, batch_bytes):
            yield replace(self, rows=r[a:b], indices=self.indices[a:b]).get()

    def iter_records(self, batch_bytes: int = BATCH_BYTES) -> Iterator[tuple[int, Array, Array, Array]]:
        """One ``(index, (x, y, z), m/z, intensities)`` per spectrum, read batch by batch
        (see :meth:`iter_spectra`); the arrays are views into the current batch."""
        for batch in self.iter_spectra(batch_bytes):
            for i in range(len(batch)):
                mz, intensities = batch.spectrum(i)
                yield int(batch.indices[i]), batch.coords[i], mz, intensities

    def iter_chunks(self) -> Iterator[bytes]:
        """The raw (little-endian) bytes of the slice's arrays, in ``.ibd`` order, read in
        batches of about :data:`BATCH_BYTES` (bounded memory)."""
        spans = sorted({(o, b) for o, b, _ in self._spans()})
        parts, where = plan_parts(spans, self.part_size)
        first = 0  # the first span of the current batch of parts
        for a, b in batch_bounds([end - start for start, end in parts], BATCH_BYTES):
            data = self._get_ranges(parts[a:b])
            while first < len(spans) and where[first][0] < b:
                p, at = where[first]
                yield data[p - a][at : at + spans[first][1]]
                first += 1
