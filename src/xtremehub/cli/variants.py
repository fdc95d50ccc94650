"""``xhub variants``: call variants from FASTQ.gz reads against a reference, on any backend.

Example:
    >>> from click.testing import CliRunner
    >>> from xtremehub.cli import cli
    >>> "--reference" in CliRunner().invoke(cli, ["variants", "call", "--help"]).output
    True
"""

from __future__ import annotations

import shlex

import click

from xtremehub.config import Settings

__all__ = ["variants_group"]


@click.group("variants")
def variants_group() -> None:
    """Genomics: read QC, parallel mapping (minimap2) and variant calling (bcftools) from FASTQ.gz."""


@variants_group.command("call")
@click.option(
    "--reads", "-r", multiple=True, required=True, help="FASTQ.gz URL; give it twice for paired-end (_1 then _2)."
)
@click.option("--reference", "-f", required=True, help="Reference FASTA URL (plain or gzip; unique names).")
@click.option("--out", "-o", required=True, help="Output VCF.gz URL (.tbi, .qc.png, .report.json beside it).")
@click.option("--backend", default="local", show_default=True, help="Executor backend (local, ray, dask, lithops).")
@click.option("--workers", type=int, help="Executor workers (default: the backend's).")
@click.option("--batches", default=8, show_default=True, type=click.IntRange(min=1), help="Read batches (map tasks).")
@click.option(
    "--region-size", default=1_000_000, show_default=True, type=click.IntRange(min=1), help="Bases per call task."
)
@click.option("--mpileup-args", default="-a FORMAT/AD,FORMAT/DP", show_default=True, help="bcftools mpileup options.")
@click.option("--call-args", default="-m -v", show_default=True, help="bcftools call options.")
@click.option("--sample", default="sample", show_default=True, help="Sample name in the VCF.")
@click.option("--keep-work", is_flag=True, help="Keep the index and the shuffle's BAM parts (under <out>.work/).")
@click.pass_obj
def call(
    settings: Settings,
    reads: tuple[str, ...],
    reference: str,
    out: str,
    backend: str,
    workers: int | None,
    batches: int,
    region_size: int,
    mpileup_args: str,
    call_args: str,
    sample: str,
    keep_work: bool,
) -> None:
    """Map read batches in parallel, regroup alignments by region through the store, call each region."""
    from xtremehub.compute import FunctionExecutor
    from xtremehub.pipelines.variants import VariantsConfig, call_variants

    config = VariantsConfig(
        read_batches=batches,
        region_size=region_size,
        mpileup_args=tuple(shlex.split(mpileup_args)),
        call_args=tuple(shlex.split(call_args)),
        sample=sample,
        keep_work=keep_work,
    )

    def stage(name: str, seconds: float, detail: str) -> None:
        click.echo(f"  {name:<6} {seconds:7.2f}s  {detail}", err=True)

    with FunctionExecutor(backend, workers=workers, settings=settings) as fexec:
        report = call_variants(list(reads), reference, out, executor=fexec, config=config, on_stage=stage)
    qc = report.qc.headline()
    click.echo(
        f"{report.calls:,} variants from {report.reads:,} reads ({report.mapped:,} mapped) in {report.seconds:.1f}s: "
        f"{report.batches} batches x {report.regions} regions, shuffle {report.shuffle_bytes / 1e6:.1f} MB "
        f"({report.shuffle_bytes / max(report.input_bytes, 1):.2f} B per input byte)"
    )
    click.echo(
        f"QC: mean quality {qc['mean_quality']:.1f}, >=Q30 {qc['q30_percent']:.1f} %, GC {qc['gc_percent']:.1f} %, "
        f"N {qc['n_percent']:.3f} %, adapter reads {qc['adapter_reads']:,}, over-represented {qc['overrepresented']}"
    )
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo("outputs: " + ", ".join(report.outputs.values()))


@variants_group.command("simulate")
@click.option("--reference", "-f", required=True, help="FASTA to plant variants in (or --random-bases).")
@click.option("--out-dir", "-o", required=True, help="Where reference.fa, reads_*.fastq.gz and truth.vcf go.")
@click.option("--coverage", default=30.0, show_default=True, type=float, help="Mean depth.")
@click.option("--single-end", is_flag=True, help="One FASTQ.gz of single reads instead of a pair of files.")
@click.option("--seed", default=0, show_default=True, type=int)
def simulate(reference: str, out_dir: str, coverage: float, single_end: bool, seed: int) -> None:
    """Simulate reads with planted SNPs and indels (the truth set) from a reference."""
    from xtremehub.pipelines.variants import SimConfig, simulate_run

    run = simulate_run(reference, out_dir, SimConfig(coverage=coverage, paired=not single_end, seed=seed))
    click.echo(f"{run.num_fragments:,} fragments, {len(run.variants):,} planted variants")
    click.echo("reads: " + " ".join(run.reads_urls))
    click.echo(f"reference: {run.reference_url}  truth: {run.truth_url}")
