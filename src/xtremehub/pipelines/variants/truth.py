"""Score calls against a truth set: recall and precision of SNPs and indels, genotype agreement.

A call matches a truth record when chromosome, position, REF and one ALT allele are equal
(planted indels have a single spelling, see :mod:`.simulate`).

Example:
    >>> from xtremehub.pipelines.variants.truth import compare_records
    >>> truth = ["c\\t5\\t.\\tA\\tG\\t.\\tPASS\\t.\\tGT\\t0/1", "c\\t9\\t.\\tAT\\tA\\t.\\tPASS\\t.\\tGT\\t1/1"]
    >>> calls = ["c\\t5\\t.\\tA\\tG\\t50\\t.\\tDP=9\\tGT\\t0/1", "c\\t7\\t.\\tC\\tT\\t9\\t.\\tDP=3\\tGT\\t0/1"]
    >>> s = compare_records(calls, truth)
    >>> s.snp_recall, s.snp_precision, s.indel_recall, s.genotype_agreement
    (1.0, 0.5, 0.0, 1.0)
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass

from xtremehub import storage
from xtremehub.config import Settings

__all__ = ["TruthScore", "compare_calls", "compare_records", "vcf_records"]


def vcf_records(url: str, *, settings: Settings | None = None) -> list[str]:
    """The record lines of a VCF (plain, gzip or BGZF)."""
    data = storage.get(url, settings=settings)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [line for line in data.decode().splitlines() if line and not line.startswith("#")]


def _keyed(records: Sequence[str]) -> dict[tuple[str, int, str, str], str]:
    """``(chrom, pos, ref, alt) -> genotype`` for each ALT allele."""
    out = {}
    for line in records:
        cols = line.split("\t")
        gt = cols[9].split(":")[0] if len(cols) > 9 else "."
        for alt in cols[4].split(","):
            out[(cols[0], int(cols[1]), cols[3], alt)] = gt.replace("|", "/")
    return out


def _is_snp(key: tuple[str, int, str, str]) -> bool:
    return len(key[2]) == len(key[3]) == 1


@dataclass(frozen=True)
class TruthScore:
    """Counts of true positives, false negatives and false positives, by variant type."""

    snp_tp: int
    snp_fn: int
    snp_fp: int
    indel_tp: int
    indel_fn: int
    indel_fp: int
    genotype_matches: int

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / (a + b) if a + b else 1.0

    @property
    def snp_recall(self) -> float:
        return self._ratio(self.snp_tp, self.snp_fn)

    @property
    def snp_precision(self) -> float:
        return self._ratio(self.snp_tp, self.snp_fp)

    @property
    def indel_recall(self) -> float:
        return self._ratio(self.indel_tp, self.indel_fn)

    @property
    def indel_precision(self) -> float:
        return self._ratio(self.indel_tp, self.indel_fp)

    @property
    def recall(self) -> float:
        return self._ratio(self.snp_tp + self.indel_tp, self.snp_fn + self.indel_fn)

    @property
    def precision(self) -> float:
        return self._ratio(self.snp_tp + self.indel_tp, self.snp_fp + self.indel_fp)

    @property
    def genotype_agreement(self) -> float:
        """Share of matched calls whose genotype equals the truth's."""
        return self.genotype_matches / max(self.snp_tp + self.indel_tp, 1)

    def line(self) -> str:
        return (
            f"SNP recall {self.snp_recall:.3f} precision {self.snp_precision:.3f}; "
            f"indel recall {self.indel_recall:.3f} precision {self.indel_precision:.3f}; "
            f"genotypes {self.genotype_agreement:.3f}"
        )


def compare_records(calls: Sequence[str], truth: Sequence[str]) -> TruthScore:
    """Score VCF record lines ``calls`` against ``truth``."""
    called, expected = _keyed(calls), _keyed(truth)
    tp = called.keys() & expected.keys()
    fn = expected.keys() - called.keys()
    fp = called.keys() - expected.keys()
    return TruthScore(
        sum(map(_is_snp, tp)),
        sum(map(_is_snp, fn)),
        sum(map(_is_snp, fp)),
        sum(not _is_snp(k) for k in tp),
        sum(not _is_snp(k) for k in fn),
        sum(not _is_snp(k) for k in fp),
        sum(called[k] == expected[k] for k in tp),
    )


def compare_calls(calls_url: str, truth_url: str, *, settings: Settings | None = None) -> TruthScore:
    """Score the VCF at ``calls_url`` against the truth VCF at ``truth_url``."""
    return compare_records(vcf_records(calls_url, settings=settings), vcf_records(truth_url, settings=settings))
