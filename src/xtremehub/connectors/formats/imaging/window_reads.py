"""Partial reads of an imzML ``.ibd``: only the values inside m/z windows.

Ion images need the peaks inside narrow m/z windows, not whole spectra. Given sorted,
disjoint windows ``[lows[k], highs[k]]`` (ends included), :func:`read_window_peaks`
reads from the ``.ibd``:

* continuous mode: the one shared m/z array, then, per spectrum, only the intensity
  index ranges inside the windows;
* processed mode: the spectra's m/z arrays, then only the intensities where a window
  hits.

The wanted byte ranges are coalesced across gaps up to ``gap_bytes`` (a few more
bytes read save a request), widened until a slice needs at most ``max_requests``
ranged reads. A slice mixing array data types falls back to reading it whole.

Example:
    >>> import numpy as np
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.formats.imaging.imzml import ImzML
    >>> from xtremehub.connectors.formats.imaging.synthetic import write_synthetic_imzml
    >>> ds = write_synthetic_imzml("mem://win/c", width=8, height=8, n_mz=1000, mode="continuous")
    >>> co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    >>> part = co.partition("spectra", num_batches=1)[0]
    >>> got = read_window_peaks(part, np.array([300.0]), np.array([301.0]), gap_bytes=0)
    >>> bool(got.fetched_bytes < ds.ibd_size / 10), bool(((got.mz >= 300) & (got.mz <= 301)).all())
    (True, True)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtremehub.config import Settings
from xtremehub.connectors.formats.imaging.imzml_slice import ImzMLSlice
from xtremehub.connectors.formats.imaging.imzml_xml import DTYPES
from xtremehub.errors import TruncatedData
from xtremehub.storage import Store
from xtremehub.storage.access import StoreAccess

__all__ = ["WindowPeaks", "in_windows", "read_window_peaks"]

Array = np.ndarray[Any, Any]
Opener = Callable[[str], tuple[Store, str]]

#: Default: coalesce wanted ranges separated by at most this many bytes.
GAP_BYTES = 64 * 1024
#: Default: at most this many ranged reads per slice and pass (the gap grows until it fits).
MAX_REQUESTS = 256
#: Default: handle this many bytes of spectra at a time.
CHUNK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class WindowPeaks:
    """Peaks inside the windows: m/z, intensity, spectrum index (in the file); bytes fetched."""

    mz: Array
    intensity: Array
    spectrum: Array
    fetched_bytes: int


def in_windows(mz: Array, lows: Array, highs: Array) -> Array:
    """Which ``mz`` lie in one of the sorted, disjoint windows ``[lows[k], highs[k]]``.

    Example:
        >>> in_windows(np.array([1.0, 2.0, 3.5, 5.0]), np.array([2.0, 4.0]), np.array([3.0, 5.0])).tolist()
        [False, True, False, True]
    """
    at = np.searchsorted(lows, mz, "right") - 1
    ok = at >= 0
    ok[ok] = mz[ok] <= highs[at[ok]]
    return ok


def _coalesce(starts: Array, ends: Array, gap: int, max_requests: int) -> tuple[Array, Array]:
    """Merge byte ranges (sorted by start) separated by at most ``gap`` bytes; the gap grows
    (x4) until at most ``max_requests`` ranges remain."""
    if not len(starts):
        return starts, ends
    ends = np.maximum.accumulate(ends)
    while True:
        cut = np.flatnonzero(starts[1:] - ends[:-1] > gap) + 1
        if len(cut) + 1 <= max_requests:
            break
        gap = max(gap * 4, 4096)
    first = np.concatenate([[0], cut]).astype(np.int64)
    last = np.concatenate([cut - 1, [len(starts) - 1]]).astype(np.int64)
    return starts[first], ends[last]


@dataclass(frozen=True)
class _Fetched:
    """Byte ranges ``[starts[i], ends[i])`` of a file, fetched into one buffer."""

    starts: Array
    ends: Array
    buf: Array

    @classmethod
    def get(cls, url: str, starts: Array, ends: Array, opener: Opener) -> _Fetched:
        if not len(starts):
            return cls(starts, ends, np.zeros(0, np.uint8))
        store, key = opener(url)
        data = store.get_ranges(key, list(zip(starts.tolist(), ends.tolist(), strict=True)))
        for s, e, got in zip(starts.tolist(), ends.tolist(), data, strict=True):
            if len(got) != e - s:
                raise TruncatedData(url, s + len(got), f"the .ibd ends before byte {e} (bytes [{s}, {e}) wanted)")
        return cls(starts, ends, np.frombuffer(b"".join(data), dtype=np.uint8))

    @property
    def nbytes(self) -> int:
        return int((self.ends - self.starts).sum())

    def _pos(self, offsets: Array, nbytes: int | Array) -> tuple[Array, Array]:
        """Buffer positions of ``offsets`` and whether ``[offset, offset + nbytes)`` was fetched."""
        part = np.searchsorted(self.starts, offsets, "right") - 1
        ok = part >= 0
        safe = np.maximum(part, 0)
        ok &= offsets + nbytes <= self.ends[safe] if len(self.ends) else False
        base = np.concatenate([[0], np.cumsum(self.ends - self.starts)[:-1]]) if len(self.starts) else np.zeros(1)
        return (base[safe] + offsets - self.starts[safe]).astype(np.int64), ok

    def covers(self, offsets: Array, nbytes: int) -> Array:
        if not len(self.starts):
            return np.zeros(len(offsets), dtype=bool)
        return self._pos(offsets, nbytes)[1]

    def arrays(self, offsets: Array, nbytes: Array, dtype: str) -> Array:
        """Whole arrays at ``offsets`` (all fetched), concatenated and decoded."""
        pos, _ = self._pos(offsets, nbytes)
        views = [self.buf[p : p + n] for p, n in zip(pos.tolist(), np.asarray(nbytes).tolist(), strict=True)]
        return (np.concatenate(views) if views else np.zeros(0, np.uint8)).view(dtype)

    def elements(self, offsets: Array, dtype: str) -> Array:
        """Single values at ``offsets`` (all fetched)."""
        itemsize = np.dtype(dtype).itemsize
        pos, _ = self._pos(offsets, itemsize)
        picked = np.empty((len(offsets), itemsize), dtype=np.uint8)
        for j in range(itemsize):
            picked[:, j] = self.buf[pos + j]
        return picked.reshape(-1).view(dtype)


def _chunks(rows: Array, chunk_bytes: int) -> list[tuple[int, int]]:
    sizes = np.cumsum(rows["int_bytes"].astype(np.int64) + rows["mz_bytes"].astype(np.int64))
    cuts = [0]
    while cuts[-1] < len(rows):
        done = int(sizes[cuts[-1] - 1]) if cuts[-1] else 0
        cuts.append(max(cuts[-1] + 1, int(np.searchsorted(sizes, done + chunk_bytes, "right"))))
    return [(a, min(b, len(rows))) for a, b in itertools.pairwise(cuts)]


def _values(
    url: str,
    have: _Fetched,
    offsets: Array,
    dtype: str,
    whole: tuple[Array, Array],
    gap: int,
    max_requests: int,
    opener: Opener,
) -> tuple[Array, int]:
    """Values at byte ``offsets``: from ``have`` where fetched, else fetched now (coalesced;
    the ``whole`` arrays instead when that reads fewer bytes). Returns them and bytes fetched."""
    itemsize = np.dtype(dtype).itemsize
    out = np.zeros(len(offsets), dtype=dtype)
    inside = have.covers(offsets, itemsize)
    out[inside] = have.elements(offsets[inside], dtype)
    rest = np.flatnonzero(~inside)
    if not len(rest):
        return out, 0
    wanted = offsets[rest]
    sort = np.argsort(wanted, kind="stable")
    starts, ends = _coalesce(wanted[sort], wanted[sort] + itemsize, gap, max_requests)
    if int((ends - starts).sum()) > int((whole[1] - whole[0]).sum()):
        starts, ends = _coalesce(whole[0], whole[1], gap, max_requests)
    more = _Fetched.get(url, starts, ends, opener)
    out[rest] = more.elements(wanted, dtype)
    return out, more.nbytes


def read_window_peaks(
    data_slice: ImzMLSlice,
    lows: Array,
    highs: Array,
    *,
    gap_bytes: int = GAP_BYTES,
    max_requests: int = MAX_REQUESTS,
    chunk_bytes: int = CHUNK_BYTES,
    whole: bool = False,
    settings: Settings | None = None,
) -> WindowPeaks:
    """The slice's peaks inside the windows (see the module docstring); zero intensities kept.

    Spectra are handled ``chunk_bytes`` of ``.ibd`` at a time, so memory stays bounded.
    ``whole=True`` reads whole spectra and filters them (the baseline: same peaks).
    """
    rows = data_slice.rows
    if not len(rows):
        return WindowPeaks(np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64), 0)
    # explicit settings win; else the store access the slice carries
    access = data_slice.access if settings is None else StoreAccess(settings)
    if whole or len(set(rows["int_dtype"].tolist())) > 1 or len(set(rows["mz_dtype"].tolist())) > 1:
        return _whole(dataclasses.replace(data_slice, access=access), lows, highs)
    int_dtype, mz_dtype = DTYPES[int(rows["int_dtype"][0])], DTYPES[int(rows["mz_dtype"][0])]
    int_size = np.dtype(int_dtype).itemsize
    url = data_slice.ibd_url
    opener = access.open

    fetched = 0
    shared_hit = shared_mz = None
    if data_slice.continuous:
        start, nbytes = rows["mz_offset"][:1].astype(np.int64), rows["mz_bytes"][:1].astype(np.int64)
        got = _Fetched.get(url, start, start + nbytes, opener)
        shared = got.arrays(start, nbytes, mz_dtype)
        fetched += got.nbytes
        shared_hit = np.flatnonzero(in_windows(shared, lows, highs))
        shared_mz = shared[shared_hit]
    parts: list[tuple[Array, Array, Array]] = []
    for a, b in _chunks(rows, chunk_bytes):
        sub, spectra = rows[a:b], data_slice.indices[a:b].astype(np.int64)
        int_offsets = sub["int_offset"].astype(np.int64)
        have = _Fetched(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))
        if shared_hit is not None and shared_mz is not None:
            offsets = (int_offsets[:, None] + shared_hit[None, :] * int_size).ravel()
            mz, spectrum = np.tile(shared_mz, len(sub)), np.repeat(spectra, len(shared_hit))
            owners = np.arange(len(sub)) if len(shared_hit) else np.zeros(0, np.int64)
        else:
            order = np.argsort(sub["mz_offset"], kind="stable")
            mz_starts, mz_bytes = sub["mz_offset"].astype(np.int64)[order], sub["mz_bytes"].astype(np.int64)[order]
            # the m/z arrays, coalesced across small gaps (which may hold intensities: kept for step 2)
            have = _Fetched.get(url, *_coalesce(mz_starts, mz_starts + mz_bytes, gap_bytes, max_requests), opener)
            fetched += have.nbytes
            flat = have.arrays(mz_starts, mz_bytes, mz_dtype)
            lengths = sub["mz_length"].astype(np.int64)[order]
            ends = np.cumsum(lengths)
            hit = np.flatnonzero(in_windows(flat, lows, highs))
            which = np.searchsorted(ends, hit, "right")  # position in `order`
            offsets = int_offsets[order][which] + (hit - (ends - lengths)[which]) * int_size
            mz, spectrum = flat[hit], spectra[order][which]
            owners = np.unique(order[which])
        int_starts = int_offsets[owners]
        by_start = np.argsort(int_starts)
        whole_ranges = (int_starts[by_start], (int_starts + sub["int_bytes"].astype(np.int64)[owners])[by_start])
        intensity, got_bytes = _values(url, have, offsets, int_dtype, whole_ranges, gap_bytes, max_requests, opener)
        fetched += got_bytes
        parts.append((mz, intensity, spectrum))
    return WindowPeaks(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        fetched,
    )


def _whole(data_slice: ImzMLSlice, lows: Array, highs: Array) -> WindowPeaks:
    batch = data_slice.get()
    counts = np.diff(batch.offsets)
    if batch.continuous:
        keep = in_windows(batch.mz, lows, highs)
        return WindowPeaks(
            np.tile(batch.mz[keep], len(batch)),
            batch.intensity_matrix()[:, keep].ravel(),
            np.repeat(batch.indices.astype(np.int64), int(keep.sum())),
            batch.fetched_bytes,
        )
    keep = in_windows(batch.mz, lows, highs)
    spectrum = np.repeat(batch.indices.astype(np.int64), counts)
    return WindowPeaks(batch.mz[keep], batch.intensities[keep], spectrum[keep], batch.fetched_bytes)
