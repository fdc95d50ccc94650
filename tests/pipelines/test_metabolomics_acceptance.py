"""METASPACE's own acceptance test (engine/tests/annotation_lithops/test_annotation_job.py), reproduced."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest
from pyimzml.ImzMLWriter import ImzMLWriter

from xtremehub.compute import FunctionExecutor
from xtremehub.pipelines.metabolomics import AnnotationConfig, IsotopeSettings, annotate, centroids

MOCK_DECOY_ADDUCTS = ("+Be", "+Al")
MOCK_FORMULAS = [f"C{i}H{2 + 2 * i}O" for i in range(1, 11)]
# 4x4 image missing the lower-right quarter
MOCK_COORDS = list(zip([2, 3, 4, 5, 2, 3, 4, 5, 2, 3, 2, 3], [2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5], strict=True))
ISOTOPES = IsotopeSettings(charge=1, sigma=0.000619, n_peaks=4, analysis_version=1)
CONFIG = AnnotationConfig(
    adducts=("[M]+",),
    ppm=0.001,
    fdr_version=1,
    isotopes=ISOTOPES,
    decoy_sample_size=len(MOCK_DECOY_ADDUCTS),
    decoy_adducts=MOCK_DECOY_ADDUCTS,
    n_levels=30,
)


def make_mock_spectrum() -> tuple[np.ndarray, np.ndarray]:
    formulas = [
        *MOCK_FORMULAS[:2],
        # decoys after the first 2 formulas make the FDRs predictable
        *(f + d for f, d in product(MOCK_FORMULAS[:3], MOCK_DECOY_ADDUCTS)),
        *MOCK_FORMULAS[2:],
    ]
    mzs: list[float] = []
    ints: list[float] = []
    for i, formula in enumerate(formulas):
        result = centroids(formula, ISOTOPES)
        assert result is not None
        f_mzs, f_ints = result
        mzs.extend(f_mzs)
        # lower the MSM in `formulas` order by sabotaging the spectral match
        ints.extend(f_ints * (1 - i / len(formulas)) ** np.arange(len(f_ints)))
    order = np.argsort(mzs)
    return np.array(mzs)[order], np.array(ints)[order]


@pytest.fixture
def mock_imzml(tmp_path: Path) -> str:
    mzs, ints = make_mock_spectrum()
    path = tmp_path / "test.imzML"
    with ImzMLWriter(str(path), polarity="positive") as writer:
        for x, y in MOCK_COORDS:
            writer.addSpectrum(mzs, ints * x * y, (x, y, 1))
    return str(path)


def check(result: object) -> None:
    table = result.table  # type: ignore[attr-defined]
    assert table.formula.tolist() == MOCK_FORMULAS  # MSM-descending
    assert table.fdr.tolist() == [0.05] * 2 + [0.5] * 8
    assert (table.adduct == "[M]+").all()
    assert np.all(np.diff(table.msm.to_numpy()) <= 0)
    # every sampled pixel has a value in every annotation's first-isotope image
    for row in range(len(table)):
        image = result.ion_image(row)  # type: ignore[attr-defined]
        assert image.shape == (4, 4)
        assert np.count_nonzero(image) == len(MOCK_COORDS)


def test_metaspace_acceptance_sequential(mock_imzml: str) -> None:
    check(annotate(mock_imzml, MOCK_FORMULAS, config=CONFIG, progress=False))


@pytest.mark.parametrize("partitions", [2, 7])
def test_metaspace_acceptance_local_executor(mock_imzml: str, partitions: int) -> None:
    with FunctionExecutor("local", workers=2, progress=False) as fexec:
        check(annotate(mock_imzml, MOCK_FORMULAS, config=CONFIG, executor=fexec, partitions=partitions))
