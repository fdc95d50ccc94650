"""Theoretical isotope centroids with cpyMSpec, as METASPACE's ``IsocalcWrapper`` computes them.

For an ion formula: the isotope pattern (``cpyMSpec.isotopePattern``), the charge
applied, centroids under a TOF instrument model whose resolving power comes from
``sigma`` (FWHM = sigma * 2 sqrt(2 ln 2); analysis version 1: resolving power =
first mass / FWHM with cpyMSpec 0.3.5, as METASPACE pins it; version 3: 200 / FWHM at
m/z 200 with cpyMSpec 0.4.2), the ``n_peaks`` most intense peaks kept, sorted by m/z,
intensities scaled to 100 for the pattern's strongest peak and zero-padded to ``n_peaks``.

Example:
    >>> mzs, ints = centroids("C2H6O", IsotopeSettings(sigma=0.000619))
    >>> mzs.round(4).tolist(), ints.round(3).tolist()
    ([46.0413, 47.0447, 47.0476, 48.0456], [100.0, 2.178, 0.069, 0.206])
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors import as_mapper, starmap
from xtremehub.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor

__all__ = ["SIGMA_TO_FWHM", "IsotopeSettings", "centroids", "centroids_table"]

log = logging.getLogger(__name__)

#: 2 sqrt(2 ln 2): Gaussian sigma to full width at half maximum.
SIGMA_TO_FWHM = 2.3548200450309493
BASE_MZ = 200.0
_CHUNK = 2000

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class IsotopeSettings:
    """Isotope-pattern settings (METASPACE's ``isotope_generation``)."""

    charge: int = 1
    sigma: float = 0.001238
    n_peaks: int = 4
    analysis_version: int = 1
    instrument: str = "tof"

    def __post_init__(self) -> None:
        if self.charge == 0:
            raise ConfigError("charge must not be 0")
        if not self.sigma > 0:
            raise ConfigError(f"sigma must be > 0, not {self.sigma}")
        if self.n_peaks < 1:
            raise ConfigError(f"n_peaks must be >= 1, not {self.n_peaks}")
        if self.analysis_version not in (1, 3):
            raise ConfigError(f"analysis_version must be 1 or 3, not {self.analysis_version}")


@functools.cache
def _library(analysis_version: int) -> ModuleType:
    name = "cpyMSpec_0_3_5" if analysis_version < 2 else "cpyMSpec"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the library leaves its header file open
        try:
            module = __import__(name)
        except ImportError as exc:
            hint = "pip install 'xtremehub[metabolomics]'"
            raise MissingDependency(f"{name} is needed for isotope patterns: {hint}") from exc
    return module


def centroids(ion_formula: str, settings: IsotopeSettings) -> tuple[Array, Array] | None:
    """``(m/z, intensities)`` of ``ion_formula``'s ``n_peaks`` centroids, or None if the library refuses it."""
    lib = _library(settings.analysis_version)
    try:
        pattern = lib.isotopePattern(ion_formula)
        pattern.addCharge(int(settings.charge))
        fwhm = settings.sigma * SIGMA_TO_FWHM
        if settings.analysis_version < 2:
            model = lib.InstrumentModel("tof", pattern.masses[0] / fwhm)
        else:
            model = lib.InstrumentModel(settings.instrument.lower(), BASE_MZ / fwhm, at_mz=BASE_MZ)
        centr = pattern.centroids(model)
    except Exception as exc:  # the C library raises bare Exception for bad formulas
        log.warning("%s: no isotope pattern (%s)", ion_formula, exc)
        return None
    mzs, ints = np.array(centr.masses), 100.0 * np.array(centr.intensities)
    keep = np.argsort(ints)[::-1][: settings.n_peaks]
    mzs, ints = mzs[keep], ints[keep]
    order = np.argsort(mzs)
    out_mz, out_int = np.zeros(settings.n_peaks), np.zeros(settings.n_peaks)
    out_mz[: len(order)], out_int[: len(order)] = mzs[order], ints[order]
    return out_mz, out_int


def _chunk_table(ion_formulas: Sequence[str], settings: IsotopeSettings) -> pd.DataFrame:
    rows: list[tuple[str, int, float, float]] = []
    for ion in ion_formulas:
        result = centroids(ion, settings)
        if result is None:
            continue
        for k, (mz, intensity) in enumerate(zip(*result, strict=True)):
            if mz > 0:
                rows.append((ion, k, float(mz), float(intensity)))
    return pd.DataFrame(rows, columns=["ion_formula", "peak_i", "mz", "int"])


def centroids_table(
    ion_formulas: Sequence[str],
    settings: IsotopeSettings,
    *,
    cache_url: str | None = None,
    executor: FunctionExecutor | None = None,
    store_settings: Settings | None = None,
) -> pd.DataFrame:
    """Centroids of every ion formula: columns ion_formula, peak_i, mz, int (in input order).

    With ``cache_url`` (a folder URL), the table is stored content-addressed (hash of the
    settings and the formulas) and reused. With ``executor``, chunks of formulas are
    computed in parallel.
    """
    unique = list(dict.fromkeys(ion_formulas))
    key = hashlib.sha256(json.dumps([asdict(settings), unique]).encode()).hexdigest()[:24]
    url = f"{cache_url.rstrip('/')}/centroids-{key}.parquet" if cache_url else None
    if url and storage.exists(url, settings=store_settings):
        log.info("centroids from cache %s", url)
        return pd.read_parquet(io.BytesIO(storage.get(url, settings=store_settings)))
    chunks = [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]
    parts = starmap(as_mapper(executor), _chunk_table, [(c, settings) for c in chunks])
    table = pd.concat(parts, ignore_index=True) if parts else _chunk_table([], settings)
    if url:
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        storage.put(url, buf.getvalue(), settings=store_settings)
    return table
