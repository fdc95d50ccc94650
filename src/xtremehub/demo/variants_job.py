"""The demo's variant-calling part: simulated paired reads -> QC, mapping, calls, truth-set score.

A random genome with planted SNPs and indels and its paired FASTQ.gz reads are simulated once
in the data home; the pipeline maps read batches on the executor, regroups the alignments by
region through the store, calls each region and writes one VCF.gz with the QC PNG. It prints
the QC headline figures, the calls and the recall/precision against the planted truth.

Example:
    >>> import tempfile
    >>> from xtremehub.config import Settings
    >>> from xtremehub.demo.variants_job import run_variants_demo
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     report = run_variants_demo(Settings(home=tmp), genome_bases=20_000, coverage=8, workers=1)
    ...     report.ok
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.demo.catalog_link import demo_catalog
from xtremehub.pipelines.variants import SimConfig, TruthScore, VariantsReport, call_variants, compare_calls
from xtremehub.pipelines.variants.simulate import SimulatedRun, random_reference, simulate_run

__all__ = ["VariantsDemoReport", "run_variants_demo"]


@dataclass(frozen=True)
class VariantsDemoReport:
    run: SimulatedRun
    report: VariantsReport
    score: TruthScore

    @property
    def ok(self) -> bool:
        return self.score.snp_recall >= 0.9 and self.score.snp_precision >= 0.9 and self.report.calls > 0

    def summary(self) -> str:
        r, qc = self.report, self.report.qc.headline()
        stages = ", ".join(f"{name} {sec:.1f}s" for name, sec in r.stages.items())
        lines = [
            "XtremeHub demo: variant calling (FASTQ.gz batches -> minimap2 -> BAM parts by region -> bcftools)",
            f"  reads        {r.reads:,} paired reads ({r.mapped:,} mapped), {r.batches} batches x {r.regions} regions",
            f"  QC           mean quality {qc['mean_quality']:.1f}, >=Q30 {qc['q30_percent']:.1f} %, "
            f"GC {qc['gc_percent']:.1f} %, N {qc['n_percent']:.3f} %, adapter reads {qc['adapter_reads']}",
            f"  calls        {r.calls:,} variants ({len(self.run.variants):,} planted); {stages}",
            f"  shuffle      {r.shuffle_bytes / 1e6:.1f} MB in {r.shuffle_objects} BAM parts "
            f"({r.shuffle_bytes / max(r.input_bytes, 1):.2f} B per input byte)",
            f"  truth        {self.score.line()}",
            f"  outputs      {r.outputs['vcf']}, {r.outputs['qc_png']}",
            f"  check        SNP recall and precision >= 0.9: {'OK' if self.ok else 'FAILED'}",
        ]
        return "\n".join(lines)


def run_variants_demo(
    settings: Settings,
    *,
    genome_bases: int = 200_000,
    coverage: float = 25.0,
    batches: int = 4,
    workers: int | None = None,
    progress: bool | None = None,
) -> VariantsDemoReport:
    """Simulate (once) and call; ``genome_bases`` over three sequences, ``coverage`` depth."""
    folder = Path(settings.home).expanduser() / "sample" / f"variants-{genome_bases}-{coverage:g}x"
    config = SimConfig(coverage=coverage, seed=11)
    run_file = folder / "reads_2.fastq.gz"
    third = genome_bases // 3
    if not run_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        genome = random_reference(
            str(folder / "genome.fa"), {"chr1": genome_bases - 2 * third, "chr2": third, "chr3": third}, seed=5
        )
        simulate_run(genome, str(folder), config)
    run = _reload(folder, config)
    out = str(folder / "calls.vcf.gz")
    with (
        demo_catalog(settings) as cat,
        FunctionExecutor(workers=workers, settings=settings, progress=progress) as fexec,
    ):
        report = call_variants(
            run.reads_urls,
            run.reference_url,
            out,
            executor=fexec,
            read_batches=batches,
            region_size=max(genome_bases // 6, 1000),
            settings=settings,
            catalog=cat,  # the run (reads, reference -> VCF.gz, QC, report) goes into the demo's catalog
            owner="demo",
        )
    return VariantsDemoReport(run, report, compare_calls(out, run.truth_url, settings=settings))


def _reload(folder: Path, config: SimConfig) -> SimulatedRun:
    """The simulated run in ``folder`` (its planted variants from the truth VCF)."""
    from xtremehub.pipelines.variants.simulate import PlantedVariant
    from xtremehub.pipelines.variants.truth import vcf_records

    variants = []
    for line in vcf_records(str(folder / "truth.vcf")):
        cols = line.split("\t")
        variants.append(PlantedVariant(cols[0], int(cols[1]), cols[3], cols[4], cols[9]))
    reads = (str(folder / "reads_1.fastq.gz"), str(folder / "reads_2.fastq.gz"))
    return SimulatedRun(str(folder / "reference.fa"), reads, str(folder / "truth.vcf"), tuple(variants), 0)
