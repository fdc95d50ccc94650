"""``xhub metaspace annotate`` end to end, and the pipeline on SeaweedFS (S3) through the storage layer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from xtremehub import storage
from xtremehub.cli import cli
from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.pipelines.metabolomics import annotate
from xtremehub.pipelines.metabolomics.outputs import write_outputs
from xtremehub.pipelines.metabolomics.synthetic import write_planted_dataset

DATABASE = ["C6H12O6", "C5H5N5", "C16H32O2", "C27H46O", "C9H11NO2", "C3H7NO2", "C8H10N4O2", "C18H34O2"]
PLANTED = ["C6H12O6", "C27H46O"]


def test_cli_annotate_writes_table_images_and_summary(tmp_path: Path) -> None:
    ds = write_planted_dataset(str(tmp_path / "data" / "ds"), PLANTED, DATABASE, width=10, height=8, seed=5)
    db = tmp_path / "molecules.tsv"
    db.write_text("id\tname\tformula\n" + "".join(f"m{i}\tname {i}\t{f}\n" for i, f in enumerate(DATABASE)))
    out = tmp_path / "results"
    args = ["--home", str(tmp_path / "home"), "metaspace", "annotate", ds.imzml_url, "--db", str(db)]
    args += ["--adducts", "+H,+Na", "--ppm", "3", "--out", str(out), "--workers", "2", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "at FDR <= 10%" in result.output
    assert "stages: ions" in result.output
    table = pd.read_csv(out / "annotations.csv")
    parquet = pd.read_parquet(out / "annotations.parquet")
    assert len(table) == len(parquet) > 0
    found = set(table[(table.fdr <= 0.1) & (table.adduct == "+H")].formula)
    assert found == set(PLANTED)
    assert table.molecule_names[table.formula == "C6H12O6"].tolist() == ["name 0"] * int(
        (table.formula == "C6H12O6").sum()
    )
    pngs = sorted(p.name for p in (out / "images").glob("*.png"))
    assert "C6H12O6+H_0.png" in pngs
    assert len(pngs) == 4 * int((table.fdr <= 0.1).sum())
    assert len(list((tmp_path / "home" / "cache" / "metaspace").glob("centroids-*.parquet"))) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["annotations"] == len(table)
    assert summary["ibd_bytes_read"] > 0


def test_cli_rejects_bad_adduct_and_ppm(tmp_path: Path) -> None:
    db = tmp_path / "db.csv"
    db.write_text("id,name,formula\n1,a,H2O\n")
    base = ["--home", str(tmp_path), "metaspace", "annotate", "x.imzML", "--db", str(db), "--out", str(tmp_path)]
    for extra, words in ((["--adducts", "+H,+Zz"], "unknown element 'Zz'"), (["--ppm", "0"], "ppm must be > 0")):
        result = CliRunner().invoke(cli, [*base, *extra])
        assert result.exit_code != 0
        assert words in str(result.exception)


@pytest.mark.s3
def test_annotate_on_seaweedfs(tmp_path: Path, s3_root: str, s3_default: Settings) -> None:
    ds = write_planted_dataset(s3_root + "in/ds", PLANTED, DATABASE, width=8, height=8, seed=2, settings=s3_default)
    assert ds.imzml_url.startswith("s3://")
    with FunctionExecutor("local", workers=2, progress=False, settings=s3_default) as fexec:
        result = annotate(
            ds.imzml_url,
            DATABASE,
            adducts=["+H"],
            executor=fexec,
            settings=s3_default,
            cache_url=s3_root + "cache",
            progress=False,
        )
    assert set(result.table[result.table.fdr <= 0.1].formula) == set(PLANTED)
    assert result.ibd_bytes_read <= result.ibd_size
    written = write_outputs(result, s3_root + "out", settings=s3_default)
    assert s3_root + "out/annotations.parquet" in written
    back = pd.read_parquet(io.BytesIO(storage.get(s3_root + "out/annotations.parquet", settings=s3_default)))
    assert back.formula.tolist() == result.table.formula.tolist()
    # the centroids are cached content-addressed in the store and reused
    cached = [i.url for i in storage.list(s3_root + "cache/", settings=s3_default)]
    assert len(cached) == 1
    assert cached[0].endswith(".parquet")
    again = annotate(
        ds.imzml_url, DATABASE, adducts=["+H"], settings=s3_default, cache_url=s3_root + "cache", progress=False
    )
    pd.testing.assert_frame_equal(again.table, result.table)
