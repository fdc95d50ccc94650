"""``xhub telemetry``: list, show and plot the recorded job telemetry (JSON lines)."""

from __future__ import annotations

from pathlib import Path

import click

from xtremehub.config import Settings
from xtremehub.errors import ConfigError

__all__ = ["telemetry_group"]


def telemetry_dir(settings: Settings, given: str | None) -> str:
    """The directory given, else ``[telemetry] dir`` (local directories only)."""
    where = given or settings.telemetry.dir
    if not where:
        raise ConfigError("no telemetry directory: pass --dir or set [telemetry] dir / XHUB_TELEMETRY_DIR")
    if "://" in str(where) and not str(where).startswith("file://"):
        raise ConfigError(f"{where}: xhub telemetry reads local directories; copy the files first")
    return str(where).removeprefix("file://")


_CALL_HEADER = f"{'call':>5} {'status':<8} {'worker':<10} {'input MB':>9} {'dur s':>8} {'cpu s':>7} {'peak MiB':>9}"
_DIR = click.option("--dir", "directory", default=None, help="Telemetry directory (default: [telemetry] dir).")


@click.group("telemetry")
def telemetry_group() -> None:
    """Job telemetry recorded with [telemetry] dir: list jobs, show one, plot it."""


@telemetry_group.command("ls")
@_DIR
@click.option("--function", default=None, help="Only the jobs of this function (module.qualname).")
@click.pass_obj
def ls(settings: Settings, directory: str | None, function: str | None) -> None:
    """One line per job: function, backend, calls, failures, input, wall and summed time, peak RSS."""
    from xtremehub.optimizer import TelemetryStore

    with TelemetryStore() as store:
        store.load(telemetry_dir(settings, directory))
        click.echo(_header())
        for job in store.jobs(function):
            click.echo(str(job))


def _header() -> str:
    from xtremehub.optimizer.store import JobRow

    return JobRow.HEADER


@telemetry_group.command("show")
@click.argument("job_id")
@_DIR
@click.pass_obj
def show(settings: Settings, job_id: str, directory: str | None) -> None:
    """Every call of JOB_ID, then the cost model of its function when enough calls are recorded."""
    from xtremehub.optimizer import Planner, TelemetryStore

    with TelemetryStore() as store:
        store.load(telemetry_dir(settings, directory))
        calls = store.calls(job_id)
        if not calls:
            raise ConfigError(f"no job {job_id!r} in the telemetry (see xhub telemetry ls)")
        click.echo(f"job {job_id}: {calls[0]['function']} on {calls[0]['backend']}, {len(calls)} calls")
        click.echo(
            f"{'call':>5} {'status':<8} {'worker':<10} {'input MB':>9} {'dur s':>8} {'cpu s':>7} {'peak MiB':>9}"
        )
        for c in calls:
            dur = "-" if c["duration"] is None else f"{c['duration']:.3f}"
            click.echo(
                f"{c['call_id']:>5} {c['status']:<8} {c['worker'][:10]:<10} {c['input_bytes'] / 1e6:>9.2f} "
                f"{dur:>8} {c['cpu']:>7.2f} {c['peak_rss'] / 2**20:>9.0f}"
            )
        model = Planner(store).model_for(calls[0]["function"])
        click.echo(model.explain() if model else "(too few calls of this function for a cost model)")


@telemetry_group.command("plot")
@click.argument("job_id")
@click.argument("dst")
@_DIR
@click.pass_obj
def plot(settings: Settings, job_id: str, dst: str, directory: str | None) -> None:
    """Write JOB_ID's timeline and duration histogram, and its function's cost fit, as PNGs at DST."""
    from xtremehub.compute.plots import plot_telemetry
    from xtremehub.optimizer import Planner, TelemetryStore, read_jsonl
    from xtremehub.optimizer.plots import plot_cost_fit

    with TelemetryStore() as store:
        store.load(telemetry_dir(settings, directory))
        calls = store.calls(job_id)
        if not calls:
            raise ConfigError(f"no job {job_id!r} in the telemetry (see xhub telemetry ls)")
        rows = [r for r in read_jsonl(calls[0]["source"]) if r.job_id == job_id]
        paths = list(plot_telemetry(rows, dst, name=job_id, settings=settings))
        function = calls[0]["function"]
        model = Planner(store).model_for(function)
        if model is not None:
            obs = store.observations(function)
            base = dst.rstrip("/") + ("/" + job_id if dst.endswith("/") or Path(dst).is_dir() else "")
            paths.append(plot_cost_fit(obs.input_bytes, obs.duration, model.duration, base + "_costmodel.png"))
    for p in paths:
        click.echo(p)
