"""``xhub demo``: the main job, end to end on the embedded defaults."""

from __future__ import annotations

import sys

import click

from xtremehub.config import Settings

__all__ = ["demo"]


@click.command("demo")
@click.option("--size-mb", default=256, show_default=True, help="Size of the generated sample dataset.")
@click.option("--partitions", type=int, help="Number of partitions (default: 4 per worker, at least 8).")
@click.option("--workers", type=int, help="Worker processes (default: CPU cores).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: only on a terminal).")
@click.pass_obj
def demo(settings: Settings, size_mb: int, partitions: int | None, workers: int | None, progress: bool | None) -> None:
    """Run the main job: generate sample data in the data home once, process it in parallel, verify."""
    from xtremehub.demo import run_demo

    click.echo(f"data home: {settings.home}", err=True)
    report = run_demo(settings, size_mb=size_mb, partitions=partitions, workers=workers, progress=progress)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)
