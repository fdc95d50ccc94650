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

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtremehub.config import Settings
from xtremehub.connectors.formats.imaging.imzml_slice import ImzMLSlice
from xtremehub.connectors.formats.imaging.imzml_xml import DTYPES
from xtremehub.errors import TruncatedData
from xtremehub.storage import open_store

__all__ = ["WindowPeaks", "in_windows", "read_window_peaks"]

Array = np.ndarray[Any, Any]

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
    """Merge sorted byte ranges separated by at most ``gap`` bytes (gap grows to fit ``max_requests``)."""
    if not len(starts):
        return starts, ends
    while True:
        cut = np.flatnonzero(starts[1:] - ends[:-1] > gap) + 1
        if len(cut) + 1 <= max_requests:
            break
        gap = max(gap * 4, 4096)
    first = np.concatenate([[0], cut])
    last = np.concatenate([cut - 1, [len(starts) - 1]])
    return starts[first], np.maximum.reduceat(ends, first) if len(first) else ends[last]


def _get(url: str, starts: Array, ends: Array, settings: Settings | None) -> list[bytes]:
    store, key = open_store(url, settings)
    data = store.get_ranges(key, list(zip(starts.tolist(), ends.tolist(), strict=True)))
    for s, e, got in zip(starts.tolist(), ends.tolist(), data, strict=True):
        if len(got) != e - s:
            raise TruncatedData(url, s + len(got), f"the .ibd ends before byte {e} (bytes [{s}, {e}) wanted)")
    return data


def _fetch_arrays(url: str, starts: Array, nbytes: Array, dtype: str, settings: Settings | None) -> tuple[Array, int]:
    """Whole arrays at sorted ``starts`` (touching ones in one read), concatenated and decoded."""
    first, last = _coalesce(starts, starts + nbytes, 0, len(starts))
    data = _get(url, first, last, settings)
    return np.frombuffer(b"".join(data), dtype=np.uint8).view(dtype), int((last - first).sum())


def _fetch_elements(
    url: str,
    offsets: Array,
    itemsize: int,
    dtype: str,
    gap: int,
    max_requests: int,
    settings: Settings | None,
    whole: tuple[Array, Array],
) -> tuple[Array, int]:
    """Values of ``dtype`` at the (sorted) byte ``offsets`` of ``url``; and the bytes fetched.

    ``whole``: the sorted ranges of the arrays holding the offsets, read instead when
    coalescing would fetch more than they hold.
    """
    if not len(offsets):
        return np.zeros(0, dtype=dtype), 0
    starts, ends = _coalesce(offsets, offsets + itemsize, gap, max_requests)
    if int((ends - starts).sum()) > int((whole[1] - whole[0]).sum()):
        starts, ends = _coalesce(whole[0], whole[1], 0, len(whole[0]))
    buf = np.frombuffer(b"".join(_get(url, starts, ends, settings)), dtype=np.uint8)
    base = np.concatenate([[0], np.cumsum(ends - starts)[:-1]])
    part = np.searchsorted(starts, offsets, "right") - 1
    pos = base[part] + (offsets - starts[part])
    picked = np.empty((len(offsets), itemsize), dtype=np.uint8)
    for j in range(itemsize):
        picked[:, j] = buf[pos + j]
    return picked.reshape(-1).view(dtype), int((ends - starts).sum())


def _chunks(rows: Array, chunk_bytes: int) -> list[tuple[int, int]]:
    sizes = np.cumsum(rows["int_bytes"].astype(np.int64) + rows["mz_bytes"].astype(np.int64))
    cuts = [0]
    while cuts[-1] < len(rows):
        done = int(sizes[cuts[-1] - 1]) if cuts[-1] else 0
        cuts.append(max(cuts[-1] + 1, int(np.searchsorted(sizes, done + chunk_bytes, "right"))))
    return [(a, min(b, len(rows))) for a, b in itertools.pairwise(cuts)]


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
    if whole or len(set(rows["int_dtype"].tolist())) > 1 or len(set(rows["mz_dtype"].tolist())) > 1:
        return _whole(data_slice, lows, highs)
    int_dtype, mz_dtype = DTYPES[int(rows["int_dtype"][0])], DTYPES[int(rows["mz_dtype"][0])]
    int_size = np.dtype(int_dtype).itemsize
    url = data_slice.ibd_url
    fetched = 0
    shared_hit = shared_mz = None
    if data_slice.continuous:
        shared, fetched = _fetch_arrays(
            url, rows["mz_offset"][:1].astype(np.int64), rows["mz_bytes"][:1], mz_dtype, settings
        )
        shared_hit = np.flatnonzero(in_windows(shared, lows, highs))
        shared_mz = shared[shared_hit]
    parts: list[tuple[Array, Array, Array]] = []
    for a, b in _chunks(rows, chunk_bytes):
        sub, spectra = rows[a:b], data_slice.indices[a:b].astype(np.int64)
        if shared_hit is not None and shared_mz is not None:
            offsets = (sub["int_offset"].astype(np.int64)[:, None] + shared_hit[None, :] * int_size).ravel()
            mz, spectrum = np.tile(shared_mz, len(sub)), np.repeat(spectra, len(shared_hit))
        else:
            order = np.argsort(sub["mz_offset"], kind="stable")
            lengths = sub["mz_length"].astype(np.int64)[order]
            flat, got = _fetch_arrays(
                url, sub["mz_offset"].astype(np.int64)[order], sub["mz_bytes"][order], mz_dtype, settings
            )
            fetched += got
            hit = np.flatnonzero(in_windows(flat, lows, highs))
            which = np.searchsorted(np.cumsum(lengths), hit, "right")  # position in `order`
            within = hit - (np.cumsum(lengths) - lengths)[which]
            offsets = sub["int_offset"].astype(np.int64)[order][which] + within * int_size
            mz, spectrum = flat[hit], spectra[order][which]
        sort = np.argsort(offsets, kind="stable")
        owners = np.unique(spectrum - spectra.min()) if len(spectrum) else np.zeros(0, np.int64)
        by_index = np.full(int(spectra.max() - spectra.min()) + 1, -1, np.int64)
        by_index[spectra - spectra.min()] = np.arange(len(sub))
        arrays = by_index[owners]
        int_starts = sub["int_offset"].astype(np.int64)[arrays]
        by_start = np.argsort(int_starts)
        whole_ranges = (int_starts[by_start], (int_starts + sub["int_bytes"].astype(np.int64)[arrays])[by_start])
        values, got = _fetch_elements(
            url, offsets[sort], int_size, int_dtype, gap_bytes, max_requests, settings, whole_ranges
        )
        fetched += got
        intensity = np.empty_like(values)
        intensity[sort] = values
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
