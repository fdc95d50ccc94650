"""``xhub mdr``: MDR epistasis (every SNP pair) over genotype files, on the executor or MPI.

Example:
    >>> from click.testing import CliRunner
    >>> from xtremehub.cli import cli
    >>> "--genotypes" in CliRunner().invoke(cli, ["mdr", "run", "--help"]).output
    True
"""

from __future__ import annotations

import click

from xtremehub.config import Settings

__all__ = ["mdr_group"]


@click.group("mdr")
def mdr_group() -> None:
    """MDR epistasis: test every SNP pair for an interaction that predicts disease."""


@mdr_group.command("run")
@click.option(
    "--genotypes",
    "-g",
    multiple=True,
    required=True,
    help="Genotype files (gzip IMPUTE .gen style): URLs, or globs in the last part (s3://b/dir/*.gz).",
)
@click.option("--labels", "-l", required=True, help="Oxford .sample file with the case/control phenotype last.")
@click.option("--out", "-o", required=True, help="Output prefix (local directory or s3://bucket/prefix/).")
@click.option("--mpi", is_flag=True, help="Run on MPI.COMM_WORLD (launch with mpiexec -n N xhub mdr run --mpi ...).")
@click.option(
    "--mode",
    type=click.Choice(["default", "compat"]),
    default="default",
    show_default=True,
    help="default: corrected MDR; compat: the seed's Lithops results exactly.",
)
@click.option("--backend", default="local", show_default=True, help="Executor backend (local, ray, dask, lithops).")
@click.option("--tasks", default=1, show_default=True, type=click.IntRange(min=1), help="Executor calls.")
@click.option("--workers", type=int, help="Executor workers (default: --tasks).")
@click.option("--top-k", default=20, show_default=True, type=click.IntRange(min=1), help="Pairs in the summary.")
@click.option("--text-tolerance", type=float, help="Seed text output: only pairs whose fold values sum <= this.")
@click.option("--cv-sets", default=5, show_default=True, type=click.IntRange(min=2), help="Cross-validation folds.")
@click.pass_obj
def run(
    settings: Settings,
    genotypes: tuple[str, ...],
    labels: str,
    out: str,
    mpi: bool,
    mode: str,
    backend: str,
    tasks: int,
    workers: int | None,
    top_k: int,
    text_tolerance: float | None,
    cv_sets: int,
) -> None:
    """Evaluate every unordered SNP pair once; write per-pair fold values, the top pairs and a plot."""
    from xtremehub.pipelines.epistasis import MDRConfig
    from xtremehub.pipelines.epistasis.driver import run_mdr, run_mdr_mpi

    config = MDRConfig(mode=mode, cv_sets=cv_sets, top_k=top_k, text_tolerance=text_tolerance)  # type: ignore[arg-type]
    if mpi:
        report = run_mdr_mpi(list(genotypes), labels, out, config=config, settings=settings)
        if report is None:  # not rank 0
            return
    else:
        from xtremehub.compute import FunctionExecutor

        with FunctionExecutor(backend, workers=workers or tasks, settings=settings) as fexec:
            report = run_mdr(list(genotypes), labels, out, config=config, tasks=tasks, executor=fexec)
    click.echo(
        f"{report.pairs:,} pairs ({report.tiles_computed} tiles computed, {report.tiles_skipped} already done) "
        f"by {report.workers} workers in {report.seconds:.2f}s"
    )
    for i, row in enumerate(report.top[:5], start=1):
        click.echo(f"  #{i} {row['file1']}:{row['snp1']} x {row['file2']}:{row['snp2']}  mean {row['mean']:.4f}")
    click.echo(f"outputs: {report.outputs['pairs']}, {report.outputs['top']}, {report.outputs['plot']}")
