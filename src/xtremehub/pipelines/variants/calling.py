"""Per region: merge and sort the region's BAM parts, pile up and call with pysam's bcftools.

A region's parts hold every read overlapping it, in input order (batch after batch); sorted
with ``samtools sort`` (stable), they are exactly the reads of a sequential run's sorted BAM
that overlap the region, in the same order. ``bcftools mpileup -R <region>`` then sees, at every
position of the region, the same pileup as a whole-genome run, so boundaries change nothing.

Example:
    >>> from xtremehub.pipelines.variants.calling import split_vcf
    >>> split_vcf("##fileformat=VCFv4.2\\n#CHROM\\tPOS\\nc\\t5\\n")
    (['##fileformat=VCFv4.2', '#CHROM\\tPOS'], ['c\\t5'])
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pysam
import pysam.bcftools

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.pipelines.variants.config import VariantsConfig
from xtremehub.pipelines.variants.mapping import bam_header
from xtremehub.pipelines.variants.plan import RunPlan, local_copy

__all__ = ["RegionCalls", "call_bam", "call_region", "header_vcf", "split_vcf", "write_vcf_gz"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegionCalls:
    """A call task's output: the region's VCF record lines, its read count and time."""

    region: int
    records: tuple[str, ...]
    reads: int
    seconds: float


def split_vcf(text: str) -> tuple[list[str], list[str]]:
    """Header lines and record lines of a VCF text."""
    lines = [line for line in text.splitlines() if line]
    head = [line for line in lines if line.startswith("#")]
    return head, lines[len(head) :]


def call_bam(bam: Path, reference: Path, config: VariantsConfig, regions: str | None, out: Path) -> str:
    """``bcftools mpileup -f reference [-R regions] bam | bcftools call``; returns the VCF text.

    ``regions``: the text of a bcftools regions file (see :meth:`Region.regions_file`)."""
    bcf = out.with_suffix(".mpileup.bcf")
    region_args: list[str] = []
    if regions:
        regions_file = out.with_suffix(".regions.tsv")
        regions_file.write_text(regions)
        region_args = ["-R", str(regions_file)]
    args = ["-f", str(reference), *region_args, *config.mpileup_args, "-O", "u", "-o", str(bcf), str(bam)]
    pysam.bcftools.mpileup(*args, catch_stdout=False)
    pysam.bcftools.call(*config.call_args, "-O", "v", "-o", str(out), str(bcf), catch_stdout=False)
    return out.read_text()


def sort_and_index(unsorted: Path, target: Path) -> Path:
    """``samtools sort`` (coordinate, stable) and ``samtools index``."""
    pysam.sort("-o", str(target), str(unsorted), catch_stdout=False)
    pysam.index(str(target), catch_stdout=False)
    return target


def call_region(plan: RunPlan, region: int, part_urls: Sequence[str]) -> RegionCalls:
    """Call task: merge the region's parts (batch order), sort, pile up and call the region."""
    t0 = time.perf_counter()
    reference = local_copy(plan.reference_url, plan.settings_for(plan.reference_url), ".fa")
    _ensure_fai(reference)
    with tempfile.TemporaryDirectory(prefix="xhub-call-") as tmp:
        parts = []
        for i, url in enumerate(part_urls):
            part = Path(tmp) / f"part{i}.bam"
            part.write_bytes(storage.get(url, settings=plan.settings_for(url)))
            parts.append(str(part))
        merged = Path(tmp) / "merged.bam"
        if parts:  # samtools cat: the parts' records one after the other, in batch order
            pysam.cat("-o", str(merged), *parts, catch_stdout=False)
        else:
            pysam.AlignmentFile(str(merged), "wb", header=bam_header(plan.contigs, plan.config.sample)).close()
        for name in parts:
            Path(name).unlink()
        bam_sorted = sort_and_index(merged, Path(tmp) / "sorted.bam")
        reads = _records(bam_sorted)
        text = call_bam(
            bam_sorted, reference, plan.config, plan.regions[region].regions_file(), Path(tmp) / "calls.vcf"
        )
    _, records = split_vcf(text)
    return RegionCalls(region, tuple(records), reads, time.perf_counter() - t0)


def _records(bam: Path) -> int:
    """Records in an indexed BAM (from its index)."""
    with pysam.AlignmentFile(str(bam), "rb") as f:
        return int(f.mapped + f.unmapped)


def _ensure_fai(reference: Path) -> None:
    if not reference.with_name(reference.name + ".fai").exists():
        pysam.faidx(str(reference), catch_stdout=False)


def header_vcf(reference: Path, contigs: tuple[tuple[str, int], ...], config: VariantsConfig) -> list[str]:
    """The VCF header the run writes: ``mpileup | call`` of an empty BAM over the reference."""
    _ensure_fai(reference)
    with tempfile.TemporaryDirectory(prefix="xhub-head-") as tmp:
        empty = Path(tmp) / "empty.bam"
        with pysam.AlignmentFile(str(empty), "wb", header=bam_header(contigs, config.sample)):
            pass
        pysam.index(str(empty), catch_stdout=False)
        head, _ = split_vcf(call_bam(empty, reference, config, None, Path(tmp) / "head.vcf"))
    return head


def write_vcf_gz(url: str, header: Sequence[str], records: Sequence[str], *, settings: Settings | None) -> int:
    """Write ``url`` (BGZF VCF) and ``url.tbi``; returns the compressed size."""
    with tempfile.TemporaryDirectory(prefix="xhub-vcf-") as tmp:
        plain = Path(tmp) / "calls.vcf"
        plain.write_text("\n".join([*header, *records]) + "\n")
        gz = Path(tmp) / "calls.vcf.gz"
        pysam.tabix_compress(str(plain), str(gz), force=True)
        pysam.tabix_index(str(gz), preset="vcf", force=True)
        with gz.open("rb") as fh:
            storage.put(url, fh, settings=settings)
        tbi = Path(str(gz) + ".tbi")
        with tbi.open("rb") as fh:
            storage.put(url + ".tbi", fh, settings=settings)
        return gz.stat().st_size
