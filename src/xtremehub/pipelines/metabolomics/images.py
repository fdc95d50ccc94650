"""Ion images from a dataset's peaks sorted by m/z, segment by segment, as METASPACE builds them.

The dataset is read once (by spectrum slices, on the executor); only the peaks that fall
inside some centroid's window ``[m/z - tol, m/z + tol]`` (``tol = m/z * ppm / 1e6``, both
ends included) are kept, tagged with their spectrum, and sorted by m/z
(:class:`DatasetPeaks`). Each worker then gets a segment of the ions (whole ions,
ordered by m/z) and only the peaks whose m/z overlaps the segment's windows; an isotope
image is the per-spectrum sum of the peaks inside its window.

Example:
    >>> peaks = DatasetPeaks(np.array([100.0, 100.0001, 200.0]), np.array([1.0, 2.0, 5.0], np.float32),
    ...                      np.array([0, 1, 1]), n_spectra=2)
    >>> peaks.image(*window_bounds(np.array([100.0]), 3.0)).tolist()
    [[1.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xtremehub.pipelines.metabolomics.metrics import compute_metrics

__all__ = ["DatasetPeaks", "PixelGrid", "merge_windows", "score_segment", "segment_ions", "window_bounds"]

Array = np.ndarray[Any, Any]


def window_bounds(mzs: Array, ppm: float) -> tuple[Array, Array]:
    """Lower and upper bounds of fixed-ppm windows (METASPACE's TOF ``mass_accuracy_bounds``)."""
    half = mzs * ppm * 1e-6
    return mzs - half, mzs + half


def merge_windows(lows: Array, highs: Array) -> tuple[Array, Array]:
    """Disjoint, sorted intervals covering every window ``[lows[k], highs[k]]``.

    Example:
        >>> [a.tolist() for a in merge_windows(np.array([5.0, 1.0, 2.0]), np.array([6.0, 3.0, 4.0]))]
        [[1.0, 5.0], [4.0, 6.0]]
    """
    if not len(lows):
        return lows, highs
    order = np.argsort(lows, kind="stable")
    lo, hi = lows[order], np.maximum.accumulate(highs[order])
    starts = np.concatenate([[True], lo[1:] > hi[:-1]])
    ends = np.concatenate([starts[1:], [True]])
    return lo[starts], hi[ends]


@dataclass(frozen=True)
class PixelGrid:
    """Where each spectrum sits: ``rows``/``cols`` from 0 (METASPACE shifts x, y to start at 0)."""

    rows: Array
    cols: Array
    height: int
    width: int

    @classmethod
    def from_coords(cls, x: Array, y: Array) -> PixelGrid:
        if not len(x):
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0)
        rows, cols = np.asarray(y, np.int64) - int(np.min(y)), np.asarray(x, np.int64) - int(np.min(x))
        return cls(rows, cols, int(rows.max()) + 1, int(cols.max()) + 1)

    def to_2d(self, flat: Array) -> Array:
        """A flat image (one value per spectrum) as (height, width); pixels without a spectrum are 0."""
        img = np.zeros((self.height, self.width), dtype=flat.dtype)
        img[self.rows, self.cols] = flat
        return img


@dataclass(frozen=True)
class DatasetPeaks:
    """Peaks sorted by m/z: ``mz``, ``intensity`` (float32) and ``spectrum`` (index into the grid)."""

    mz: Array
    intensity: Array
    spectrum: Array
    n_spectra: int

    def between(self, low: float, high: float) -> DatasetPeaks:
        """The peaks with ``low <= m/z <= high`` (a view)."""
        a, b = np.searchsorted(self.mz, low, "left"), np.searchsorted(self.mz, high, "right")
        return DatasetPeaks(self.mz[a:b], self.intensity[a:b], self.spectrum[a:b], self.n_spectra)

    def image(self, lows: Array, highs: Array) -> Array:
        """(windows, n_spectra) float32 images: per spectrum, the summed intensity inside each window."""
        a, b = np.searchsorted(self.mz, lows, "left"), np.searchsorted(self.mz, highs, "right")
        out = np.zeros((len(lows), self.n_spectra), dtype=np.float32)
        for k in range(len(lows)):
            if b[k] > a[k]:
                out[k] = np.bincount(
                    self.spectrum[a[k] : b[k]], weights=self.intensity[a[k] : b[k]], minlength=self.n_spectra
                )
        return out


def segment_ions(centroids: pd.DataFrame, n_segments: int) -> list[Array]:
    """Ion indices (``formula_i``) cut into ``n_segments`` near-equal groups by their first peak's m/z."""
    first = centroids[centroids.peak_i == 0].sort_values(["mz", "formula_i"])
    ids = first.formula_i.to_numpy()
    return [part for part in np.array_split(ids, max(1, min(n_segments, len(ids)))) if len(part)]


def score_segment(
    centroids: pd.DataFrame,
    peaks: DatasetPeaks,
    grid: PixelGrid,
    ppm: float,
    n_peaks: int,
    n_levels: int,
    min_px: int,
    analysis_version: int,
) -> pd.DataFrame:
    """Metrics of a segment's ions (``centroids``: formula_i, peak_i, mz, int, target) from
    the segment's peaks; only ions with MSM > 0 are returned (as METASPACE does)."""
    rows: list[dict[str, Any]] = []
    ordered = centroids.sort_values(["formula_i", "peak_i"], kind="stable")
    ids, peak_i = ordered.formula_i.to_numpy(), ordered.peak_i.to_numpy()
    mzs, ints, targets = ordered.mz.to_numpy(), ordered.int.to_numpy(), ordered.target.to_numpy()
    firsts = np.flatnonzero(np.diff(ids)) + 1 if len(ids) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], firsts]).astype(np.int64) if len(ids) else firsts
    stops = np.concatenate([firsts, [len(ids)]]).astype(np.int64) if len(ids) else firsts
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        formula_i = ids[a]
        theo_mz, theo_int = np.zeros(n_peaks), np.zeros(n_peaks)
        theo_mz[peak_i[a:b]] = mzs[a:b]
        theo_int[peak_i[a:b]] = ints[a:b]
        present = theo_mz > 0
        images = np.zeros((n_peaks, peaks.n_spectra), dtype=np.float32)
        images[present] = peaks.image(*window_bounds(theo_mz[present], ppm))
        for k in range(n_peaks):
            if np.count_nonzero(images[k]) < min_px:
                images[k] = 0
        metrics = compute_metrics(
            images,
            theo_int,
            grid.to_2d,
            is_target=bool(targets[a]),
            n_levels=n_levels,
            min_px=min_px,
            analysis_version=analysis_version,
        )
        if metrics.msm > 0:
            rows.append(
                {
                    "formula_i": int(formula_i),
                    "msm": metrics.msm,
                    "spectral": metrics.spectral,
                    "spatial": metrics.spatial,
                    "chaos": metrics.chaos,
                    "n_pixels": int(metrics.stats["n_pixels"][0]),
                    "total_iso_ints": metrics.stats["total_iso_ints"],
                    "max_iso_ints": metrics.stats["max_iso_ints"],
                }
            )
    columns = ["formula_i", "msm", "spectral", "spatial", "chaos", "n_pixels", "total_iso_ints", "max_iso_ints"]
    types = {"formula_i": "int64", "msm": "float64", "spectral": "float64", "spatial": "float64", "chaos": "float64"}
    return pd.DataFrame(rows, columns=columns).astype({**types, "n_pixels": "int64"})


def peaks_from_batches(parts: Sequence[tuple[Array, Array, Array]], n_spectra: int) -> DatasetPeaks:
    """Concatenate (mz, intensity, spectrum) parts and sort them by m/z (stable)."""
    if not parts:
        return DatasetPeaks(np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64), n_spectra)
    mz = np.concatenate([p[0].astype(np.float64, copy=False) for p in parts])
    order = np.argsort(mz, kind="stable")
    intensity = np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False)[order]
    spectrum = np.concatenate([p[2] for p in parts]).astype(np.int64, copy=False)[order]
    return DatasetPeaks(mz[order], intensity, spectrum, n_spectra)
