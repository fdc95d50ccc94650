"""Map a read batch with mappy (minimap2) and write one BAM part per overlapped genome region.

The minimap2 index is built once (:func:`build_index`, a ``.mmi`` put in the store) and each
worker process loads it once (:func:`aligner_for`). A read's primary alignment becomes a BAM
record (soft clips, ``NM``, read group; for pairs the mate fields, template length and the
proper-pair flag); it goes to the part of **every** region it overlaps, so each region's call
sees every read that covers it. Parts keep the reads' input order, which makes a region's sorted
BAM the same as the matching slice of a sequential run's sorted BAM.

Example:
    >>> import mappy
    >>> from xtremehub.pipelines.variants.mapping import bam_header, segments_for
    >>> import random
    >>> rng = random.Random(1)
    >>> ref = "".join(rng.choice("ACGT") for _ in range(300))
    >>> aligner = mappy.Aligner(seq=ref, preset="sr")  # a one-sequence index, named "N/A"
    >>> header = bam_header((("N/A", len(ref)),), "s")
    >>> [s] = segments_for(aligner, header, "r1", ref[10:70], "I" * 60, None, None, 1000)
    >>> s.reference_start, s.cigarstring, s.flag
    (10, '60M', 0)
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mappy
import pysam

from xtremehub import storage
from xtremehub.connectors.genomics import FASTQGZipSlice
from xtremehub.errors import ConfigError, MismatchedPairs
from xtremehub.pipelines.variants.config import VariantsConfig
from xtremehub.pipelines.variants.plan import RegionLookup, RunPlan, local_copy
from xtremehub.pipelines.variants.qc import ReadQC

__all__ = [
    "BatchResult",
    "ReadMapper",
    "aligner_for",
    "bam_header",
    "build_index",
    "map_batch",
    "read_name",
    "segments_for",
]

log = logging.getLogger(__name__)

_ALIGNERS: dict[str, Any] = {}  # per process: mmi URL -> mappy.Aligner
_QC_CHUNK = 20_000  # reads per QC update


def build_index(reference: Path, mmi: Path, preset: str = "sr") -> Any:
    """Index a local FASTA with minimap2's ``preset``, writing the ``.mmi``; returns the aligner."""
    aligner = mappy.Aligner(str(reference), preset=preset, fn_idx_out=str(mmi))
    if not aligner:
        raise ConfigError(f"{reference}: minimap2 could not index this reference")
    return aligner


def aligner_for(plan: RunPlan) -> Any:
    """The run's aligner in this process: the shared ``.mmi`` loaded once (never rebuilt)."""
    aligner = _ALIGNERS.get(plan.mmi_url)
    if aligner is None:
        path = local_copy(plan.mmi_url, plan.settings_for(plan.mmi_url), ".mmi")
        aligner = mappy.Aligner(str(path), preset=plan.config.preset)
        if not aligner:
            raise ConfigError(f"{plan.mmi_url}: not a minimap2 index")
        _ALIGNERS.clear()  # one run's index at a time
        _ALIGNERS[plan.mmi_url] = aligner
    return aligner


def bam_header(contigs: tuple[tuple[str, int], ...], sample: str) -> pysam.AlignmentHeader:
    """The BAM header of a run: every reference sequence, one read group named after the sample."""
    return pysam.AlignmentHeader.from_dict(
        {
            "HD": {"VN": "1.6", "SO": "unsorted"},
            "SQ": [{"SN": name, "LN": length} for name, length in contigs],
            "RG": [{"ID": sample, "SM": sample}],
        }
    )


def read_name(header: bytes) -> str:
    """A read's name: the header's first word without a ``/1`` or ``/2`` mate suffix."""
    name = header.split(maxsplit=1)[0].decode() if header else ""
    return name[:-2] if name.endswith(("/1", "/2")) else name


_REVCOMP = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def _segment(
    header: pysam.AlignmentHeader, name: str, seq: str, qual: str, hit: Any, flag: int, rg: str
) -> pysam.AlignedSegment:
    n = len(seq)
    if hit.strand < 0:
        seq, qual = seq.translate(_REVCOMP)[::-1], qual[::-1]
        left, right = n - hit.q_en, hit.q_st
        flag |= 0x10
    else:
        left, right = hit.q_st, n - hit.q_en
    a = pysam.AlignedSegment(header)
    a.query_name = name
    a.query_sequence = seq
    a.query_qualities = pysam.qualitystring_to_array(qual)
    a.flag = flag
    a.reference_id = header.get_tid(hit.ctg)
    a.reference_start = hit.r_st
    a.mapping_quality = hit.mapq
    a.cigarstring = (f"{left}S" if left else "") + hit.cigar_str + (f"{right}S" if right else "")
    a.set_tags([("NM", hit.NM, "i"), ("RG", rg, "Z")])
    return a


def _primary(hits: list[Any], read_num: int) -> Any:
    for hit in hits:
        if hit.read_num == read_num and hit.is_primary:
            return hit
    return None


def segments_for(
    aligner: Any,
    header: pysam.AlignmentHeader,
    name: str,
    seq: str,
    qual: str,
    seq2: str | None,
    qual2: str | None,
    max_insert: int,
    rg: str = "s",
) -> list[pysam.AlignedSegment]:
    """BAM records of one read (or pair): the primary alignment of each mapped read."""
    if seq2 is None or qual2 is None:
        hit = _primary(list(aligner.map(seq)), 1) if seq else None
        return [_segment(header, name, seq, qual, hit, 0, rg)] if hit else []
    hits = list(aligner.map(seq, seq2))
    h1, h2 = _primary(hits, 1), _primary(hits, 2)
    out = []
    proper, tlen = False, 0
    if h1 is not None and h2 is not None and h1.ctg == h2.ctg:
        lo, hi = min(h1.r_st, h2.r_st), max(h1.r_en, h2.r_en)
        forward, reverse = (h1, h2) if h1.strand > 0 else (h2, h1)
        proper = h1.strand != h2.strand and forward.r_st <= reverse.r_en and hi - lo <= max_insert
        tlen = hi - lo
    for hit, mate, s, q, first in ((h1, h2, seq, qual, True), (h2, h1, seq2, qual2, False)):
        if hit is None:
            continue
        flag = 0x1 | (0x40 if first else 0x80) | (0x2 if proper else 0)
        seg = _segment(header, name, s, q, hit, flag, rg)
        if mate is None:
            seg.flag |= 0x8
            seg.next_reference_id, seg.next_reference_start = seg.reference_id, seg.reference_start
        else:
            if mate.strand < 0:
                seg.flag |= 0x20
            seg.next_reference_id = header.get_tid(mate.ctg)
            seg.next_reference_start = mate.r_st
            if tlen:
                leftmost = hit.r_st < mate.r_st or (hit.r_st == mate.r_st and first)
                seg.template_length = tlen if leftmost else -tlen
        out.append(seg)
    return out


@dataclass
class BatchResult:
    """What a map task returns: counts, QC tables and its parts ``region -> (url, bytes, records)``."""

    batch: int
    reads: int = 0
    mapped: int = 0
    input_bytes: int = 0
    qc: ReadQC = field(default_factory=ReadQC)
    parts: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    seconds: float = 0.0


def iter_reads(slices: tuple[FASTQGZipSlice, ...]) -> Any:
    """``(name, seq, qual, seq2, qual2)`` of each read or pair, checking that mates agree."""
    if len(slices) == 1:
        for head, seq, qual in slices[0].iter_records():
            yield read_name(head), seq, qual, None, None
        return
    first, second = slices
    number = first.first_read
    for one, two in zip(first.iter_records(), second.iter_records(), strict=True):
        name = read_name(one[0])
        if read_name(two[0]) != name:
            raise MismatchedPairs(
                second.url, number, f"mate names differ: {name!r} in {first.url}, {read_name(two[0])!r} here", "record"
            )
        number += 1
        yield name, one[1], one[2], two[1], two[2]


class ReadMapper:
    """Maps the reads (or pairs) of slices, yielding their BAM records in input order; counts the
    reads and alignments and keeps the reads' QC tables (:meth:`qc`)."""

    def __init__(
        self, aligner: Any, header: pysam.AlignmentHeader, config: VariantsConfig, reads_before: int = 0
    ) -> None:
        self.aligner, self.header, self.config = aligner, header, config
        self.reads = self.mapped = 0
        self.reads_before = reads_before  # reads of the input before the first one mapped here
        self._seqs: list[bytes] = []
        self._quals: list[bytes] = []
        self._qc: list[ReadQC] = []

    def _keep(self, seq: bytes, qual: bytes) -> None:
        self.reads += 1
        self._seqs.append(seq)
        self._quals.append(qual)
        if len(self._seqs) >= _QC_CHUNK:
            self._flush()

    def _flush(self) -> None:
        before = self.reads_before + self.reads - len(self._seqs)
        self._qc.append(ReadQC.of(self._seqs, self._quals, reads_before=before))
        self._seqs, self._quals = [], []

    def map(self, slices: tuple[FASTQGZipSlice, ...]) -> Iterator[pysam.AlignedSegment]:
        for name, s1, q1, s2, q2 in iter_reads(slices):
            self._keep(s1, q1)
            if s2 is not None and q2 is not None:
                self._keep(s2, q2)
            segs = segments_for(
                self.aligner,
                self.header,
                name,
                s1.decode(),
                q1.decode(),
                None if s2 is None else s2.decode(),
                None if q2 is None else q2.decode(),
                self.config.max_insert,
                self.config.sample,
            )
            self.mapped += len(segs)
            yield from segs

    def qc(self) -> ReadQC:
        """The QC tables of every read mapped so far (one merge of exact chunk tables)."""
        if self._seqs:
            self._flush()
        return ReadQC.merge_all(self._qc)


def map_batch(plan: RunPlan, batch: int, slices: tuple[FASTQGZipSlice, ...]) -> BatchResult:
    """Map task: one read batch (a slice of each FASTQ.gz) to BAM parts per overlapped region."""
    t0 = time.perf_counter()
    header = bam_header(plan.contigs, plan.config.sample)
    lookup = RegionLookup(plan.regions)
    mates = len(slices)  # reads per record number
    mapper = ReadMapper(aligner_for(plan), header, plan.config, reads_before=slices[0].first_read * mates)
    result = BatchResult(batch, input_bytes=sum(s.object_size for s in slices))
    with tempfile.TemporaryDirectory(prefix="xhub-map-") as tmp:
        writers: dict[int, pysam.AlignmentFile] = {}
        counts: dict[int, int] = {}
        for seg in mapper.map(slices):
            for region in plan_regions(lookup, seg):
                writer = writers.get(region)
                if writer is None:
                    path = Path(tmp) / f"r{region}.bam"
                    writer = writers[region] = pysam.AlignmentFile(str(path), "wb", header=header)
                writer.write(seg)
                counts[region] = counts.get(region, 0) + 1
        for region, writer in writers.items():
            writer.close()
            url = plan.part_url(region, batch)
            path = Path(tmp) / f"r{region}.bam"
            with path.open("rb") as fh:
                storage.put(url, fh, settings=plan.settings_for(url))
            result.parts[region] = (url, path.stat().st_size, counts[region])
    result.reads, result.mapped, result.qc = mapper.reads, mapper.mapped, mapper.qc()
    result.seconds = time.perf_counter() - t0
    return result


def plan_regions(lookup: RegionLookup, seg: pysam.AlignedSegment) -> list[int]:
    """The regions an alignment overlaps (reference span ``[start, end)``)."""
    end = seg.reference_end if seg.reference_end is not None else seg.reference_start + 1
    return lookup.overlapping(seg.reference_name or "", seg.reference_start, end)
