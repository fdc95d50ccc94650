"""The metabolomics pipeline: metrics vs their reference libraries, FDR, partitions, planted data, bad input."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from xtremehub import storage
from xtremehub.compute import FunctionExecutor
from xtremehub.config import S3Settings, Settings
from xtremehub.errors import ConfigError, MalformedRecord
from xtremehub.pipelines.metabolomics import (
    AnnotationConfig,
    annotate,
    chaos_metric,
    load_database,
    make_ions,
    score_to_fdr_map,
    spatial_metric,
    spectral_metric,
)
from xtremehub.pipelines.metabolomics.synthetic import write_planted_dataset

with warnings.catch_warnings():
    warnings.simplefilter("ignore", ResourceWarning)
    from cpyImagingMSpec import measure_of_chaos
    from pyImagingMSpec.image_measures import isotope_image_correlation, isotope_pattern_match

DATABASE = [
    "C6H12O6",
    "C5H5N5",
    "C10H16N5O13P3",
    "C21H27N7O14P2",
    "C3H7NO2",
    "C9H11NO2",
    "C4H9NO3",
    "C6H14N4O2",
    "C5H9NO4",
    "C11H12N2O2",
    "C16H32O2",
    "C18H36O2",
    "C18H34O2",
    "C20H32O2",
    "C27H46O",
    "C8H10N4O2",
    "C7H8N4O2",
    "C5H11NO2S",
    "C3H7NO3",
    "C4H8N2O3",
]
PLANTED = ["C6H12O6", "C16H32O2", "C27H46O", "C8H10N4O2"]


# -- metrics against the reference libraries -------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_spectral_metric_matches_pyimagingmspec(seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    images = (rng.random((4, 64)) * (rng.random((4, 64)) > 0.3)).astype(dtype)
    theo = np.array([100.0, *rng.uniform(1, 60, 3)])
    with np.errstate(all="ignore"):
        expected = isotope_pattern_match(images, theo)
    assert spectral_metric(images, theo) == float(expected)  # bit for bit


@pytest.mark.parametrize("seed", range(5))
def test_spatial_metric_matches_pyimagingmspec(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.random(64)
    images = np.stack([base, base * 0.5 + rng.random(64) * 0.3, rng.random(64), base**2])
    theo = np.array([100.0, 40.0, 10.0, 3.0])
    expected = float(isotope_image_correlation(images, weights=theo[1:]))
    assert spatial_metric(images, theo, analysis_version=1) == expected  # bit for bit
    # version 3 (METASPACE's padded-covariance form) agrees to floating-point noise
    assert spatial_metric(images, theo, analysis_version=3) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("seed", range(5))
def test_chaos_metric_matches_cpyimagingmspec(seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.random((12, 9)) * (rng.random((12, 9)) > 0.4)
    expected = float(measure_of_chaos(image.copy(), 30))
    assert chaos_metric(image, 30) == (0.0 if np.isclose(expected, 1.0) else expected)  # bit for bit
    assert chaos_metric(np.zeros((4, 4)), 30) == 0.0


# -- FDR ---------------------------------------------------------------------------------------
def test_fdr_v3_rule_of_succession_and_monotonic() -> None:
    fdr = score_to_fdr_map(np.array([0.9, 0.8, 0.5]), np.array([0.85, 0.4, 0.3]), 3, True, True)
    # cumulative (targets+1, decoys+1): 0.9 -> (2,1), 0.85 -> (2,2), 0.8 -> (3,2), 0.5 -> (4,2) ...
    assert fdr.loc[0.9] == pytest.approx(1 / 3 / 2)
    assert fdr.loc[0.8] == pytest.approx(min(2 / 3 / 3, 2 / 3 / 4))
    assert list(fdr.to_numpy()) == sorted(fdr.to_numpy())  # monotonic in score


def test_decoys_exclude_targets_and_are_deduplicated() -> None:
    ions = make_ions(["C6H12O6", "C5H5N5"], ["+H", "+Na", "+K"], decoy_sample_size=20)
    assert len(ions.pairs) == 2 * 3 * 20
    assert not set(ions.pairs.dm) & {"+H", "+Na", "+K"}
    assert not ions.table.duplicated(["formula", "modifier"]).any()
    # version 3 shares one decoy draw across the target adducts of a formula
    v3 = make_ions(["C6H12O6"], ["+H", "+Na"], decoy_sample_size=5, analysis_version=3)
    assert v3.pairs[v3.pairs.tm == "+H"].dm.tolist() == v3.pairs[v3.pairs.tm == "+Na"].dm.tolist()


# -- planted dataset, partitions, backends ---------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("planted")
    return write_planted_dataset(str(folder / "planted"), PLANTED, DATABASE, width=12, height=10, seed=3).imzml_url


CONFIG = AnnotationConfig(adducts=("+H", "+Na"), ppm=3.0)


@pytest.fixture(scope="module")
def sequential(planted: str) -> Any:
    return annotate(planted, DATABASE, config=CONFIG, progress=False)


def test_planted_formulas_found_others_not(sequential: Any) -> None:
    table = sequential.table
    found = set(table[(table.fdr <= 0.1) & (table.adduct == "+H")].formula)
    assert found == set(PLANTED)
    assert not set(table[table.fdr <= 0.1].formula) - set(PLANTED)
    top = table.iloc[0]
    assert top.formula in PLANTED
    assert top.msm > 0.5
    assert top.n_pixels == 120


@pytest.mark.parametrize("partitions", [1, 2, 7])
def test_partitions_on_local_executor_give_identical_tables(planted: str, sequential: Any, partitions: int) -> None:
    with FunctionExecutor("local", workers=2, progress=False) as fexec:
        result = annotate(planted, DATABASE, config=CONFIG, executor=fexec, partitions=partitions)
    pd.testing.assert_frame_equal(result.table, sequential.table)


@pytest.mark.dask
@pytest.mark.slow
def test_dask_gives_identical_table(planted: str, sequential: Any, dask_client: Any) -> None:
    with FunctionExecutor("dask", client=dask_client, progress=False) as fexec:
        result = annotate(planted, DATABASE, config=CONFIG, executor=fexec, partitions=7)
    pd.testing.assert_frame_equal(result.table, sequential.table)


class _PicklingExecutor:
    """A futures executor that ships every call as a remote one would: pickled, then run on the copy."""

    def __init__(self) -> None:
        self.shipped: list[bytes] = []

    def map(self, func: Any, items: Any) -> list[Any]:
        calls = [(func, item if isinstance(item, tuple) else (item,)) for item in items]
        blobs = [pickle.dumps(call) for call in calls]
        self.shipped.extend(blobs)
        return [f(*args) for f, args in map(pickle.loads, blobs)]

    def get_result(self, futures: list[Any]) -> list[Any]:
        return futures


def test_mapped_calls_carry_no_s3_secret(planted: str, sequential: Any) -> None:
    marker = "MARKER-s3cr3t-never-shipped"
    s3 = S3Settings(endpoint_url="http://127.0.0.1:9", access_key_id="marker-key", secret_access_key=marker)
    mapper = _PicklingExecutor()
    result = annotate(
        planted, DATABASE, config=CONFIG, executor=mapper, partitions=3, settings=Settings(s3=s3), progress=False
    )  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(result.table, sequential.table)
    assert len(mapper.shipped) >= 6  # spectrum slices and ion segments went through the mapper
    assert not [blob for blob in mapper.shipped if marker.encode() in blob]


def test_fdr_version_3_finds_planted(planted: str) -> None:
    result = annotate(planted, DATABASE, config=AnnotationConfig(adducts=("+H",), fdr_version=3), progress=False)
    assert set(result.table[result.table.fdr <= 0.1].formula) == set(PLANTED)


# -- bad input ----------------------------------------------------------------------------------
def test_dataset_outside_database_range_gives_empty_result_with_note(planted: str) -> None:
    result = annotate(planted, ["C200H402O2"], config=CONFIG, progress=False)
    assert result.table.empty
    assert list(result.table.columns)[:4] == ["formula", "adduct", "ion_formula", "mz"]
    assert any("nothing to annotate" in note for note in result.notes)


@pytest.mark.parametrize(
    ("text", "row", "words"),
    [
        ("id,name,formula\n1,a,C6H12O6\n2,b,C6Zz2\n", 3, "unknown element 'Zz'"),
        ("id,name,formula\n1,a,C6H-2O\n", 2, "not element symbols"),
        ("id\tname\tformula\n1\ta\tH2O\n2\tb\n", 3, "2 fields"),
        ("id,name,formula\n1,a,\n", 2, "empty formula"),
    ],
)
def test_malformed_database_rows_are_named(tmp_path: Path, text: str, row: int, words: str) -> None:
    path = tmp_path / "db.csv"
    path.write_text(text)
    with pytest.raises(MalformedRecord) as info:
        load_database(str(path))
    assert info.value.offset == row
    assert f"row {row}" in str(info.value)
    assert words in str(info.value)


def test_empty_database_and_bad_settings(tmp_path: Path) -> None:
    storage.put(str(tmp_path / "empty.csv"), b"id,name,formula\n")
    with pytest.raises(ConfigError, match="no molecules"):
        load_database(str(tmp_path / "empty.csv"))
    with pytest.raises(ConfigError, match="unknown element 'Qq'"):
        AnnotationConfig(adducts=("+Qq",))
    with pytest.raises(ConfigError, match="not \\+/- followed by a formula"):
        AnnotationConfig(adducts=("H",))
    for ppm in (0, -1):
        with pytest.raises(ConfigError, match="ppm must be > 0"):
            AnnotationConfig(ppm=ppm)


@pytest.mark.lithops
@pytest.mark.slow
def test_lithops_localhost_gives_identical_table(planted: str, sequential: Any, lithops_config: dict[str, Any]) -> None:
    with FunctionExecutor("lithops", config=lithops_config, progress=False) as fexec:
        result = annotate(planted, DATABASE, config=CONFIG, executor=fexec, partitions=3)
    pd.testing.assert_frame_equal(result.table, sequential.table)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.usefixtures("ray_engine")  # the session's Ray instance
def test_ray_gives_identical_table(planted: str, sequential: Any) -> None:
    with FunctionExecutor("ray", progress=False) as fexec:
        result = annotate(planted, DATABASE, config=CONFIG, executor=fexec, partitions=3)
    pd.testing.assert_frame_equal(result.table, sequential.table)
