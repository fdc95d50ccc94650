"""Generated datasets with planted molecules (tests, demo, benchmark), written with pyimzML.

Every pixel's spectrum holds random noise peaks over the database's m/z range and, for
each planted formula, its isotope centroids (with the adduct) scaled by that formula's
own spatial pattern: a Gaussian blob at a seeded random place of the image. The
dataset is written locally with ``pyimzml.ImzMLWriter`` (processed or continuous mode)
and, for a non-local URL, uploaded through the storage layer.

Example:
    >>> import tempfile
    >>> ds = write_planted_dataset(tempfile.mkdtemp() + "/p", ["C6H12O6"], ["C6H12O6", "C5H5N5"], width=4, height=3)
    >>> ds.planted, ds.n_spectra
    (('C6H12O6',), 12)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import ConfigError, MissingDependency
from xtremehub.pipelines.metabolomics.formulas import generate_ion_formula
from xtremehub.pipelines.metabolomics.isotopes import IsotopeSettings, centroids

__all__ = ["PlantedDataset", "random_formulas", "write_planted_dataset"]


def random_formulas(n: int, seed: int = 11) -> list[str]:
    """``n`` distinct plausible formulas (C 4-40, H, N 0-4, O 0-10, sometimes S or P), seeded.

    Example:
        >>> random_formulas(3)
        ['C8H9N3O5', 'C30H30N2O', 'C24H25N2O']
    """
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        c = int(rng.integers(4, 41))
        h = int(rng.integers(c, 2 * c + 3))
        parts = [f"C{c}", f"H{h}"]
        for element, top in (("N", 5), ("O", 11)):
            k = int(rng.integers(0, top))
            parts.append(f"{element}{k}" if k > 1 else element if k == 1 else "")
        extra = rng.random()
        parts.append("S" if extra < 0.1 else "P" if extra < 0.15 else "")
        out["".join(parts)] = None
    return list(out)


@dataclass(frozen=True)
class PlantedDataset:
    imzml_url: str
    planted: tuple[str, ...]
    adduct: str
    n_spectra: int
    ibd_size: int


def _pattern(rng: np.random.Generator, width: int, height: int) -> np.ndarray[Any, Any]:
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    sx, sy = rng.uniform(0.2, 0.4) * width + 1, rng.uniform(0.2, 0.4) * height + 1
    yy, xx = np.mgrid[0:height, 0:width]
    out: np.ndarray[Any, Any] = np.exp(-(((xx - cx) / sx) ** 2) - ((yy - cy) / sy) ** 2)
    return out


def write_planted_dataset(
    url: str,
    planted: Sequence[str],
    database: Sequence[str],
    *,
    adduct: str = "+H",
    width: int = 16,
    height: int = 16,
    noise_peaks: int = 200,
    mode: str = "processed",
    profile_points: int = 0,
    seed: int = 0,
    isotopes: IsotopeSettings | None = None,
    settings: Settings | None = None,
) -> PlantedDataset:
    """Write ``<url>.imzML`` + ``.ibd`` (see the module docstring).

    ``mode="continuous"`` puts every peak on one shared m/z axis of ``profile_points``
    points (default: about 4 per peak) spanning the database's range.
    """
    try:
        from pyimzml.ImzMLWriter import ImzMLWriter
    except ImportError as exc:  # pragma: no cover - pyimzML is in the test extra
        raise MissingDependency("pyimzML writes generated datasets: pip install pyimzML") from exc
    if mode not in ("processed", "continuous"):
        raise ConfigError(f"mode must be 'processed' or 'continuous', not {mode!r}")
    iso = isotopes or IsotopeSettings()
    rng = np.random.default_rng(seed)
    signals = []
    for formula in planted:
        cents = centroids(generate_ion_formula(formula, adduct), iso)
        if cents is None:
            raise ConfigError(f"no isotope pattern for planted formula {formula!r}")
        keep = cents[0] > 0
        signals.append((cents[0][keep], cents[1][keep], _pattern(rng, width, height)))
    db_mz = [c[0][0] for f in database if (c := centroids(generate_ion_formula(f, adduct), iso)) is not None]
    lo, hi = min(db_mz) - 5, max(db_mz) + 10
    axis = None
    if mode == "continuous":
        n_axis = profile_points or 4 * (noise_peaks + 4 * len(planted))
        axis = np.sort(np.concatenate([rng.uniform(lo, hi, n_axis), *(s[0] for s in signals)]))
    local = "://" not in url or url.startswith("file://")
    folder = Path(url.removeprefix("file://")).parent if local else Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / Path(url).name
    with ImzMLWriter(str(stem) + ".imzML", mode=mode, mz_dtype=np.float64, intensity_dtype=np.float32) as writer:
        for y in range(height):
            for x in range(width):
                if axis is not None:
                    ints = np.zeros(len(axis), np.float32)
                    noisy = rng.integers(0, len(axis), noise_peaks)
                    ints[noisy] = rng.uniform(1, 50, noise_peaks)
                    for mzs, heights, pattern in signals:
                        ints[np.searchsorted(axis, mzs)] += (heights * 10 * pattern[y, x]).astype(np.float32)
                    writer.addSpectrum(axis, ints, (x + 1, y + 1, 1))
                    continue
                mz = [rng.uniform(lo, hi, noise_peaks)]
                it = [rng.uniform(1, 50, noise_peaks)]
                for mzs, heights, pattern in signals:
                    mz.append(mzs)
                    it.append(heights * 10 * pattern[y, x])
                all_mz, all_int = np.concatenate(mz), np.concatenate(it)
                order = np.argsort(all_mz)
                writer.addSpectrum(all_mz[order], all_int[order].astype(np.float32), (x + 1, y + 1, 1))
    imzml_url = str(stem) + ".imzML"
    if not local:
        for ext in (".imzML", ".ibd"):
            with open(str(stem) + ext, "rb") as fh:
                storage.put(url + ext, fh, settings=settings)
            os.unlink(str(stem) + ext)
        imzml_url = url + ".imzML"
    size = storage.head(imzml_url.rpartition(".")[0] + ".ibd", settings=settings).size
    return PlantedDataset(imzml_url, tuple(planted), adduct, width * height, size)
