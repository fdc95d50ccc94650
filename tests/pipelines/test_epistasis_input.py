"""Bad input: each a typed error naming the file and the row."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from xtremehub.errors import ConfigError, MalformedRecord, TruncatedData, XHubError
from xtremehub.pipelines.epistasis import MDRConfig, read_labels, read_sample
from xtremehub.pipelines.epistasis.driver import run_mdr

HEADER = "BCFv2.2\n#CHROM POS\n"
GOOD = "chr1 $ rs{i} $ $ 1 0 0 0 1 0 0 0 1 0.95 0.05 0\n"


def _gen(rows: list[str]) -> bytes:
    return gzip.compress((HEADER + "".join(rows)).encode())


def test_probabilities_not_summing_to_one() -> None:
    rows = [GOOD.format(i=1), GOOD.format(i=2), "chr1 $ rs3 $ $ 1 0 0 0.5 0.3 0.6 0 0 1 1 0 0\n"]
    with pytest.raises(MalformedRecord, match=r"bad\.gz: row 3, patient 2: probabilities 0\.5 0\.3 0\.6 sum to 1\.4"):
        read_sample(_gen(rows), "bad.gz", n_patients=4)


def test_explicitly_missing_call_is_allowed() -> None:
    block = read_sample(_gen(["chr1 $ rs1 $ $ 0 0 0 0 1 0 0 0 1 1 0 0\n"]), "ok.gz", n_patients=4)
    assert block.genotypes.tolist() == [[-1, 1, 2, 0]]


def test_wrong_column_count() -> None:
    rows = [GOOD.format(i=1), GOOD.format(i=2), "chr1 $ rs3 $ $ 1 0 0 0 1 0 0 0 1\n"]
    with pytest.raises(MalformedRecord, match=r"bad\.gz: row 3 \(line 5\) has 14 columns, expected 17") as info:
        read_sample(_gen(rows), "bad.gz", n_patients=4)
    assert (info.value.url, info.value.offset) == ("bad.gz", 3)


def test_non_numeric_probability() -> None:
    rows = [GOOD.format(i=1), "chr1 $ rs2 $ $ 1 0 0 0 x 0 0 0 1 1 0 0\n"]
    with pytest.raises(MalformedRecord, match=r"bad\.gz: row 2 \(line 4\): 'x' is not a probability"):
        read_sample(_gen(rows), "bad.gz", n_patients=4)


def test_label_count_differs_from_genotype_patients() -> None:
    with pytest.raises(MalformedRecord, match=r"g\.gz: row 1 \(line 3\) holds 4 patients but l\.sample lists 5"):
        read_sample(_gen([GOOD.format(i=1)]), "g.gz", n_patients=5, labels_url="l.sample")


def test_gzip_truncated_mid_row() -> None:
    rows = [GOOD.format(i=i) for i in range(1, 200)]
    data = _gen(rows)
    cut = data[: len(data) // 2]
    full = gzip.decompress(data)
    with pytest.raises(TruncatedData, match=r"cut\.gz: gzip stream ends inside genotype row (\d+)") as info:
        read_sample(cut, "cut.gz", n_patients=4)
    assert isinstance(info.value, XHubError)
    assert 1 < int(str(info.value).split("row ")[1].split()[0]) < 199
    assert len(full) > 0


def test_bad_labels() -> None:
    with pytest.raises(MalformedRecord, match=r"l\.sample: patient row 2 \(line 4\): phenotype 'NA'"):
        read_labels("ID bin1\n0 B\n$ 1\n$ NA\n", "l.sample")


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="mode"):
        MDRConfig(mode="fast")  # type: ignore[arg-type]


def test_a_bad_file_fails_the_run_with_its_name(tmp_path: Path) -> None:
    good = tmp_path / "a.gz"
    good.write_bytes(_gen([GOOD.format(i=i) for i in range(3)]))
    bad = tmp_path / "b.gz"
    bad.write_bytes(_gen([GOOD.format(i=9), "chr1 $ rs10 $ $ 1 0 0 0 1 0 0 0 1 0.6 0.6 0.6\n"]))
    labels = tmp_path / "labels.sample"
    labels.write_text("ID bin1\n0 B\n$ 0\n$ 1\n$ 0\n$ 1\n")
    with pytest.raises(MalformedRecord, match=r"b\.gz: row 2, patient 4"):
        run_mdr([str(good), str(bad)], str(labels), str(tmp_path / "out"), tasks=2, config=MDRConfig(cv_sets=2))


def test_fast_and_row_by_row_parsing_agree_and_decide_like_the_seed() -> None:
    """pyarrow's bulk parse (single spaces) and the row-by-row parse (double spaces) give the same
    calls, and a call just above 0.9 counts as the seed's float64 ``float(x) > 0.9`` decides."""
    rng = np.random.default_rng(5)
    probs = rng.dirichlet([0.3, 0.3, 0.3], size=(70, 40))  # 70 rows: two chunks
    probs[0, 0] = [0.900000001, 0.099999999, 0.0]  # float32 would round this to 0.9 (not a call)
    probs[0, 1] = [0.9, 0.1, 0.0]
    rows = [" ".join(repr(float(v)) for v in row.ravel()) for row in probs]
    single = _gen([f"chr1 $ rs{i} $ $ {r}\n" for i, r in enumerate(rows)])
    double = _gen([f"chr1 $ rs{i} $ $ {r.replace(' ', '  ')}\n" for i, r in enumerate(rows)])
    fast, slow = read_sample(single, "a.gz", n_patients=40), read_sample(double, "b.gz", n_patients=40)
    assert np.array_equal(fast.genotypes, slow.genotypes)
    assert fast.genotypes[0, :2].tolist() == [0, -1]
    assert (fast.genotypes >= 0).sum() > 100
