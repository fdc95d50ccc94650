"""``xhub demo``: the main job, end to end on the embedded defaults."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

import click

from xtremehub.config import Settings
from xtremehub.errors import MissingDependency
from xtremehub.plugins import install_hint, require_extra

__all__ = ["demo"]


class _Part(Protocol):
    """What every demo part returns: a summary to print and whether its checks passed."""

    @property
    def ok(self) -> bool: ...

    def summary(self) -> str: ...


@click.command("demo")
@click.option("--size-mb", default=256, show_default=True, help="Size of the generated sample dataset.")
@click.option("--partitions", type=int, help="Number of partitions (default: 4 per worker, at least 8).")
@click.option("--workers", type=int, help="Worker processes (default: CPU cores).")
@click.option("--fastq-mb", default=64, show_default=True, help="Uncompressed size of the generated FASTQ.gz.")
@click.option(
    "--genome-kb",
    default=200,
    show_default=True,
    type=click.IntRange(min=10),
    help="Genome size (kbp) of the variant-calling part.",
)
@click.option(
    "--stream-seconds",
    default=3.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds of video frames and sensor events to ingest in the streams part.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: only on a terminal).")
@click.option("--serve", is_flag=True, help="Then keep the web cockpit up on the demo's data (Ctrl-C stops).")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Cockpit port (0: any free)."
)
@click.pass_obj
def demo(
    settings: Settings,
    size_mb: int,
    partitions: int | None,
    workers: int | None,
    fastq_mb: int,
    genome_kb: int,
    stream_seconds: float,
    progress: bool | None,
    serve: bool = False,
    port: int = 8000,
) -> None:
    """Run the main job: generate sample data in the data home once, process it in parallel, verify.

    Part 1 cuts a CSV into newline-aligned byte ranges (map_reduce over an object URL);
    part 2 indexes a FASTQ.gz once and computes read statistics over slices of it, then calls
    variants from simulated paired reads (QC, mapping, calling by region, truth-set recall/precision);
    part 3 indexes a generated imzML image and renders an ion image from slices of it, then
    annotates a generated dataset with planted molecules METASPACE-style (top annotations, FDR);
    part 4 indexes a generated LAZ point cloud and computes a terrain model from its chunks;
    part 5 ingests a synthetic video-frame stream and a sensor-event stream into the embedded
    stream store, reads them live and, once tiered to LTS, historically, and prints latency
    percentiles; part 5b records H.264 video from generated cameras with a key-frame index,
    decodes it live and reads a time window back by key frames; part 5c counts k-mers in two
    stages through the ephemeral store, a reducer action merging the partials as they arrive
    (bytes moved, spills); part 6 runs MDR epistasis over
    a generated cohort with a planted SNP-SNP interaction; part 7 reads an encrypted FASTQ.gz
    through key release as a user with the research role, refuses one without it, writes an
    encrypted stream and verifies the audit log; part 8 registers every dataset the demo made in
    the data catalog, traces two jobs' lineage into it and exports it as DCAT-AP 3.

    ``--serve`` then serves the web cockpit on loopback over the demo's catalog, jobs and
    streams, prints its URL and runs until Ctrl-C (the exit code still reports the demo).

    A part whose extra is not installed (the variant calls need ``genomics``, the annotation
    ``metabolomics``, part 4 ``geo``, part 5b ``video``, part 6 ``hpc``, part 7 ``security``,
    part 8 ``catalog``) is
    skipped; one line at the end names the skipped parts and the extras that add them. The exit
    code reports only the parts that ran.
    """
    from xtremehub.demo import run_demo
    from xtremehub.demo.fastq_job import run_fastq_demo
    from xtremehub.demo.imzml_job import run_imzml_demo
    from xtremehub.demo.streams_job import StreamsDemoConfig, run_streams_demo

    click.echo(f"data home: {settings.home}", err=True)
    report = run_demo(settings, size_mb=size_mb, partitions=partitions, workers=workers, progress=progress)
    click.echo(report.summary())
    fastq = run_fastq_demo(settings, size_mb=fastq_mb, workers=workers, progress=progress)
    click.echo(fastq.summary())
    skipped: list[tuple[str, str]] = []  # (part, extra)

    def optional(label: str, extra: str, modules: tuple[str, ...], run: Callable[[], _Part]) -> bool:
        """Run one part if its extra is installed (True if it ran fine or was skipped)."""
        try:
            require_extra(label, extra, *modules)
        except MissingDependency:
            skipped.append((label, extra))
            return True
        part = run()
        click.echo(part.summary())
        return bool(part.ok)

    def variants() -> _Part:
        from xtremehub.demo.variants_job import run_variants_demo

        return run_variants_demo(settings, genome_bases=genome_kb * 1000, workers=workers, progress=progress)

    def metaspace() -> _Part:
        from xtremehub.demo.metaspace_job import run_metaspace_demo

        return run_metaspace_demo(settings, workers=workers, progress=progress)

    def las() -> _Part:
        from xtremehub.demo.las_job import run_las_demo

        return run_las_demo(settings, workers=workers, progress=progress)

    def video() -> _Part:
        from xtremehub.demo.video_job import VideoDemoConfig, run_video_demo

        return run_video_demo(settings, VideoDemoConfig(seconds=stream_seconds))

    def security() -> _Part:
        from xtremehub.demo.security_job import run_security_demo

        return run_security_demo(settings)

    def epistasis() -> _Part:
        from xtremehub.demo.epistasis_job import run_epistasis_demo

        return run_epistasis_demo(settings, workers=workers)

    def catalog() -> _Part:
        from xtremehub.demo.catalog_job import run_catalog_demo

        return run_catalog_demo(settings, workers=workers, source=report.dataset.url)

    variants_ok = optional("part 2b (FASTQ.gz -> variant calls)", "genomics", ("mappy", "pysam"), variants)
    imzml = run_imzml_demo(settings, workers=workers, progress=progress)
    click.echo(imzml.summary())
    metaspace_ok = optional(
        "part 3b (METASPACE annotation)", "metabolomics", ("cpyMSpec", "cpyMSpec_0_3_5", "cpyImagingMSpec"), metaspace
    )
    las_ok = optional("part 4 (LAZ point cloud -> terrain model)", "geo", ("laspy", "lazrs"), las)
    # Like `xhub streams serve`: writers, readers, the group commit and tiering share this
    # process's GIL; 0.5 ms hand-offs instead of Python's default 5 ms cut the latency tail.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        streams = run_streams_demo(settings, StreamsDemoConfig(seconds=stream_seconds))
    finally:
        sys.setswitchinterval(switch)
    click.echo(streams.summary())
    video_ok = optional("part 5b (surgery video on streams)", "video", ("av",), video)
    from xtremehub.demo.ephemeral_job import run_ephemeral_demo

    ephemeral = run_ephemeral_demo(settings, fastq_mb=fastq_mb, workers=workers)
    click.echo(ephemeral.summary())
    epistasis_ok = optional("part 6 (MDR epistasis)", "hpc", ("pyarrow",), epistasis)
    security_ok = optional("part 7 (security)", "security", ("jwt", "bcrypt", "cedarpy"), security)
    catalog_ok = optional("part 8 (data catalog)", "catalog", ("sqlalchemy", "alembic", "rdflib"), catalog)
    if skipped:  # one line: what did not run, and the one command that adds it all
        parts = ", ".join(f"{label} needs {install_hint(extra)}" for label, extra in skipped)
        click.echo(f"skipped {parts}; {install_hint('demo')} adds every part")
    parts_ok = [variants_ok, metaspace_ok, las_ok, streams.ok, video_ok, ephemeral.ok]
    parts_ok += [epistasis_ok, security_ok, catalog_ok]
    failed = not (report.ok and fastq.ok and imzml.ok and all(parts_ok))
    if serve:
        from xtremehub.web.cockpit.serve import serve_cockpit

        serve_cockpit(settings, port=port, echo=click.echo)
    if failed:
        sys.exit(1)
