"""A generated cohort with a planted two-SNP interaction, in the seed's file formats.

The planted pair acts only jointly: its penetrance table ``[[hi, lo, hi], [lo, hi, lo], [hi, lo,
hi]]`` has the same marginal risk for every genotype of either SNP when allele frequencies are 0.5
(Hardy-Weinberg genotype frequencies 1/4, 1/2, 1/4), so no single-SNP test sees it.

Example:
    >>> from xtremehub.pipelines.epistasis.synth import generate_cohort
    >>> c = generate_cohort("mem://mdr-synth/", n_patients=200, snps_per_file=10, n_files=2, seed=1)
    >>> len(c.files), c.planted
    (2, ('chr1-$-rs0000005', 'chr1-$-rs0000015'))
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from xtremehub import storage

__all__ = ["SyntheticCohort", "generate_cohort"]

HEADER = "BCFv2.2\n##fileformat=VCFv4.3\n##source=xtremehub.pipelines.epistasis.synth\n#CHROM POS ID REF ALT\n"


@dataclass(frozen=True)
class SyntheticCohort:
    files: tuple[str, ...]
    labels: str
    #: the planted SNPs' keys and (file, row), the earlier file first
    planted: tuple[str, str]
    planted_rows: tuple[tuple[int, int], tuple[int, int]]


def generate_cohort(
    out: str,
    *,
    n_patients: int = 1000,
    snps_per_file: int = 500,
    n_files: int = 4,
    seed: int = 0,
    penetrance: tuple[float, float] = (0.8, 0.2),
    soft: bool = True,
) -> SyntheticCohort:
    """Write ``n_files`` genotype files and ``labels.sample`` under ``out``; two random SNPs (in
    different files when there are several) carry the interaction."""
    rng = np.random.default_rng(seed)
    out = out.rstrip("/")
    genos = rng.binomial(2, 0.5, size=(n_files, snps_per_file, n_patients)).astype(np.int8)
    fa, fb = rng.choice(n_files, 2, replace=False) if n_files > 1 else (0, 0)
    ra = int(rng.integers(snps_per_file))
    rb = (
        int(rng.integers(snps_per_file))
        if fa != fb
        else (ra + 1 + int(rng.integers(snps_per_file - 1))) % snps_per_file
    )
    hi, lo = penetrance
    table = np.array([[hi, lo, hi], [lo, hi, lo], [hi, lo, hi]])
    risk = table[genos[fa, ra], genos[fb, rb]]
    labels = (rng.random(n_patients) < risk).astype(np.int8)
    names = [f"chr1_part{f:04d}" for f in range(n_files)]
    files = []
    tokens = ["0.96 0.02 0.02", "0.02 0.96 0.02", "0.02 0.02 0.96"] if soft else ["1 0 0", "0 1 0", "0 0 1"]
    for f in range(n_files):
        rows = [
            f"chr1 $ rs{f * snps_per_file + s:07d} $ $ " + " ".join([tokens[g] for g in genos[f, s].tolist()])
            for s in range(snps_per_file)
        ]
        url = f"{out}/{names[f]}.gz"
        storage.put(url, gzip.compress((HEADER + "\n".join(rows) + "\n").encode(), mtime=0))
        files.append(url)
    sample = "ID_1 ID_2 missing bin1\n0 0 0 B\n" + "".join(f"$ $ $ {v}\n" for v in labels.tolist())
    storage.put(f"{out}/labels.sample", sample.encode())
    first, second = sorted([(int(fa), ra), (int(fb), rb)])
    keys = tuple(f"chr1-$-rs{f * snps_per_file + r:07d}" for f, r in (first, second))
    return SyntheticCohort(tuple(files), f"{out}/labels.sample", (keys[0], keys[1]), (first, second))
