"""``call_variants``: FASTQ.gz read batches -> mappy -> BAM parts per region -> bcftools -> VCF.gz.

Stages (each reported to ``on_stage``): ``index`` (the reference's FASTA index and regions, the
minimap2 index built once and put in the store, the reads' FASTQ.gz indexes), ``map`` (one task
per read batch: QC tables, and one BAM part per overlapped region written to the store: the
shuffle), ``call`` (one task per region with reads: merge, sort, ``mpileup`` + ``call``) and
``write`` (records concatenated in reference order into one BGZF VCF with its tabix index,
the QC tables and PNG). :func:`call_sequential` is the same tools in one process over the
whole input: one mapping pass, one sorted BAM, one ``mpileup | call``.

Example:
    >>> import tempfile
    >>> from xtremehub.pipelines.variants import call_variants, simulate_run, SimConfig, random_reference
    >>> d = tempfile.mkdtemp()
    >>> run = simulate_run(random_reference(d + "/g.fa", {"c1": 30_000}), d, SimConfig(coverage=10))
    >>> report = call_variants(run.reads_urls, run.reference_url, d + "/calls.vcf.gz", read_batches=2)
    >>> report.calls > 20, report.reads == 2 * run.num_fragments
    (True, True)
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pysam

from xtremehub import storage
from xtremehub.config import Settings, default_settings
from xtremehub.connectors import CloudObject, as_mapper, starmap
from xtremehub.connectors.codecs.mapper import MapperLike
from xtremehub.connectors.genomics import FASTA, FASTQGZip, FASTQGZipSlice, partition_bases, partition_reads_per_batch
from xtremehub.errors import ConfigError, DuplicateSequence, MismatchedPairs
from xtremehub.pipelines.variants.calling import (
    RegionCalls,
    call_bam,
    call_region,
    header_vcf,
    sort_and_index,
    split_vcf,
    write_vcf_gz,
)
from xtremehub.pipelines.variants.config import VariantsConfig
from xtremehub.pipelines.variants.mapping import BatchResult, ReadMapper, bam_header, build_index, map_batch
from xtremehub.pipelines.variants.plan import Region, RunPlan, local_copy
from xtremehub.pipelines.variants.qc import ReadQC, qc_png
from xtremehub.storage.access import StoreAccess

__all__ = ["StageCallback", "VariantsReport", "call_sequential", "call_variants", "plan_run"]

log = logging.getLogger(__name__)

#: ``on_stage(stage, seconds, detail)`` is called as each stage ends.
StageCallback = Callable[[str, float, str], None]


@dataclass
class VariantsReport:
    """What a run did: counts, per-stage seconds, shuffle bytes, QC, outputs and notes."""

    out_url: str
    reads: int = 0
    mapped: int = 0
    calls: int = 0
    batches: int = 0
    regions: int = 0
    input_bytes: int = 0
    shuffle_bytes: int = 0
    shuffle_objects: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    qc: ReadQC = field(default_factory=ReadQC)
    outputs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(self.stages.values())

    def summary(self) -> dict[str, Any]:
        """The report as JSON-ready figures (also written beside the VCF)."""
        return {
            "reads": self.reads,
            "mapped": self.mapped,
            "calls": self.calls,
            "batches": self.batches,
            "regions": self.regions,
            "input_bytes": self.input_bytes,
            "shuffle_bytes": self.shuffle_bytes,
            "shuffle_objects": self.shuffle_objects,
            "stages": self.stages,
            "qc": self.qc.headline(),
            "outputs": self.outputs,
            "notes": self.notes,
        }


def _stage(report: VariantsReport, on_stage: StageCallback | None, name: str, t0: float, detail: str) -> float:
    seconds = time.perf_counter() - t0
    report.stages[name] = round(seconds, 3)
    log.info("stage %s: %.2fs (%s)", name, seconds, detail)
    if on_stage is not None:
        on_stage(name, seconds, detail)
    return time.perf_counter()


def _reference(
    reference_url: str, executor: MapperLike | None, settings: Settings
) -> tuple[list[tuple[str, int]], CloudObject]:
    """The reference's sequences from the FASTA connector's index; duplicate names refused."""
    co = CloudObject.from_path(FASTA, reference_url, settings=settings).preprocess(executor)
    if co["duplicate_names"]:
        raise DuplicateSequence(
            reference_url, 0, f"sequence names seen more than once: {', '.join(co['duplicate_names'][:5])}", "record"
        )
    return [(e.name, e.length) for e in FASTA.entries(co)], co


def plan_run(
    reads_urls: Sequence[str],
    reference_url: str,
    work_url: str,
    config: VariantsConfig,
    executor: MapperLike | None = None,
    settings: Settings | None = None,
) -> RunPlan:
    """Index the reference (FASTA connector) and cut it into regions of ``region_size`` bases."""
    settings = settings or default_settings()
    if len(reads_urls) not in (1, 2):
        raise ConfigError(f"give one FASTQ.gz (single-end) or two (paired-end), not {len(reads_urls)}")
    contigs, co = _reference(reference_url, executor, settings)
    regions = []
    for i, piece_slice in enumerate(co.partition(partition_bases, bases_per_slice=config.region_size)):
        regions.append(Region(i, tuple((e.name, a, b) for e, a, b in piece_slice.pieces)))  # type: ignore[attr-defined]
    return RunPlan(
        tuple(reads_urls),
        reference_url,
        work_url.rstrip("/"),
        config,
        tuple(contigs),
        tuple(regions),
        StoreAccess(settings),
    )


def read_slices(
    reads_urls: Sequence[str], batches: int, executor: MapperLike | None, settings: Settings
) -> list[tuple[FASTQGZipSlice, ...]]:
    """Per batch, one slice of each FASTQ.gz, cut at the same read numbers (pairs stay in step)."""
    objects = [CloudObject.from_path(FASTQGZip, url, settings=settings).preprocess(executor) for url in reads_urls]
    counts = [co["num_reads"] for co in objects]
    if len(set(counts)) > 1:
        raise MismatchedPairs(
            reads_urls[1], min(counts), f"{counts[0]} reads in {reads_urls[0]} but {counts[1]} here", "record"
        )
    per_batch = max(1, math.ceil(counts[0] / batches))
    cuts = [co.partition(partition_reads_per_batch, reads_per_batch=per_batch) for co in objects]
    return [tuple(s) for s in zip(*cuts, strict=True)]


def call_variants(
    reads_urls: Sequence[str],
    reference_url: str,
    out_url: str,
    *,
    executor: MapperLike | None = None,
    read_batches: int | None = None,
    region_size: int | None = None,
    config: VariantsConfig | None = None,
    settings: Settings | None = None,
    work_url: str | None = None,
    on_stage: StageCallback | None = None,
    catalog: Any = None,
    owner: str | None = None,
) -> VariantsReport:
    """Call variants of reads (one FASTQ.gz, or two paired ones) against a reference FASTA.

    Args:
        reads_urls: ``[reads.fastq.gz]`` or ``[reads_1.fastq.gz, reads_2.fastq.gz]``.
        reference_url: the reference FASTA (plain or gzip); sequence names must be unique.
        out_url: the VCF.gz to write (``.tbi``, ``.qc.png`` and ``.report.json`` beside it).
        executor: a :class:`~xtremehub.FunctionExecutor` (any backend) or ``None`` (serial, here).
        read_batches, region_size: override ``config``'s map and call task counts.
        work_url: where the index and the shuffle's BAM parts go (default ``<out_url>.work``).
        on_stage: called with ``(stage, seconds, detail)`` as each stage ends.
        catalog: a :class:`~xtremehub.catalog.api.CatalogAPI`: the run is recorded as a job reading
            the reads and the reference and writing the VCF.gz, its QC plot and report (``derived``
            datasets); ``owner`` is who ran it (default: the login name).
    """
    started = datetime.now(tz=UTC)
    config = config or VariantsConfig()
    overrides: dict[str, Any] = {}
    if read_batches is not None:
        overrides["read_batches"] = read_batches
    if region_size is not None:
        overrides["region_size"] = region_size
    if overrides:
        config = VariantsConfig(**{**config.__dict__, **overrides})
    settings = settings or default_settings()
    work = (work_url or out_url + ".work").rstrip("/")
    mapper = as_mapper(executor)
    report = VariantsReport(out_url)
    t = time.perf_counter()

    plan = plan_run(reads_urls, reference_url, work, config, executor, settings)
    reference = local_copy(reference_url, settings, ".fa")
    with tempfile.TemporaryDirectory(prefix="xhub-mmi-") as tmp:
        mmi = Path(tmp) / "reference.mmi"
        build_index(reference, mmi, config.preset)
        with mmi.open("rb") as fh:
            storage.put(plan.mmi_url, fh, settings=settings)
    batches = read_slices(plan.reads_urls, config.read_batches, executor, settings)
    report.batches, report.regions = len(batches), len(plan.regions)
    t = _stage(report, on_stage, "index", t, f"{len(plan.contigs)} sequences, {len(plan.regions)} regions")

    results: list[BatchResult] = starmap(mapper, map_batch, [(plan, i, b) for i, b in enumerate(batches)])
    report.reads = sum(r.reads for r in results)
    report.mapped = sum(r.mapped for r in results)
    report.input_bytes = sum(storage.head(u, settings=settings).size for u in plan.reads_urls)
    report.qc = ReadQC.merge_all([r.qc for r in results])
    parts: dict[int, list[str]] = {}
    for r in results:  # batch order
        for region, (url, size, _) in sorted(r.parts.items()):
            parts.setdefault(region, []).append(url)
            report.shuffle_bytes += size
            report.shuffle_objects += 1
    t = _stage(report, on_stage, "map", t, f"{report.reads:,} reads, {report.mapped:,} alignments")

    todo = sorted(parts)
    calls: list[RegionCalls] = starmap(mapper, call_region, [(plan, region, parts[region]) for region in todo])
    t = _stage(report, on_stage, "call", t, f"{len(todo)} regions with reads")

    records = [line for c in sorted(calls, key=lambda c: c.region) for line in c.records]
    report.calls = len(records)
    if report.mapped == 0:
        note = "no read mapped to the reference: the VCF has a header and no records"
        log.warning("%s: %s", out_url, note)
        report.notes.append(note)
    header = header_vcf(reference, plan.contigs, config)
    write_vcf_gz(out_url, header, records, settings=settings)
    report.outputs = {"vcf": out_url, "tbi": out_url + ".tbi", "qc_png": out_url + ".qc.png"}
    storage.put(report.outputs["qc_png"], qc_png(report.qc), settings=settings)
    if not config.keep_work:
        for url in [plan.mmi_url, *(u for urls in parts.values() for u in urls)]:
            storage.delete(url, settings=settings)
    _stage(report, on_stage, "write", t, f"{report.calls:,} calls -> {out_url}")
    report.outputs["report"] = out_url + ".report.json"
    storage.put(report.outputs["report"], json.dumps(report.summary(), indent=1).encode(), settings=settings)
    if catalog is not None:
        from xtremehub.catalog.lineage import record_run

        outputs = [report.outputs[k] for k in ("vcf", "qc_png", "report")]
        record_run(
            catalog, "xtremehub.pipelines.variants:call_variants", inputs=[*reads_urls, reference_url], outputs=outputs,
            owner=owner or getpass.getuser(), started=started, parameters=dict(config.__dict__),
            telemetry={"reads": report.reads, "mapped": report.mapped, "calls": report.calls,
                       "input_bytes": report.input_bytes, "shuffle_bytes": report.shuffle_bytes},
            settings=settings,
        )  # fmt: skip
    return report


def call_sequential(
    reads_urls: Sequence[str],
    reference_url: str,
    out_url: str,
    *,
    config: VariantsConfig | None = None,
    settings: Settings | None = None,
    on_stage: StageCallback | None = None,
) -> VariantsReport:
    """The baseline: the same tools in this process over the whole input, no regions or batches
    (the same outputs: VCF.gz, ``.tbi`` and the QC PNG)."""
    config = config or VariantsConfig()
    settings = settings or default_settings()
    report = VariantsReport(out_url, batches=1, regions=1)
    t = time.perf_counter()
    contigs, _ = _reference(reference_url, None, settings)
    reference = local_copy(reference_url, settings, ".fa")
    with tempfile.TemporaryDirectory(prefix="xhub-seq-") as tmp:
        aligner = build_index(reference, Path(tmp) / "reference.mmi", config.preset)
        [slices] = read_slices(reads_urls, 1, None, settings)
        t = _stage(report, on_stage, "index", t, f"{len(contigs)} sequences")
        header = bam_header(tuple(contigs), config.sample)
        unsorted = Path(tmp) / "all.bam"
        mapper = ReadMapper(aligner, header, config)
        with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
            for seg in mapper.map(slices):
                out.write(seg)
        report.reads, report.mapped, report.qc = mapper.reads, mapper.mapped, mapper.qc()
        report.input_bytes = sum(storage.head(u, settings=settings).size for u in reads_urls)
        t = _stage(report, on_stage, "map", t, f"{report.reads:,} reads")
        bam = sort_and_index(unsorted, Path(tmp) / "sorted.bam")
        head, records = split_vcf(call_bam(bam, reference, config, None, Path(tmp) / "calls.vcf"))
        t = _stage(report, on_stage, "call", t, f"{len(records):,} calls")
    report.calls = len(records)
    write_vcf_gz(out_url, head, records, settings=settings)
    report.outputs = {"vcf": out_url, "tbi": out_url + ".tbi", "qc_png": out_url + ".qc.png"}
    storage.put(report.outputs["qc_png"], qc_png(report.qc), settings=settings)
    _stage(report, on_stage, "write", t, out_url)
    return report
