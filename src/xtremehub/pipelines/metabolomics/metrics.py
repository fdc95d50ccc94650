"""Ion image metrics exactly as METASPACE computes them (``sm.engine.annotation.metrics``).

Images are "flat": one value per spectrum (pixels without a spectrum are not included),
``images[k]`` the image of isotope peak k.

* spectral: the isotope pattern match of pyImagingMSpec - 1 minus the mean absolute
  difference of the normalised theoretical intensities and the normalised image totals
  (over pixels where peak 1 is present); an exact 1 counts as 0.
* spatial: Pearson correlation of peaks 2..n with peak 1, averaged with the theoretical
  intensities as weights, clipped to [0, 1] (version 1: pyImagingMSpec's ``np.corrcoef``
  form; version 3: METASPACE's form with the mean over all spectra).
* chaos: ``cpyImagingMSpec.measure_of_chaos`` of the peak-1 image (``n_levels``
  thresholds); a value close to 1 (an empty or flat image) counts as 0.
* MSM = spectral x spatial x chaos, computed lazily: a decoy's spatial metric only when
  its spectral one is positive, its chaos only when its spatial one is positive.

Example:
    >>> imgs = np.array([[1.0, 2.0, 3.0, 0.0], [0.5, 1.0, 1.5, 0.0]])
    >>> round(spectral_metric(imgs, np.array([100.0, 50.0])), 6), spatial_metric(imgs, np.array([100.0, 50.0]))
    (0.0, 1.0)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["IonMetrics", "chaos_metric", "compute_metrics", "spatial_metric", "spectral_metric"]

Array = np.ndarray[Any, Any]


def spectral_metric(images_flat: Array, theo_ints: Array) -> float:
    """pyImagingMSpec's ``isotope_pattern_match`` (NaN -> 0)."""
    theo = np.asarray(theo_ints, dtype=np.float64)
    present = images_flat[0] > 0
    # the sums keep the images' dtype (float32 in the pipeline), as in pyImagingMSpec
    image_ints = np.array([np.sum(img[present]) for img in images_flat])
    with np.errstate(divide="ignore", invalid="ignore"):
        match = 1 - np.mean(np.abs(theo / np.linalg.norm(theo) - image_ints / np.linalg.norm(image_ints)))
    if match == 1.0:
        return 0.0
    return float(np.nan_to_num(match))


def _spatial_v1(images_flat: Array, weights: Array) -> float:
    if len(images_flat) < 2 or np.count_nonzero(images_flat[0] > 0) < 2:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        corr: Array = np.asarray(np.corrcoef(np.asarray(images_flat, dtype=np.float64)))[1:, 0]
    corr[np.isinf(corr) | np.isnan(corr)] = 0
    return float(np.clip(np.average(corr, weights=weights), 0, 1))


def _spatial_v3(images_flat: Array, weights: Array) -> float:
    n_spectra = images_flat.shape[1]
    if len(images_flat) < 2 or np.count_nonzero(images_flat[0]) < 2:
        return 0.0
    x = images_flat.astype(np.float64)
    avg = x.sum(axis=1) / n_spectra
    centred = x - avg[:, None]
    covdiag = np.sum(centred * centred, axis=1) / (n_spectra - 1)
    covleft = np.sum(centred[0:1] * centred, axis=1) / (n_spectra - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = covleft[1:] / np.sqrt(covdiag[0] * covdiag[1:])
    corr[np.isinf(corr) | np.isnan(corr)] = 0
    return float(np.clip(np.average(corr, weights=weights), 0, 1))


def spatial_metric(images_flat: Array, theo_ints: Array, analysis_version: int = 1) -> float:
    """Weighted correlation of peaks 2..n with peak 1, in [0, 1] (0 without isotope weights)."""
    weights = np.asarray(theo_ints, dtype=np.float64)[1:]
    if weights.sum() == 0:
        return 0.0
    impl = _spatial_v1 if analysis_version == 1 else _spatial_v3
    return impl(np.asarray(images_flat), weights)


@functools.cache
def _measure_of_chaos() -> Callable[[Array, int], float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the library leaves its header file open
        from cpyImagingMSpec import measure_of_chaos
    return measure_of_chaos  # type: ignore[no-any-return]


def chaos_metric(image_2d: Array, n_levels: int = 30) -> float:
    """cpyImagingMSpec's measure of chaos of a 2-D image; a value close to 1 counts as 0."""
    if image_2d.size == 0 or not image_2d.any():
        return 0.0
    img = np.require(image_2d.astype(np.float64), requirements=["A", "C"])
    moc = float(_measure_of_chaos()(img, n_levels))
    return 0.0 if np.isclose(moc, 1.0) else moc


@dataclass
class IonMetrics:
    """Metrics of one ion; None where the lazy evaluation skipped a metric."""

    spectral: float | None = None
    spatial: float | None = None
    chaos: float | None = None
    msm: float = 0.0
    stats: dict[str, list[float]] = field(default_factory=dict)


def compute_metrics(
    images_flat: Array,
    theo_ints: Array,
    to_2d: Callable[[Array], Array],
    *,
    is_target: bool,
    n_levels: int = 30,
    min_px: int = 1,
    analysis_version: int = 1,
) -> IonMetrics:
    """METASPACE's ``compute_metrics`` for one ion (``images_flat`` already cleared of
    images with fewer than ``min_px`` pixels); ``to_2d`` turns a flat image into 2-D."""
    counts = [int(np.count_nonzero(img)) for img in images_flat]
    out = IonMetrics(
        stats={
            "total_iso_ints": [float(np.float32(img.sum())) for img in images_flat],
            "max_iso_ints": [float(img.max(initial=0)) for img in images_flat],
            "n_pixels": [float(c) for c in counts],
        }
    )
    complete = counts[0] >= min_px and any(c >= min_px for c in counts[1:])
    if complete or is_target:
        out.spectral = spectral_metric(images_flat, theo_ints)
        if out.spectral > 0 or is_target:
            out.spatial = spatial_metric(images_flat, theo_ints, analysis_version)
            if out.spatial > 0 or is_target:
                out.chaos = chaos_metric(to_2d(images_flat[0]), n_levels)
    out.msm = (out.chaos or 0.0) * (out.spatial or 0.0) * (out.spectral or 0.0)
    return out
