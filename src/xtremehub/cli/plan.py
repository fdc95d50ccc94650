"""``xhub plan``: show the slices and workers the optimizer would choose for a map, and why."""

from __future__ import annotations

import re

import click

from xtremehub.config import Settings
from xtremehub.errors import ConfigError

__all__ = ["parse_size", "plan_command"]

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """``"512MiB"`` -> bytes.

    Example:
        >>> parse_size("512MiB"), parse_size("2GB"), parse_size("1000")
        (536870912, 2000000000, 1000)
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match[2].lower() not in _UNITS:
        raise ConfigError(f"not a size: {text!r} (examples: 1000, 64MB, 512MiB, 2GiB)")
    return int(float(match[1]) * _UNITS[match[2].lower()])


@click.command("plan")
@click.argument("function")
@click.argument("input_size")
@click.option("--dir", "directory", default=None, help="Telemetry directory (default: [telemetry] dir).")
@click.option("--workers", type=int, default=None, help="Workers available (default: CPU cores).")
@click.option("--objective", default="time", show_default=True, help="time, cost or mix:<cost weight 0..1>.")
@click.option("--memory-limit", default=None, help="Memory per worker, e.g. 512MiB.")
@click.option("--per-task-ms", type=float, default=5.0, show_default=True, help="Backend overhead per task.")
@click.option("--per-job-ms", type=float, default=0.0, show_default=True, help="Backend overhead per map.")
@click.option("--startup-s", type=float, default=0.0, show_default=True, help="Backend start-up time.")
@click.pass_obj
def plan_command(
    settings: Settings,
    function: str,
    input_size: str,
    directory: str | None,
    workers: int | None,
    objective: str,
    memory_limit: str | None,
    per_task_ms: float,
    per_job_ms: float,
    startup_s: float,
) -> None:
    """Plan a map of FUNCTION (module.qualname) over INPUT_SIZE (bytes, 2GB, or a path/URL to size)."""
    import os

    from xtremehub.cli.telemetry import telemetry_dir
    from xtremehub.optimizer import BackendProfile, Planner, TelemetryStore

    if re.fullmatch(r"[0-9.]+\s*[a-zA-Z]*", input_size):
        total = parse_size(input_size)
    else:
        from xtremehub.compute.partitioner import partition_objects

        total = sum(p.size for p in partition_objects([input_size], settings=settings, newline=None))
    store = TelemetryStore()
    if directory or settings.telemetry.dir:
        store.load(telemetry_dir(settings, directory))
    profile = BackendProfile("local", workers or os.cpu_count() or 1, startup_s, per_task_ms / 1e3, per_job_ms / 1e3)
    planner = Planner(
        store, profile=profile, objective=objective, memory_limit=parse_size(memory_limit) if memory_limit else None
    )
    click.echo(planner.plan(function, total).explain())
