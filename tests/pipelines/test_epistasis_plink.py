"""PLINK .bed/.bim/.fam input gives the same pairs and fold values as the same genotypes as text."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bed_reader import to_bed

from xtremehub.errors import MalformedRecord
from xtremehub.pipelines.epistasis.driver import run_mdr
from xtremehub.pipelines.epistasis.plink import read_plink_labels


def test_plink_input_matches_text_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n, m = 120, 12
    labels = (rng.random(n) < 0.45).astype(np.int8)
    genos = rng.integers(0, 3, size=(2, m, n)).astype(np.int8)
    genos[0, 3, :7] = -1  # missing calls
    tokens = {0: "1 0 0", 1: "0 1 0", 2: "0 0 1", -1: "0 0 0"}
    text_files, bed_files = [], []
    for f in range(2):
        rows = [f"1 $ rs{f}_{s} $ $ " + " ".join(tokens[v] for v in genos[f, s].tolist()) for s in range(m)]
        text = tmp_path / f"part{f}.gz"
        text.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
        text_files.append(str(text))
        val = np.where(genos[f] < 0, -127, genos[f]).T.astype(np.int8)
        props = {"pheno": [str(v + 1) for v in labels.tolist()], "sid": [f"rs{f}_{s}" for s in range(m)]}
        to_bed(tmp_path / f"plink{f}.bed", val, properties={**props, "chromosome": ["1"] * m})
        bed_files.append(str(tmp_path / f"plink{f}.bed"))
    (tmp_path / "labels.sample").write_text("ID bin1\n0 B\n" + "".join(f"$ {v}\n" for v in labels.tolist()))
    assert read_plink_labels(str(tmp_path / "plink0.fam")).tolist() == labels.tolist()
    a = run_mdr(text_files, str(tmp_path / "labels.sample"), str(tmp_path / "text"), tasks=1)
    b = run_mdr(bed_files, str(tmp_path / "plink0.fam"), str(tmp_path / "bed"), tasks=1)
    assert a.pairs == b.pairs == 24 * 23 // 2
    ta, tb = pq.read_table(tmp_path / "text" / "pairs.parquet"), pq.read_table(tmp_path / "bed" / "pairs.parquet")
    for col in ("file1", "row1", "row2", "fold1", "fold2", "fold3", "fold4", "fold5"):
        got = [v.replace("plink", "part") if isinstance(v, str) else v for v in tb[col].to_pylist()]
        assert ta[col].to_pylist() == got, col
    assert ta["snp1"][0].as_py() == "1-$-rs0_0"
    assert tb["snp1"][0].as_py() == "1-rs0_0"


def test_bad_fam_phenotype(tmp_path: Path) -> None:
    (tmp_path / "x.fam").write_text("0 a 0 0 0 1\n0 b 0 0 0 -9\n")
    with pytest.raises(MalformedRecord, match=r"x\.fam: patient row 2: phenotype '-9'"):
        read_plink_labels(str(tmp_path / "x.fam"))
