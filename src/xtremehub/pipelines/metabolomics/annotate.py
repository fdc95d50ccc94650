"""The annotation pipeline: database -> ions -> centroids -> dataset peaks -> metrics -> FDR.

Stages (each timed in :attr:`Annotation.timings`):

1. ``ions``: the database's formulas with the target adducts and their decoys.
2. ``centroids``: isotope centroids of every unique ion formula (cached in the store).
3. ``dataset``: the imzML index, then every spectrum slice (on the executor) keeps only
   its peaks inside some centroid window; the driver sorts them by m/z.
4. ``metrics``: ion segments (by m/z) on the executor, each with only the peaks its
   windows overlap; MSM per ion.
5. ``fdr``: per target adduct, version 1 or 3.

Example:
    >>> cfg = AnnotationConfig(adducts=("+H",), ppm=3)
    >>> cfg.isotopes.n_peaks, cfg.decoy_sample_size
    (4, 20)
    >>> AnnotationConfig(ppm=0)
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: ppm must be > 0, not 0
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from xtremehub.config import Settings
from xtremehub.connectors import CloudObject, as_mapper, starmap
from xtremehub.connectors.imaging import ImzML, ImzMLSlice, WindowPeaks, spectra_table
from xtremehub.errors import ConfigError
from xtremehub.pipelines.metabolomics.database import MolecularDatabase, load_database
from xtremehub.pipelines.metabolomics.dataset import read_slice_peaks
from xtremehub.pipelines.metabolomics.decoys import DECOY_ADDUCTS, Ions, make_ions
from xtremehub.pipelines.metabolomics.fdr import estimate_fdr
from xtremehub.pipelines.metabolomics.formulas import check_adduct, format_modifiers
from xtremehub.pipelines.metabolomics.images import (
    DatasetPeaks,
    PixelGrid,
    merge_windows,
    peaks_from_batches,
    score_segment,
    segment_ions,
    window_bounds,
)
from xtremehub.pipelines.metabolomics.isotopes import IsotopeSettings, centroids_table

if TYPE_CHECKING:
    from xtremehub.compute import FunctionExecutor

__all__ = ["Annotation", "AnnotationConfig", "annotate"]

log = logging.getLogger(__name__)

TABLE_COLUMNS = [
    "formula",
    "adduct",
    "ion_formula",
    "mz",
    "msm",
    "spectral",
    "spatial",
    "chaos",
    "fdr",
    "n_pixels",
    "total_iso_ints",
    "max_iso_ints",
    "theo_mz",
    "theo_ints",
    "molecule_ids",
    "molecule_names",
]


@dataclass(frozen=True)
class AnnotationConfig:
    """Everything that decides the result (METASPACE's ds_config, analysis versions 1 and 3)."""

    adducts: tuple[str, ...] = ("+H", "+Na", "+K")
    ppm: float = 3.0
    fdr_version: int = 1
    isotopes: IsotopeSettings = field(default_factory=IsotopeSettings)
    decoy_sample_size: int = 20
    decoy_adducts: tuple[str, ...] = DECOY_ADDUCTS
    n_levels: int = 30
    min_px: int = 1

    def __post_init__(self) -> None:
        if not self.ppm > 0:
            raise ConfigError(f"ppm must be > 0, not {self.ppm}")
        if self.fdr_version not in (1, 3):
            raise ConfigError(f"fdr_version must be 1 or 3, not {self.fdr_version}")
        if not self.adducts:
            raise ConfigError("give at least one adduct")
        for adduct in self.adducts:
            check_adduct(adduct)
        if self.isotopes.analysis_version != self.fdr_version:
            object.__setattr__(
                self,
                "isotopes",
                IsotopeSettings(
                    self.isotopes.charge,
                    self.isotopes.sigma,
                    self.isotopes.n_peaks,
                    self.fdr_version,
                    self.isotopes.instrument,
                ),
            )
        if self.n_levels < 1 or self.min_px < 1:
            raise ConfigError("n_levels and min_px must be >= 1")


@dataclass
class Annotation:
    """The result: ``table`` (one row per target ion with MSM > 0, MSM descending), the
    sorted dataset peaks and pixel grid (to draw ion images), notes, timings, bytes read."""

    table: pd.DataFrame
    config: AnnotationConfig
    peaks: DatasetPeaks
    grid: PixelGrid
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    ibd_bytes_read: int = 0
    ibd_size: int = 0

    def ion_image(self, row: int, peak: int = 0) -> np.ndarray[Any, Any]:
        """2-D image (height, width) of isotope ``peak`` of the ``row``-th annotation."""
        mz = float(self.table["theo_mz"].iloc[row][peak])
        flat = self.peaks.image(*window_bounds(np.array([mz]), self.config.ppm))[0]
        return self.grid.to_2d(flat)


class _Stages:
    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with tqdm(total=1, desc=name, disable=not self.progress, leave=True, unit="stage") as bar:
            yield
            bar.update(1)
        self.timings[name] = time.perf_counter() - t0
        log.info("stage %s: %.2fs", name, self.timings[name])


def _ions_table(ions: Ions, cents: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unique ion formulas numbered ``formula_i`` (sorted, as METASPACE) and their centroids."""
    ion_formulas = sorted(set(ions.table.ion_formula))
    formulas = pd.DataFrame({"ion_formula": ion_formulas}).rename_axis("formula_i").reset_index()
    targets = set(ions.table.ion_formula[ions.table.target])
    formulas["target"] = formulas.ion_formula.isin(targets)
    centroids = cents.merge(formulas, on="ion_formula")
    return formulas, centroids[["formula_i", "peak_i", "mz", "int", "target"]]


def annotate(
    imzml_url: str,
    database: str | MolecularDatabase | Sequence[str],
    adducts: Sequence[str] = ("+H", "+Na", "+K"),
    ppm: float = 3.0,
    fdr_version: int = 1,
    executor: FunctionExecutor | None = None,
    *,
    config: AnnotationConfig | None = None,
    partitions: int | None = None,
    settings: Settings | None = None,
    cache_url: str | None = None,
    progress: bool | None = None,
    partial_reads: bool = True,
) -> Annotation:
    """Annotate an imzML dataset against a molecular database (see the module docstring).

    ``database``: a CSV/TSV URL, a :class:`MolecularDatabase` or a list of formulas.
    ``config`` overrides ``adducts``/``ppm``/``fdr_version``. ``partitions``: spectrum
    slices and ion segments (default: 2 per worker of ``executor``, else 1). Results do
    not depend on ``partitions``, the executor or ``partial_reads`` (read only the
    ``.ibd`` ranges the windows need; False: whole spectra).
    """
    cfg = config or AnnotationConfig(adducts=tuple(adducts), ppm=ppm, fdr_version=fdr_version)
    stages = _Stages(sys.stderr.isatty() if progress is None else progress)
    n_parts = partitions or (2 * int(getattr(executor.backend, "workers", 1) or 1) if executor else 1)
    if n_parts < 1:
        raise ConfigError(f"partitions must be >= 1, not {n_parts}")
    notes: list[str] = []
    mapper = as_mapper(executor)

    with stages.stage("ions"):
        if isinstance(database, MolecularDatabase):
            db = database
        elif isinstance(database, str):
            db = load_database(database, settings=settings)
        else:
            db = MolecularDatabase.from_formulas(list(database))
        ions = make_ions(
            db.formulas,
            cfg.adducts,
            decoy_sample_size=cfg.decoy_sample_size,
            analysis_version=cfg.fdr_version,
            decoy_adducts=cfg.decoy_adducts,
        )
    with stages.stage("centroids"):
        cents = centroids_table(
            list(ions.table.ion_formula), cfg.isotopes, cache_url=cache_url, executor=executor, store_settings=settings
        )
        formulas, centroids = _ions_table(ions, cents)
    with stages.stage("dataset"):
        co = CloudObject.from_path(ImzML, imzml_url, settings=settings).preprocess()
        table = spectra_table(co)
        grid = PixelGrid.from_coords(table["x"], table["y"])
        lows, highs = merge_windows(*window_bounds(centroids.mz.to_numpy(), cfg.ppm))
        slices: list[ImzMLSlice] = co.partition("spectra", num_batches=n_parts)  # type: ignore[assignment]
        # each slice carries the dataset's StoreAccess: settings travel to workers without secrets
        reads = [(s, lows, highs, partial_reads) for s in slices]
        parts: list[WindowPeaks] = starmap(mapper, read_slice_peaks, reads)
        peaks = peaks_from_batches([(p.mz, p.intensity, p.spectrum) for p in parts], len(table))
        bytes_read = sum(p.fetched_bytes for p in parts)
    with stages.stage("metrics"):
        if not len(peaks.mz):
            lo, hi = (float(centroids.mz.min()), float(centroids.mz.max())) if len(centroids) else (0.0, 0.0)
            notes.append(
                f"no peak of {imzml_url} lies in the database's m/z windows ({lo:.4f}-{hi:.4f}, ± {cfg.ppm:g} ppm): "
                "nothing to annotate"
            )
            scores = score_segment(centroids.iloc[:0], peaks, grid, cfg.ppm, 1, cfg.n_levels, cfg.min_px, 1)
        else:
            args = []
            for ids in segment_ions(centroids, n_parts):
                seg = centroids[centroids.formula_i.isin(ids)]
                seg_lows, seg_highs = window_bounds(seg.mz.to_numpy(), cfg.ppm)
                args.append(
                    (
                        seg,
                        peaks.between(float(seg_lows.min()), float(seg_highs.max())),
                        grid,
                        cfg.ppm,
                        cfg.isotopes.n_peaks,
                        cfg.n_levels,
                        cfg.min_px,
                        cfg.fdr_version,
                    )
                )
            empty = score_segment(centroids.iloc[:0], *args[0][1:])
            segments = [s for s in starmap(mapper, score_segment, args) if len(s)] or [empty]
            scores = pd.concat(segments, ignore_index=True)
    with stages.stage("fdr"):
        result = _results(ions, formulas, centroids, scores, db, cfg)
    return Annotation(result, cfg, peaks, grid, notes, stages.timings, bytes_read, int(co["ibd_size"]))


def _results(
    ions: Ions,
    formulas: pd.DataFrame,
    centroids: pd.DataFrame,
    scores: pd.DataFrame,
    db: MolecularDatabase,
    cfg: AnnotationConfig,
) -> pd.DataFrame:
    ion_scores = ions.table.merge(formulas[["ion_formula", "formula_i"]], on="ion_formula").merge(
        scores, on="formula_i", how="inner"
    )
    fdrs = estimate_fdr(ion_scores, ions, cfg.fdr_version)
    used = centroids[centroids.formula_i.isin(set(fdrs.formula_i))].sort_values(["formula_i", "peak_i"])
    theo_mz = used.groupby("formula_i").mz.agg(list)
    theo_int = used.groupby("formula_i").int.agg(list)
    out = fdrs.reset_index(drop=True)
    out = out.assign(
        theo_mz=out.formula_i.map(theo_mz),
        theo_ints=out.formula_i.map(theo_int),
    )
    out = out.assign(
        adduct=out.modifier.map({format_modifiers(a): a for a in cfg.adducts}),
        mz=out.theo_mz.map(lambda v: float(v[0])),
        molecule_ids=out.formula.map(lambda f: "|".join(i for i, _ in db.molecules.get(f, ()))),
        molecule_names=out.formula.map(lambda f: "|".join(n for _, n in db.molecules.get(f, ()))),
    )
    out = out.sort_values(["msm", "formula", "adduct"], ascending=[False, True, True], kind="stable")
    return out[TABLE_COLUMNS].reset_index(drop=True)
