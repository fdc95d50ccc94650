"""The vectorised learner against the seed's Lithops logic (compat) and scikit-mdr (default)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from lithops_reference import Reference, parse_sample, read_gz_text
from mdr import MDRClassifier

from xtremehub.pipelines.epistasis import (
    Cohort,
    GenotypeBlock,
    MDRConfig,
    apply_mdr,
    count_cells,
    get_risk_array,
    read_labels,
    read_sample,
    transform_patients,
)
from xtremehub.pipelines.epistasis.loader import stack_blocks

SEED_FILES = [f"chr0_synth000{i}.gz" for i in range(5)]  # the files listoffiles.txt pairs


def _seed(testdata: Path) -> tuple[Path, np.ndarray, list[GenotypeBlock]]:
    root = testdata / "mdr" / "simple_10x30x100"
    labels = read_labels((root / "labels.sample").read_bytes(), "labels.sample")
    blocks = [read_sample((root / "samples" / f).read_bytes(), f, n_patients=labels.size) for f in SEED_FILES]
    return root, labels, blocks


def test_seed_input_facts(testdata: Path) -> None:
    _, labels, blocks = _seed(testdata)
    assert labels.size == 100
    assert int(labels.sum()) == 48
    assert [b.n_snps for b in blocks] == [30] * 5
    assert blocks[0].keys[0] == "chr0-$-000000"


def _compare_with_reference(ref: Reference, dicts: list[dict], blocks: list[GenotypeBlock], cohort: Cohort) -> int:
    """Every pair within and across blocks: our compat values must equal the seed's bit for bit."""
    checked = 0
    for a in range(len(blocks)):
        for b in range(a, len(blocks)):
            res = apply_mdr(blocks[a].genotypes, blocks[b].genotypes, cohort, triangle=a == b)
            for i, j, ours in zip(res.first, res.second, res.errors, strict=True):
                _, theirs = ref.apply_mdr_dict((blocks[a].keys[i], blocks[b].keys[j]), dicts[a], dicts[b])
                assert ours.tolist() == [float(v) for v in theirs], (blocks[a].keys[i], blocks[b].keys[j])
                checked += 1
    return checked


@pytest.mark.slow
def test_compat_mode_equals_lithops_logic_on_every_seed_pair(testdata: Path) -> None:
    root, labels, blocks = _seed(testdata)
    ref = Reference((root / "labels.sample").read_text())
    dicts = [parse_sample(read_gz_text((root / "samples" / f).read_bytes())) for f in SEED_FILES]
    cohort = Cohort.build(labels, MDRConfig(mode="compat"))
    assert _compare_with_reference(ref, dicts, blocks, cohort) == 150 * 149 // 2


def _random_gen(rng: np.random.Generator, n_snps: int, n_patients: int, missing: float) -> bytes:
    """A genotype file with soft probabilities: some calls fall under 0.9 (missing)."""
    lines = ["BCFv2.2", "#CHROM POS REF ALT"]
    for s in range(n_snps):
        g = rng.integers(0, 3, size=n_patients)
        probs = np.zeros((n_patients, 3))
        probs[np.arange(n_patients), g] = 1.0
        soft = rng.random(n_patients) < missing
        probs[soft] = [0.5, 0.3, 0.2]
        lines.append(f"chr1 $ rs{s} $ $ " + " ".join(f"{v:g}" for v in probs.ravel()))
    return gzip.compress(("\n".join(lines) + "\n").encode())


@pytest.mark.parametrize(
    ("n_patients", "first_label", "case_share"),
    [(37, 1, 0.6), (41, 0, 0.3), (100, 0, 0.5)],
    ids=["37p-first-case-more-cases", "41p-first-control", "100p"],
)
def test_compat_mode_quirks_match_on_generated_data(n_patients: int, first_label: int, case_share: float) -> None:
    """Truncated fold bounds, missing calls, first label 1, case/control ratio above 1."""
    rng = np.random.default_rng(n_patients)
    labels = (rng.random(n_patients) < case_share).astype(int)
    labels[0] = first_label
    labels_text = "ID_1 bin1\n0 B\n" + "".join(f"$ {v}\n" for v in labels)
    data = _random_gen(rng, 25, n_patients, missing=0.15)
    block = read_sample(data, "gen.gz", n_patients=n_patients)
    assert (block.genotypes < 0).any()
    ref = Reference(labels_text)
    cohort = Cohort.build(read_labels(labels_text), MDRConfig(mode="compat"))
    assert _compare_with_reference(ref, [parse_sample(read_gz_text(data))], [block], cohort) == 25 * 24 // 2


def _check_against_scikit_mdr(block: GenotypeBlock, labels: np.ndarray) -> int:
    cohort = Cohort.build(labels, MDRConfig())
    g = block.genotypes
    counts = count_cells(g, g, cohort)
    high = get_risk_array(counts, cohort)  # (cv, m, m, 16)
    res = apply_mdr(g, g, cohort, triangle=True)
    fold = cohort.fold_of
    checked = 0
    for k, (i, j) in enumerate(zip(res.first, res.second, strict=True)):
        features = np.stack([g[i], g[j]], axis=1).astype(np.int64)
        cells = transform_patients(g[i], g[j])
        for f in range(cohort.cv_sets):
            train, test = fold != f, fold == f
            model = MDRClassifier(tie_break=1, default_label=0).fit(features[train], labels[train].astype(np.int64))
            table = np.zeros(16, dtype=bool)  # cells never seen in training: default label 0
            for (x, y), label in model.feature_map.items():
                table[4 * (x if x >= 0 else 3) + (y if y >= 0 else 3)] = label == 1
            assert table.tolist() == high[f, i, j].tolist(), (i, j, f)
            predicted = model.predict(features[test])
            assert predicted.tolist() == high[f, i, j][cells[test]].astype(int).tolist()
            wrong = float(np.mean(predicted != labels[test]))
            assert res.errors[k, f] == pytest.approx(wrong, abs=1e-12)
        checked += 1
    return checked


@pytest.mark.slow
def test_default_mode_agrees_with_scikit_mdr_on_seed_pairs(testdata: Path) -> None:
    _, labels, blocks = _seed(testdata)
    block = stack_blocks(blocks[:2])
    assert _check_against_scikit_mdr(block, labels) == 60 * 59 // 2


def test_default_mode_agrees_with_scikit_mdr_with_missing_calls() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(53) < 0.4).astype(np.int8)
    block = read_sample(_random_gen(rng, 14, 53, missing=0.2), "gen.gz", n_patients=53)
    assert _check_against_scikit_mdr(block, labels) == 14 * 13 // 2


def test_blocking_does_not_change_results(testdata: Path) -> None:
    _, labels, blocks = _seed(testdata)
    g = stack_blocks(blocks).genotypes
    for mode in ("default", "compat"):
        cohort = Cohort.build(labels, MDRConfig(mode=mode))  # type: ignore[arg-type]
        whole = apply_mdr(g, g, cohort, triangle=True)
        tiled = apply_mdr(g, g, cohort, triangle=True, block_snps=16)
        assert np.array_equal(whole.first, tiled.first)
        assert np.array_equal(whole.second, tiled.second)
        assert np.array_equal(whole.errors, tiled.errors)
        assert len(whole) == 150 * 149 // 2
