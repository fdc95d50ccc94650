"""FastQC-style read statistics per batch, merged exactly (associatively), drawn as one PNG.

Every statistic is a table of integer counts, so merging two batches is adding their tables
(padded to the longer read length) and the merge of all batches equals one sequential pass,
whatever the batching. The over-represented sequence estimate follows FastQC: it looks at the
first :data:`OVERREPRESENTED_SAMPLE` reads of the input (their first 50 bases); the merge keeps
the first batch's sample topped up by the next ones, which is again exactly the sequential one.

Example:
    >>> from xtremehub.pipelines.variants.qc import ReadQC
    >>> a = ReadQC.of([b"ACGTN", b"GGCC"], [b"IIII#", b"5555"])
    >>> b = ReadQC.of([b"AGATCGGAAGAGCAA"], [b"I" * 15])
    >>> merged = a.merge(b)
    >>> merged.reads, merged.bases, merged.length_counts.nonzero()[0].tolist()
    (3, 24, [4, 5, 15])
    >>> merged.headline()["adapter_reads"], round(merged.headline()["gc_percent"], 1)
    (1, 62.3)
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ADAPTERS", "OVERREPRESENTED_SAMPLE", "ReadQC", "qc_png"]

#: FastQC's adapter list (first 12-13 bases are what it searches for).
ADAPTERS: dict[str, bytes] = {
    "Illumina Universal": b"AGATCGGAAGAG",
    "Illumina Small RNA 3'": b"TGGAATTCTCGG",
    "Nextera Transposase": b"CTGTCTCTTATA",
    "SOLID Small RNA": b"CGCCTTGGCCGT",
}
OVERREPRESENTED_SAMPLE = 100_000  # reads (FastQC tracks the first 100,000 too)
_PREFIX = 50  # bases of a read compared for duplication
_QMAX = 94  # Phred 0..93


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` zero-padded along its last axis to ``n``."""
    if a.shape[-1] >= n:
        return a
    width = [(0, 0)] * (a.ndim - 1) + [(0, n - a.shape[-1])]
    return np.pad(a, width)


@dataclass(frozen=True)
class ReadQC:
    """Count tables of a set of reads (all ``int64``).

    Attributes:
        position_quality: ``[position, phred]`` base counts.
        read_quality: reads per mean Phred quality (integer part).
        gc_percent: reads per GC percentage (0..100, rounded half up).
        length_counts: reads per length.
        position_n: ``N`` bases per position.
        adapter_starts: ``[adapter, position]``: reads whose first hit of the adapter starts there.
        sample: the first reads' first 50 bases (see :data:`OVERREPRESENTED_SAMPLE`).
    """

    reads: int = 0
    bases: int = 0
    position_quality: np.ndarray = field(default_factory=lambda: np.zeros((0, _QMAX), dtype=np.int64))
    read_quality: np.ndarray = field(default_factory=lambda: np.zeros(_QMAX, dtype=np.int64))
    gc_percent: np.ndarray = field(default_factory=lambda: np.zeros(101, dtype=np.int64))
    length_counts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    position_n: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    adapter_starts: np.ndarray = field(default_factory=lambda: np.zeros((len(ADAPTERS), 0), dtype=np.int64))
    sample: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, seqs: Sequence[bytes], quals: Sequence[bytes], offset: int = 33, reads_before: int = 0) -> ReadQC:
        """Statistics of reads ``seqs`` with quality strings ``quals`` (Phred+``offset``).

        ``reads_before``: reads of the input before these; the over-represented sample keeps only
        what the input's first :data:`OVERREPRESENTED_SAMPLE` reads need (nothing past them), so a
        batch far into the input ships no sample and merging in order still gives the exact one.
        """
        n = len(seqs)
        if n == 0:
            return cls()
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
        width = int(lengths.max())
        flat = np.frombuffer(b"".join(seqs), dtype=np.uint8)
        q = np.frombuffer(b"".join(quals), dtype=np.uint8).astype(np.int64) - offset
        q = np.clip(q, 0, _QMAX - 1)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        read = np.repeat(np.arange(n), lengths)
        pos = np.arange(flat.size) - np.repeat(starts, lengths)
        position_quality = np.bincount(pos * _QMAX + q, minlength=width * _QMAX).reshape(width, _QMAX)
        qsum = np.bincount(read, weights=q, minlength=n).astype(np.int64)
        safe = np.maximum(lengths, 1)
        read_quality = np.bincount(qsum // safe, minlength=_QMAX)[:_QMAX]
        upper = flat & 0xDF  # upper case
        gc = np.bincount(read, weights=(upper == ord("G")) | (upper == ord("C")), minlength=n).astype(np.int64)
        gc_percent = np.bincount((200 * gc + safe) // (2 * safe), minlength=101)
        position_n = np.bincount(pos[upper == ord("N")], minlength=width)
        adapters = np.zeros((len(ADAPTERS), width), dtype=np.int64)
        for i, adapter in enumerate(ADAPTERS.values()):
            for s in seqs:
                hit = s.find(adapter)
                if hit >= 0:
                    adapters[i, hit] += 1
        sample = tuple(s[:_PREFIX] for s in seqs[: max(OVERREPRESENTED_SAMPLE - reads_before, 0)])
        return cls(
            n,
            int(lengths.sum()),
            position_quality.astype(np.int64),
            read_quality.astype(np.int64),
            gc_percent.astype(np.int64),
            np.bincount(lengths).astype(np.int64),
            position_n.astype(np.int64),
            adapters,
            sample,
        )

    def merge(self, other: ReadQC) -> ReadQC:
        """The statistics of this batch followed by ``other`` (associative; exact)."""
        width = max(self.position_quality.shape[0], other.position_quality.shape[0])
        lengths = max(self.length_counts.size, other.length_counts.size)
        room = OVERREPRESENTED_SAMPLE - len(self.sample)
        return ReadQC(
            self.reads + other.reads,
            self.bases + other.bases,
            _pad(self.position_quality.T, width).T + _pad(other.position_quality.T, width).T,
            self.read_quality + other.read_quality,
            self.gc_percent + other.gc_percent,
            _pad(self.length_counts, lengths) + _pad(other.length_counts, lengths),
            _pad(self.position_n, width) + _pad(other.position_n, width),
            _pad(self.adapter_starts, width) + _pad(other.adapter_starts, width),
            self.sample + other.sample[: max(room, 0)],
        )

    @classmethod
    def merge_all(cls, parts: Sequence[ReadQC]) -> ReadQC:
        """Merge batches in order."""
        out = cls()
        for part in parts:
            out = out.merge(part)
        return out

    def equals(self, other: ReadQC) -> bool:
        """Every table and the sample are identical."""
        arrays = ("position_quality", "read_quality", "gc_percent", "length_counts", "position_n", "adapter_starts")
        return (self.reads, self.bases, self.sample) == (other.reads, other.bases, other.sample) and all(
            np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays
        )

    def overrepresented(self, min_fraction: float = 0.001) -> list[tuple[str, int, float]]:
        """Sequences making at least ``min_fraction`` of the sample: ``(sequence, count, fraction)``."""
        counts = Counter(self.sample)
        total = max(len(self.sample), 1)
        found = [(s.decode(), c, c / total) for s, c in counts.most_common() if c / total >= min_fraction and c > 1]
        return found[:20]

    def headline(self) -> dict[str, Any]:
        """The figures a report leads with."""
        q = self.position_quality
        bases = max(int(q.sum()), 1)
        quality_sum = int((q * np.arange(_QMAX)).sum())
        gc = int((self.gc_percent * np.arange(101)).sum())
        return {
            "reads": self.reads,
            "bases": self.bases,
            "mean_quality": quality_sum / bases,
            "q30_percent": 100 * int(q[:, 30:].sum()) / bases,
            "gc_percent": gc / max(self.reads, 1),
            "n_percent": 100 * int(self.position_n.sum()) / bases,
            "adapter_reads": int(self.adapter_starts.sum()),
            "overrepresented": len(self.overrepresented()),
        }

    def quality_quantiles(self, qs: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> np.ndarray:
        """``[quantile, position]`` Phred quantiles per position (for the box plot)."""
        cum = np.cumsum(self.position_quality, axis=1)
        totals = np.maximum(cum[:, -1:], 1)
        return np.array([(cum < totals * f).sum(axis=1) for f in qs])


def qc_png(qc: ReadQC, title: str = "Read QC") -> bytes:
    """One PNG with six panels: per-position quality, per-read quality, GC, lengths, N, adapters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    pos = np.arange(1, qc.position_quality.shape[0] + 1)
    if pos.size:
        p10, p25, p50, p75, p90 = qc.quality_quantiles()
        ax = axes[0, 0]
        ax.fill_between(pos, p10, p90, alpha=0.2, label="10-90 %")
        ax.fill_between(pos, p25, p75, alpha=0.4, label="25-75 %")
        ax.plot(pos, p50, label="median")
        ax.axhline(30, color="grey", lw=0.5, ls="--")
        ax.legend(fontsize=8)
    axes[0, 0].set(title="Quality per position", xlabel="position in read", ylabel="Phred")
    axes[0, 1].bar(np.arange(_QMAX), qc.read_quality, width=1)
    axes[0, 1].set(title="Mean quality per read", xlabel="Phred", ylabel="reads")
    axes[0, 2].plot(np.arange(101), qc.gc_percent)
    axes[0, 2].set(title="GC content per read", xlabel="GC %", ylabel="reads")
    axes[1, 0].bar(np.arange(qc.length_counts.size), qc.length_counts, width=1)
    axes[1, 0].set(title="Read lengths", xlabel="bases", ylabel="reads")
    covered = np.maximum(qc.position_quality.sum(axis=1), 1)
    axes[1, 1].plot(pos, 100 * qc.position_n / covered)
    axes[1, 1].set(title="N content", xlabel="position in read", ylabel="% N")
    for i, name in enumerate(ADAPTERS):
        axes[1, 2].plot(pos, 100 * np.cumsum(qc.adapter_starts[i]) / max(qc.reads, 1), label=name)
    axes[1, 2].set(title="Adapter content", xlabel="position in read", ylabel="% reads")
    axes[1, 2].legend(fontsize=7)
    h = qc.headline()
    fig.suptitle(
        f"{title}: {h['reads']:,} reads, {h['bases']:,} bases, mean Q {h['mean_quality']:.1f}, "
        f">=Q30 {h['q30_percent']:.1f} %, GC {h['gc_percent']:.1f} %, {h['overrepresented']} over-represented"
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
