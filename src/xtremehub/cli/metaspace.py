"""``xhub metaspace``: METASPACE-style metabolite annotation of imzML datasets.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(metaspace_group, ["annotate", "--help"])
    >>> "--adducts" in result.output and "--fdr-version" in result.output
    True
"""

from __future__ import annotations

from pathlib import Path

import click

from xtremehub.config import Settings
from xtremehub.errors import ConfigError

__all__ = ["metaspace_group"]


@click.group("metaspace")
def metaspace_group() -> None:
    """Annotate imaging mass spectrometry datasets with molecular formulas (METASPACE's method)."""


@metaspace_group.command("annotate")
@click.argument("imzml_url")
@click.option("--db", "db_url", required=True, help="Molecular database: CSV or TSV with id, name, formula.")
@click.option("--adducts", default="+H,+Na,+K", show_default=True, help="Target adducts, comma-separated.")
@click.option("--ppm", default=3.0, show_default=True, type=float, help="m/z window half-width in ppm.")
@click.option(
    "--fdr-version", default=1, show_default=True, type=click.Choice(["1", "3"]), help="METASPACE analysis version."
)
@click.option("--sigma", default=0.001238, show_default=True, type=float, help="Isotope peak sigma (Da).")
@click.option("--charge", default=1, show_default=True, type=int, help="Ion charge.")
@click.option("--decoy-sample-size", default=20, show_default=True, type=int, help="Decoys per target.")
@click.option("--out", "out_url", required=True, help="Output folder/prefix (local, s3://, mem://).")
@click.option("--png-fdr", default=0.1, show_default=True, type=float, help="Write ion images up to this FDR.")
@click.option("--backend", default=None, help="Executor backend (local, ray, dask, lithops; default from settings).")
@click.option("--workers", type=int, help="Workers (default: CPU cores).")
@click.option("--partitions", type=int, help="Spectrum slices and ion segments (default: 2 per worker).")
@click.option("--cache-url", help="Where centroids are cached (default: <data home>/cache/metaspace; 'none': off).")
@click.option("--top", default=10, show_default=True, help="Print this many top annotations.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: only on a terminal).")
@click.pass_obj
def annotate_command(
    settings: Settings,
    imzml_url: str,
    db_url: str,
    adducts: str,
    ppm: float,
    fdr_version: str,
    sigma: float,
    charge: int,
    decoy_sample_size: int,
    out_url: str,
    png_fdr: float,
    backend: str | None,
    workers: int | None,
    partitions: int | None,
    cache_url: str | None,
    top: int,
    progress: bool | None,
) -> None:
    """Annotate IMZML_URL against the database; write annotations.csv/.parquet, PNGs and summary.json."""
    from xtremehub.compute import FunctionExecutor
    from xtremehub.pipelines.metabolomics import AnnotationConfig, IsotopeSettings, annotate
    from xtremehub.pipelines.metabolomics.outputs import write_outputs

    names = tuple(a.strip() for a in adducts.split(",") if a.strip())
    if not names:
        raise ConfigError("--adducts: give at least one adduct")
    config = AnnotationConfig(
        adducts=names,
        ppm=ppm,
        fdr_version=int(fdr_version),
        isotopes=IsotopeSettings(charge=charge, sigma=sigma, analysis_version=int(fdr_version)),
        decoy_sample_size=decoy_sample_size,
    )
    if cache_url is None:
        cache_url = str(Path(settings.home).expanduser() / "cache" / "metaspace")
    with FunctionExecutor(backend, workers=workers, settings=settings, progress=progress) as fexec:
        result = annotate(
            imzml_url,
            db_url,
            config=config,
            executor=fexec,
            partitions=partitions,
            settings=settings,
            progress=progress,
            cache_url=None if cache_url == "none" else cache_url,
        )
    written = write_outputs(result, out_url, png_fdr=png_fdr, settings=settings)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    table = result.table
    click.echo(f"{len(table)} annotations with MSM > 0; {int((table.fdr <= 0.1).sum())} at FDR <= 10%")
    for row in table.head(top).itertuples():
        click.echo(f"  {row.formula:<24} {row.adduct:<6} m/z {row.mz:10.4f}  MSM {row.msm:.3f}  FDR {row.fdr:.0%}")
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    click.echo(f"stages: {stages}; .ibd read {result.ibd_bytes_read:,} of {result.ibd_size:,} bytes")
    click.echo(f"wrote {len(written)} files under {out_url}")
