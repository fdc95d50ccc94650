"""Reading a dataset's peaks inside the centroid windows, slice by slice (the map step).

Example:
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.imaging import ImzML, write_synthetic_imzml
    >>> ds = write_synthetic_imzml("mem://ds/peaks", width=3, height=2, n_mz=100, peaks=[500.0])
    >>> co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    >>> lows, highs = np.array([499.0]), np.array([501.0])
    >>> part = read_slice_peaks(co.partition("spectra", num_batches=1)[0], lows, highs)
    >>> len(part.spectrum) > 0 and bool((part.mz >= 499).all() and (part.mz <= 501).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xtremehub.connectors.imaging import ImzMLSlice
from xtremehub.pipelines.metabolomics.images import inside

__all__ = ["SlicePeaks", "read_slice_peaks"]

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class SlicePeaks:
    """The peaks of a slice inside the windows, and how many ``.ibd`` bytes were fetched."""

    mz: Array
    intensity: Array
    spectrum: Array
    fetched_bytes: int


def read_slice_peaks(data_slice: ImzMLSlice, merged_lows: Array, merged_highs: Array) -> SlicePeaks:
    """Peaks of the slice's spectra inside the merged windows (whole arrays read)."""
    batch = data_slice.get()
    counts = np.diff(batch.offsets)
    spectrum = np.repeat(batch.indices.astype(np.int64), counts)
    if batch.continuous:
        keep = inside(batch.mz, merged_lows, merged_highs)
        matrix = batch.intensity_matrix()[:, keep]
        mz = np.tile(batch.mz[keep], len(batch))
        intensity = matrix.ravel()
        spectrum = np.repeat(batch.indices.astype(np.int64), int(keep.sum()))
    else:
        keep = inside(batch.mz, merged_lows, merged_highs)
        mz, intensity, spectrum = batch.mz[keep], batch.intensities[keep], spectrum[keep]
    nonzero = intensity > 0  # METASPACE keeps positive intensities only
    return SlicePeaks(mz[nonzero], intensity[nonzero].astype(np.float32), spectrum[nonzero], int(batch.fetched_bytes))
