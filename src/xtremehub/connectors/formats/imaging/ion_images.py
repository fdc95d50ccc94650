"""Ion images: for target m/z values and a ppm tolerance, the summed intensity per pixel.

Each slice computes, for its spectra, the intensity summed inside every window
``[m/z - tol, m/z + tol]`` (``tol = m/z * ppm / 1e6``, both ends included, as in
pyimzML's ``getionimage``); the map runs on an executor and the driver assembles the
pixel values into ``(targets, height, width)`` images (reduce). Pixels without a
spectrum are 0.

Example:
    >>> from xtremehub.connectors import CloudObject
    >>> from xtremehub.connectors.imaging import ImzML
    >>> from xtremehub.connectors.imaging import write_synthetic_imzml
    >>> ds = write_synthetic_imzml("mem://ion/a", width=4, height=3, n_mz=400, peaks=[300.0, 600.0])
    >>> co = CloudObject.from_path(ImzML, ds.imzml_url).preprocess()
    >>> result = ion_images(co, [300.0, 600.0], ppm=20000, strategy="tiles", tile_width=2)
    >>> result.images.shape, bool(result.images.min() > 0)
    ((2, 3, 4), True)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub.connectors.formats.imaging.imzml_slice import ImzMLSlice, Spectra
from xtremehub.errors import ConfigError

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor
    from xtremehub.connectors.base import Strategy
    from xtremehub.connectors.cloudobject import CloudObject

__all__ = [
    "IonImages",
    "assemble_ion_images",
    "batch_ion_values",
    "ion_images",
    "slice_ion_values",
    "window_sums",
    "windows",
]

Array = np.ndarray[Any, Any]


def windows(mz_values: Sequence[float], ppm: float) -> tuple[Array, Array]:
    """Lower and upper m/z bounds of each target's window (float64)."""
    targets = np.asarray(mz_values, dtype=np.float64)
    if targets.ndim != 1 or ppm < 0:
        raise ConfigError("mz_values must be a flat list of m/z values and ppm >= 0")
    tol = targets * ppm * 1e-6
    return targets - tol, targets + tol


def _bounds_as(dtype: np.dtype[Any], lows: Array, highs: Array) -> tuple[Array, Array]:
    """Window bounds in the m/z array's own float dtype, rounded inwards, so that searching
    with them (no conversion of the m/z array) compares exactly as float64 bounds would."""
    if dtype.kind != "f" or dtype.itemsize >= 8:
        return lows, highs
    lo = lows.astype(dtype)
    lo = np.where(lo.astype(np.float64) < lows, np.nextafter(lo, dtype.type(np.inf)), lo)
    hi = highs.astype(dtype)
    hi = np.where(hi.astype(np.float64) > highs, np.nextafter(hi, dtype.type(-np.inf)), hi)
    return lo, hi


def _is_sorted(mz: Array) -> bool:
    return len(mz) < 2 or bool((mz[1:] >= mz[:-1]).all())


def window_sums(mz: Array, intensities: Array, lows: Array, highs: Array) -> Array:
    """Summed intensities of one spectrum inside each window ``[low, high]`` (float64).

    Example:
        >>> window_sums(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]),
        ...             np.array([1.5, 0.0]), np.array([3.0, 0.5])).tolist()
        [50.0, 0.0]
    """
    if not _is_sorted(mz):
        order = np.argsort(mz, kind="stable")
        mz, intensities = mz[order], intensities[order]
    lo, hi = _bounds_as(mz.dtype, lows, highs)
    return _range_sums(intensities, np.searchsorted(mz, lo, "left"), np.searchsorted(mz, hi, "right"))


def _range_sums(values: Array, a: Array, b: Array) -> Array:
    """``values[a[k]:b[k]].sum()`` for every k, in float64, 0 for empty ranges.

    Only the values inside the ranges are touched (windows are narrow: a gather of a few
    points each, then one reduceat), and each range is summed on its own (differences of
    a cumulative sum would swamp small windows next to large totals).

    Example:
        >>> _range_sums(np.arange(10.0), np.array([2, 5, 9]), np.array([4, 5, 10])).tolist()
        [5.0, 0.0, 9.0]
    """
    out = np.zeros(len(a))
    lengths = np.maximum(np.asarray(b) - np.asarray(a), 0)
    keep = lengths > 0
    if not keep.any():
        return out
    counts, starts = lengths[keep], np.asarray(a)[keep]
    first = np.cumsum(counts) - counts  # where each range begins in the gathered values
    index = np.arange(int(counts.sum())) + np.repeat(starts - first, counts)
    out[keep] = np.add.reduceat(values[index].astype(np.float64), first)
    return out


def batch_ion_values(batch: Spectra, lows: Array, highs: Array) -> Array:
    """(targets, spectra) summed intensities of a batch inside the windows ``[lows, highs]``."""
    out = np.zeros((len(lows), len(batch)))
    if not len(batch):
        return out
    mz = batch.mz
    if batch.continuous:
        matrix = batch.intensity_matrix()
        if not _is_sorted(mz):
            order = np.argsort(mz, kind="stable")
            matrix, mz = matrix[:, order], mz[order]
        lo, hi = _bounds_as(mz.dtype, lows, highs)
        a, b = np.searchsorted(mz, lo, "left"), np.searchsorted(mz, hi, "right")
        for k in range(len(lows)):
            if b[k] > a[k]:
                out[k] = matrix[:, a[k] : b[k]].sum(axis=1, dtype=np.float64)
        return out
    starts = batch.offsets[:-1]
    breaks = np.flatnonzero(mz[1:] < mz[:-1]) + 1  # descents are allowed only where a spectrum starts
    at = np.minimum(np.searchsorted(starts, breaks), len(starts) - 1)
    if not (starts[at] == breaks).all():
        for i in range(len(batch)):
            out[:, i] = window_sums(*batch.spectrum(i), lows, highs)
        return out
    # Every spectrum sorted: locate its windows (two binary searches, no copy), then sum
    # all windows of the batch in one reduceat.
    lo, hi = _bounds_as(mz.dtype, lows, highs)
    a = np.empty((len(batch), len(lows)), dtype=np.intp)
    b = np.empty_like(a)
    for i, (start, end) in enumerate(itertools.pairwise(batch.offsets.tolist())):
        spectrum = mz[start:end]
        a[i] = np.searchsorted(spectrum, lo, "left")
        b[i] = np.searchsorted(spectrum, hi, "right")
    a += starts[:, None]
    b += starts[:, None]
    return _range_sums(batch.intensities, a.ravel(), b.ravel()).reshape(len(batch), len(lows)).T.copy()


def slice_ion_values(data_slice: ImzMLSlice, mz_values: Sequence[float], ppm: float) -> tuple[Array, Array]:
    """Map step: the slice's pixel coordinates (n, 3) and values (targets, n)."""
    lows, highs = windows(mz_values, ppm)
    batch = data_slice.get()
    return batch.coords, batch_ion_values(batch, lows, highs)


@dataclass(frozen=True, eq=False)
class IonImages:
    """``images[k]`` is the ion image of ``mz_values[k]`` (height x width, row y-1, column x-1)."""

    mz_values: tuple[float, ...]
    ppm: float
    images: Array
    z: int = 1

    def save_png(
        self, path: str | Path, which: Sequence[int] | None = None, *, columns: int = 4, cmap: str = "viridis"
    ) -> Path:
        """Save ion images (all, or the indices in ``which``) as one PNG, each with a colour bar."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        picks = list(range(len(self.mz_values))) if which is None else list(which)
        if not picks:
            raise ConfigError("no ion image to save")
        cols = min(columns, len(picks))
        rows = -(-len(picks) // cols)
        fig = Figure(figsize=(3.6 * cols, 3.0 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat[len(picks) :]:
            ax.set_axis_off()
        for ax, k in zip(axes.flat, picks, strict=False):
            height, width = self.images[k].shape
            extent = (0.5, width + 0.5, height + 0.5, 0.5)  # axes in the file's 1-based pixel coordinates
            shown = ax.imshow(self.images[k], cmap=cmap, origin="upper", interpolation="nearest", extent=extent)
            ax.set_title(f"m/z {self.mz_values[k]:.4f} ± {self.ppm:g} ppm", fontsize=9)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            fig.colorbar(shown, ax=ax, label="summed intensity")
        target = Path(path)
        fig.savefig(target, dpi=100)
        return target


def assemble_ion_images(
    results: Sequence[tuple[Array, Array]], grid: Sequence[int], mz_values: Sequence[float], ppm: float, z: int = 1
) -> IonImages:
    """Reduce step: place every slice's pixel values into the images (spectra at other z are left out)."""
    width, height = int(grid[0]), int(grid[1])
    images = np.zeros((len(mz_values), height, width))
    for coords, values in results:
        keep = coords[:, 2] == z
        images[:, coords[keep, 1] - 1, coords[keep, 0] - 1] = values[:, keep]
    return IonImages(tuple(float(m) for m in mz_values), ppm, images, z)


def ion_images(
    co: CloudObject,
    mz_values: Sequence[float],
    ppm: float = 10.0,
    *,
    executor: FunctionExecutor | None = None,
    strategy: Strategy | str = "spectra",
    z: int = 1,
    **params: Any,
) -> IonImages:
    """Ion images of ``mz_values`` (± ``ppm``), mapped over slices (``executor`` or in-process).

    ``strategy`` and ``params`` choose the slices (default: one slice per 256 spectra).
    """
    windows(mz_values, ppm)  # fail early on bad targets
    if strategy == "spectra" and not params:
        params = {"spectra_per_slice": 256}
    slices = co.partition(strategy, **params)
    args: list[tuple[Any, ...]] = [(s, list(mz_values), ppm) for s in slices]
    if executor is not None and len(args) > 1:
        results = executor.get_result(executor.map(slice_ion_values, args))
    else:
        results = [slice_ion_values(*a) for a in args]
    return assemble_ion_images(results, co["grid"], mz_values, ppm, z)
