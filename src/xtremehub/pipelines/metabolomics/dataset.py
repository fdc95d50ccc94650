"""Reading a dataset's peaks inside the centroid windows, slice by slice (the map step).

By default only what the windows need is read from the ``.ibd``
(:func:`~xtremehub.connectors.imaging.read_window_peaks`); ``partial=False`` reads
whole spectra and filters them (same peaks, more bytes). As METASPACE does, only
positive intensities are kept.

Example:
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.imaging import ImzML, write_synthetic_imzml
    >>> ds = write_synthetic_imzml("mem://ds/peaks", width=3, height=2, n_mz=100, peaks=[500.0])
    >>> co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    >>> lows, highs = np.array([499.0]), np.array([501.0])
    >>> part = co.partition("spectra", num_batches=1)[0]
    >>> a, b = read_slice_peaks(part, lows, highs), read_slice_peaks(part, lows, highs, partial=False)
    >>> len(a.mz) > 0 and a.mz.tolist() == b.mz.tolist(), a.fetched_bytes < b.fetched_bytes
    (True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xtremehub.config import Settings
from xtremehub.connectors.imaging import ImzMLSlice, WindowPeaks, read_window_peaks

__all__ = ["read_slice_peaks"]

Array = np.ndarray[Any, Any]


def read_slice_peaks(
    data_slice: ImzMLSlice, lows: Array, highs: Array, partial: bool = True, settings: Settings | None = None
) -> WindowPeaks:
    """Peaks of the slice's spectra inside the sorted, disjoint windows ``[lows, highs]``."""
    got = read_window_peaks(data_slice, lows, highs, whole=not partial, settings=settings)
    keep = got.intensity > 0
    return WindowPeaks(
        got.mz[keep],
        got.intensity[keep].astype(np.float32),
        got.spectrum[keep].astype(np.int64),
        got.fetched_bytes,
    )
