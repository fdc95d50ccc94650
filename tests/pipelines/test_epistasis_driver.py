"""The executor driver end to end: outputs, identical across task counts, restart, planted pair, S3."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from lithops_reference import Reference, parse_sample, read_gz_text, save_output_bytes

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings
from xtremehub.pipelines.epistasis import Cohort, MDRConfig, apply_mdr, read_labels, read_sample
from xtremehub.pipelines.epistasis.driver import run_mdr
from xtremehub.pipelines.epistasis.loader import stack_blocks
from xtremehub.pipelines.epistasis.synth import generate_cohort

SEED = "mdr/simple_10x30x100"
FILES = [f"chr0_synth000{i}.gz" for i in range(5)]


def _inputs(testdata: Path) -> tuple[list[str], str]:
    root = testdata / SEED
    return [str(root / "samples" / f) for f in FILES], str(root / "labels.sample")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_seed_run_writes_every_pair_once(testdata: Path, tmp_path: Path) -> None:
    files, labels = _inputs(testdata)
    report = run_mdr(files, labels, str(tmp_path / "out"), tasks=1)
    assert report.pairs == 150 * 149 // 2
    assert report.tiles_computed == 15
    out = tmp_path / "out"
    listed = (testdata / SEED / "listoffiles.txt").read_text().split()
    assert sorted(p.name for p in (out / "pairs").iterdir()) == sorted(f"MDR_{line}.gz" for line in listed)
    table = pq.read_table(out / "pairs.parquet")
    pairs = set(
        zip(
            table["snp1"].to_pylist(),
            table["file1"].to_pylist(),
            table["snp2"].to_pylist(),
            table["file2"].to_pylist(),
            strict=True,
        )
    )
    assert len(pairs) == report.pairs  # no pair twice, none reversed
    assert all((f1, s1) < (f2, s2) for s1, f1, s2, f2 in pairs)
    # the merged table equals the learner on all 150 SNPs at once
    lab = read_labels(Path(labels).read_bytes())
    block = stack_blocks([read_sample(Path(f).read_bytes(), f, n_patients=lab.size) for f in files])
    res = apply_mdr(block.genotypes, block.genotypes, Cohort.build(lab, MDRConfig()), triangle=True)
    got = np.stack([table[f"fold{f}"].to_numpy() for f in range(1, 6)], axis=1)
    expected = {
        (f"{block.keys[i]}", f"{block.keys[j]}", i // 30, j // 30): row
        for i, j, row in zip(res.first, res.second, res.errors, strict=True)
    }
    names = [f.removesuffix(".gz") for f in FILES]
    for k, (s1, f1, s2, f2) in enumerate(
        zip(
            table["snp1"].to_pylist(),
            table["file1"].to_pylist(),
            table["snp2"].to_pylist(),
            table["file2"].to_pylist(),
            strict=True,
        )
    ):
        assert got[k].tolist() == expected[(s1, s2, names.index(f1), names.index(f2))].tolist()
    top = (out / "top_pairs.tsv").read_text().splitlines()
    assert top[0].split("\t")[:3] == ["file1", "row1", "snp1"]
    assert len(top) == 1 + 20
    assert (out / "interactions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_compat_text_output_is_the_seeds_text(testdata: Path, tmp_path: Path) -> None:
    """Same lines, bytes and filtering (prediction_power_tol 2.3) as the seed's save_output."""
    files, labels = _inputs(testdata)
    config = MDRConfig(mode="compat", text_tolerance=2.3)
    run_mdr(files[:2], labels, str(tmp_path / "out"), config=config)
    ref = Reference(Path(labels).read_text())
    dicts = [parse_sample(read_gz_text(Path(f).read_bytes())) for f in files[:2]]
    keys = [list(d) for d in dicts]
    for a, b in [(0, 0), (0, 1), (1, 1)]:
        pairs = [(i, j) for i in range(30) for j in range(30) if a != b or i < j]
        results = [ref.apply_mdr_dict((keys[a][i], keys[b][j]), dicts[a], dicts[b]) for i, j in pairs]
        kept = [r for r in results if sum(r[1]) <= 2.3]
        assert 0 < len(kept) < len(results)
        name = f"MDR_chr0_synth000{a}-chr0_synth000{b}.gz"
        assert gzip.decompress((tmp_path / "out" / "pairs" / name).read_bytes()) == save_output_bytes(kept)


@pytest.mark.slow
@pytest.mark.dask
def test_outputs_identical_for_1_2_7_tasks_and_on_dask(testdata: Path, tmp_path: Path, dask_client: Any) -> None:
    files, labels = _inputs(testdata)
    trees = {}
    with FunctionExecutor("local", workers=2) as fexec:  # one pool for the three runs
        for tasks in (1, 2, 7):
            report = run_mdr(files, labels, str(tmp_path / f"t{tasks}"), tasks=tasks, executor=fexec)
            assert report.tiles_computed == 15
            trees[tasks] = _tree(tmp_path / f"t{tasks}")
    with FunctionExecutor("dask", client=dask_client) as fexec:  # the session's LocalCluster (tests/conftest.py)
        run_mdr(files, labels, str(tmp_path / "dask"), tasks=3, executor=fexec)
    trees[0] = _tree(tmp_path / "dask")
    assert len(trees[1]) == 15 * 2 + 5 + 5  # text, Parquet per tile; calls per file; run.json, merged
    assert trees[1] == trees[2] == trees[7] == trees[0]


def test_restart_recomputes_only_missing_tiles(testdata: Path, tmp_path: Path) -> None:
    files, labels = _inputs(testdata)
    out = tmp_path / "out"
    run_mdr(files, labels, str(out), tasks=2)
    before = _tree(out)
    parts = sorted((out / "parts").iterdir())
    kept_mtimes = {p.name: p.stat().st_mtime_ns for p in parts[3:]}
    for p in parts[:3]:  # as if the run crashed before these tiles finished
        p.unlink()
    (out / "pairs.parquet").unlink()
    report = run_mdr(files, labels, str(out), tasks=2)
    assert (report.tiles_computed, report.tiles_skipped) == (3, 12)
    assert report.stats.pairs == sum(
        30 * 29 // 2 if p.stem.split("-")[0] == p.stem.split("-")[1] else 900 for p in parts[:3]
    )
    assert {p.name: p.stat().st_mtime_ns for p in sorted((out / "parts").iterdir())[3:]} == kept_mtimes
    assert _tree(out) == before


@pytest.mark.slow
def test_planted_interaction_ranks_first(tmp_path: Path) -> None:
    # 1000 SNPs in 4 files (all 10 file-pair tiles, 2 tasks): the scale itself is bench/mdr_epistasis.py's
    cohort = generate_cohort(str(tmp_path / "in"), n_patients=1000, snps_per_file=250, n_files=4, seed=11)
    config = MDRConfig(text_tolerance=2.0)  # seed-style text only for candidate pairs, as the seed does
    report = run_mdr(list(cohort.files), cohort.labels, str(tmp_path / "out"), tasks=2, config=config)
    assert report.pairs == 1000 * 999 // 2
    best = report.top[0]
    assert (best["snp1"], best["snp2"]) == cohort.planted
    assert best["mean"] < 0.35 < report.top[1]["mean"]


def test_planted_pair_has_no_marginal_effect(tmp_path: Path) -> None:
    """The planted SNPs alone predict nothing: the interaction is pure epistasis."""
    cohort = generate_cohort(str(tmp_path), n_patients=4000, snps_per_file=5, n_files=2, seed=3)
    lab = read_labels(storage.get(cohort.labels))
    (fa, ra), (fb, rb) = cohort.planted_rows
    for f, r in ((fa, ra), (fb, rb)):
        g = read_sample(storage.get(cohort.files[f]), cohort.files[f]).genotypes[r]
        rates = [lab[g == v].mean() for v in range(3)]
        assert max(rates) - min(rates) < 0.05
    ga = read_sample(storage.get(cohort.files[fa]), "a").genotypes[ra]
    gb = read_sample(storage.get(cohort.files[fb]), "b").genotypes[rb]
    assert lab[(ga == 1) & (gb == 1)].mean() > 0.7 > 0.3 > lab[(ga == 1) & (gb == 0)].mean()


@pytest.mark.s3
def test_run_reads_and_writes_through_s3(testdata: Path, tmp_path: Path, s3_root: str, s3_default: Settings) -> None:
    files, labels = _inputs(testdata)
    urls = []
    for f in files[:3]:
        urls.append(f"{s3_root}in/{Path(f).name}")
        storage.put(urls[-1], Path(f).read_bytes())
    storage.put(f"{s3_root}in/labels.sample", Path(labels).read_bytes())
    report = run_mdr([f"{s3_root}in/chr0_*.gz"], f"{s3_root}in/labels.sample", f"{s3_root}out", tasks=2)
    assert report.pairs == 90 * 89 // 2
    local = run_mdr(files[:3], labels, str(tmp_path / "local"), tasks=1)
    assert storage.get(f"{s3_root}out/pairs.parquet") == (tmp_path / "local" / "pairs.parquet").read_bytes()
    assert local.top == report.top
    shutil.rmtree(tmp_path / "local")


@pytest.mark.s3
def test_explicit_settings_reach_every_read_and_write(testdata: Path, s3_root: str, s3_settings: Settings) -> None:
    """No process-wide S3 settings: planning, parsing, tiles and the merged outputs all use ``settings``."""
    files, labels = _inputs(testdata)
    inputs = [f"{s3_root}in/{Path(f).name}" for f in files[:3]]
    for url, f in zip(inputs, files[:3], strict=True):
        storage.put(url, Path(f).read_bytes(), settings=s3_settings)
    storage.put(f"{s3_root}in/labels.sample", Path(labels).read_bytes(), settings=s3_settings)
    out = f"{s3_root}out"
    report = run_mdr(inputs, f"{s3_root}in/labels.sample", out, tasks=2, settings=s3_settings)
    assert (report.pairs, report.tiles_computed) == (90 * 89 // 2, 6)
    for url in [
        *report.outputs.values(),
        f"{out}/genotypes/chr0_synth0000.npz",
        f"{out}/parts/{FILES[0][:-3]}-{FILES[1][:-3]}.parquet",
    ]:
        assert storage.exists(url, settings=s3_settings), url
    # serial, on the explicit settings again: every tile is found done in the same store
    rerun = run_mdr(inputs, f"{s3_root}in/labels.sample", out, executor=_Serial(), settings=s3_settings)  # type: ignore[arg-type]
    assert (rerun.tiles_computed, rerun.tiles_skipped, rerun.pairs) == (0, 6, report.pairs)


class _Serial:
    """The serial mapper: everything in this process."""

    def map(self, func: Any, items: Any) -> list[Any]:
        return [func(item) for item in items]


@pytest.mark.slow
@pytest.mark.lithops
def test_lithops_localhost_writes_the_same_files(
    testdata: Path, tmp_path: Path, lithops_config: dict[str, Any]
) -> None:
    """The seed's own engine (Lithops, localhost backend) behind our executor: same output files."""
    files, labels = _inputs(testdata)
    run_mdr(files[:3], labels, str(tmp_path / "local"), tasks=1)
    with FunctionExecutor("lithops", config=lithops_config) as fexec:
        report = run_mdr(files[:3], labels, str(tmp_path / "lithops"), tasks=3, executor=fexec)
    assert report.tiles_computed == 6
    assert _tree(tmp_path / "lithops") == _tree(tmp_path / "local")
