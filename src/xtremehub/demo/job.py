"""The demo's parallel job: per-chromosome variant statistics with ``map_reduce``."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from xtremehub.compute import FunctionExecutor, ObjectPart
from xtremehub.compute.progress import progress_bar, wants_progress
from xtremehub.config import Settings
from xtremehub.demo.sample_data import HEADER, SampleDataset, ensure_sample_dataset

__all__ = ["DemoReport", "count_variants", "merge_counts", "run_demo"]


def count_variants(obj: ObjectPart) -> dict[str, Any]:
    """Map: rows, rows per chromosome and high-quality rows (QUAL >= 30) in one partition."""
    per_chrom: Counter[str] = Counter()
    rows = high = 0
    with obj.data_stream as stream:
        for line in stream:
            if line == HEADER:
                continue
            fields = line.split(b",")
            per_chrom[fields[1].decode()] += 1
            high += float(fields[5]) >= 30.0
            rows += 1
    return {
        "rows": rows,
        "high_quality": high,
        "per_chrom": dict(per_chrom),
        "bytes": obj.aligned_range[1] - obj.aligned_range[0],
    }


def merge_counts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Reduce: add up the partitions' counts."""
    per_chrom: Counter[str] = Counter()
    for r in results:
        per_chrom.update(r["per_chrom"])
    return {
        "rows": sum(r["rows"] for r in results),
        "high_quality": sum(r["high_quality"] for r in results),
        "per_chrom": dict(per_chrom),
        "bytes": sum(r["bytes"] for r in results),
        "partitions": len(results),
    }


@dataclass
class DemoReport:
    """What the demo did and found."""

    dataset: SampleDataset
    result: dict[str, Any]
    workers: int
    partitions: int
    seconds: float
    generated_seconds: float
    checks: dict[str, bool] = field(default_factory=dict)
    telemetry: str = ""  # str(fexec.job_summary()) of the job
    plots: tuple[str, ...] = ()  # fexec.plot() PNGs
    plan: str = ""  # the optimizer's plan.explain() for the map, when it chose the partitions

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def summary(self) -> str:
        mb = self.result["bytes"] / 1e6
        top = sorted(self.result["per_chrom"].items(), key=lambda kv: -kv[1])[:5]
        lines = [
            "XtremeHub demo: partitioned map_reduce on the embedded defaults",
            f"  dataset      {self.dataset.url} ({self.dataset.manifest['bytes'] / 1e6:.0f} MB"
            + (f", generated in {self.generated_seconds:.1f}s)" if self.generated_seconds else ", cached)"),
            f"  executor     local backend, {self.workers} worker processes",
            f"  partitions   {self.partitions} newline-aligned byte ranges",
            f"  time         {self.seconds:.2f}s  ({mb / self.seconds:.0f} MB/s, "
            f"{self.result['rows'] / self.seconds / 1e6:.2f} M rows/s)",
            f"  variants     {self.result['rows']:,} rows, {self.result['high_quality']:,} with QUAL >= 30",
            "  top chroms   " + ", ".join(f"{c}: {n:,}" for c, n in top),
        ]
        for name, passed in self.checks.items():
            lines.append(f"  check        {name}: {'OK' if passed else 'FAILED'}")
        if self.telemetry:
            lines.append("  telemetry    per job (fexec.job_summary()):")
            lines += [f"    {line}" for line in self.telemetry.splitlines()]
        lines += [f"  plot         {path}" for path in self.plots]
        if self.plan:
            lines.append("  optimizer    the map's partitions were chosen by the planner (xtremehub.optimizer):")
            lines += [f"    {line}" for line in self.plan.splitlines()]
        return "\n".join(lines)


def run_demo(
    settings: Settings,
    *,
    size_mb: int = 256,
    partitions: int | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> DemoReport:
    """Generate the sample data if needed, then count variants in parallel and verify."""
    t0 = time.perf_counter()
    show = wants_progress(settings.executor.progress if progress is None else progress)
    with progress_bar(size_mb * 1024 * 1024, "generating sample data", enabled=show, unit="B", unit_scale=True) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        dataset = ensure_sample_dataset(settings.home, size_mb=size_mb, on_progress=advance)
    generated = time.perf_counter() - t0
    with FunctionExecutor(workers=workers, settings=settings, progress=progress) as fexec:
        plan = None if partitions else _plan(fexec, settings, int(dataset.manifest["bytes"]))
        n_parts = partitions or (plan.slices if plan else max(8, 4 * fexec.backend.workers))
        known = {r.job_id for r in fexec.job_summary().rows}
        start = time.perf_counter()
        reducer = fexec.map_reduce(count_variants, dataset.url, merge_counts, obj_chunk_number=n_parts)
        fexec.wait(show_progressbar=progress)
        result = fexec.get_result(reducer)
        seconds = time.perf_counter() - start
        n_workers = fexec.backend.workers
        if plan is not None:
            _learn(settings, fexec, known, int(dataset.manifest["bytes"]), n_parts)
        telemetry = str(fexec.job_summary())
        plots = fexec.plot(dst=settings.home / "plots" / "demo")
    manifest = dataset.manifest
    checks = {
        "row count matches the generator": result["rows"] == manifest["rows"],
        "per-chromosome counts match": result["per_chrom"] == {k: v for k, v in manifest["per_chrom"].items() if v},
        "high-quality count matches": result["high_quality"] == manifest["high_quality"],
        "partitions cover every byte once": result["bytes"] == manifest["bytes"],
    }
    return DemoReport(
        dataset,
        result,
        n_workers,
        result["partitions"],
        seconds,
        generated if generated > 1 else 0.0,
        checks,
        telemetry,
        plots,
        plan.explain() if plan else "",
    )


def _store(settings: Settings) -> Any:
    from xtremehub.optimizer import TelemetryStore

    (settings.home / "optimizer").mkdir(parents=True, exist_ok=True)
    return TelemetryStore(settings.home / "optimizer" / "telemetry.sqlite")


def _plan(fexec: FunctionExecutor, settings: Settings, size: int) -> Any:
    """The optimizer's plan for the map (learnt from earlier demo runs kept under the data home)."""
    from xtremehub.optimizer import Planner, measure_backend

    with _store(settings) as store:
        planner = Planner(store, profile=measure_backend(fexec), min_slice_bytes=1 << 20)
        return planner.plan(count_variants, size, workers=fexec.backend.workers, fixed_workers=True)


def _learn(settings: Settings, fexec: FunctionExecutor, known: set[str], size: int, parts: int) -> None:
    """Keep the map's telemetry (its job is the first new one) for the next run's plan."""
    from xtremehub.optimizer.planner import function_name

    rows = [r for r in fexec.job_summary().rows if r.job_id not in known]
    if rows:
        job = min(r.job_id for r in rows)
        step = -(-size // parts)
        with _store(settings) as store:
            store.add([r for r in rows if r.job_id == job], function=function_name(count_variants),
                      input_bytes=[min(step, size - i * step) for i in range(parts)])  # fmt: skip
