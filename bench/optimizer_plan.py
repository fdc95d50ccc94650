"""Resource optimizer: auto plan vs defaults vs grid-search optimum on real jobs; forecast vs reactive scaling.

Part 1, real jobs on the local backend (``--backend dask``: a Dask LocalCluster of 1 or 2
single-threaded worker processes; 2 workers max), in one run:

- ``csv``: the demo's per-chromosome variant count (``count_variants``) over a generated CSV,
  sliced with ``obj_chunk_number``;
- ``fastq``: the demo's read statistics (``read_stats``) over a generated single-member
  FASTQ.gz, sliced by the FASTQ.gz connector (``partition_reads_batches``).

For each job the cost model is learnt from five calibration maps (2, 4, 8, 16 and 32 slices on 2
workers, after a warm-up map that is not recorded, as the timed runs have), the backend's
overheads are measured with no-op maps, and the planner (objective: time) chooses slices and
workers (1 or 2). Then, interleaved over ``--rounds`` rounds (in a new seeded order each round),
the bench times the auto plan, the planner's first-run default (2 slices per worker), the
executor's default (one slice: the object as a whole) and every grid point (slices x workers).
Worker-seconds = workers x wall (the pool is held for the whole map). The
same configuration measured under several labels (the auto plan is often also a grid point) is
also ranked on all its samples pooled ("All samples of a configuration pooled").

Part 2, the simulator: generated workloads (4 weeks of hourly windows, 3 seeds), forecasters
fitted on 3 weeks and tested on the 4th (MAE per horizon), then static, reactive and
forecast-driven scaling replayed through the simulator: 30 s tasks, hourly windows, the per-task
overhead measured in part 1, a start-up of max(measured, 60 s) (a cold cloud worker), SLO 300 s.

Run:  .venv/bin/python bench/optimizer_plan.py [--rounds 3] [--csv-mb 24] [--fastq-mb 24] [--plots docs/images]
      [--backend local|dask]
      (--quick: 1 round, 16 MB inputs, a smaller grid)
Target (issue 20): auto plan within 10 % of the grid-search optimum, better than the default.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xtremehub import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
from xtremehub.demo.fastq_job import read_stats
from xtremehub.demo.job import count_variants
from xtremehub.demo.sample_data import ensure_sample_dataset, ensure_sample_fastq
from xtremehub.optimizer import (
    BackendProfile,
    ForecastPolicy,
    LaggedRegression,
    Planner,
    ReactivePolicy,
    ScalingRule,
    SeasonalNaive,
    SimConfig,
    SimResult,
    StaticPolicy,
    TelemetryStore,
    WorkloadSpec,
    generate_workload,
    mae,
    measure_backend,
    simulate,
)
from xtremehub.optimizer.planner import completion_time, function_name

WORKERS = 2
CALIBRATION = (2, 4, 8, 16, 32)
GRID = (1, 2, 3, 4, 6, 8, 12, 16, 32)
QUICK_GRID = (1, 2, 4, 8, 16)
TRAIN = 24 * 21


@dataclass
class Job:
    name: str
    function: Callable[..., Any]
    total_bytes: int
    run: Callable[[FunctionExecutor, int], tuple[float, list[Any], list[int]]]
    times: dict[tuple[str, int, int], list[float]] = field(default_factory=dict)


def csv_job(settings: Settings, size_mb: int) -> Job:
    ds = ensure_sample_dataset(settings.home, size_mb=size_mb)
    total = int(ds.manifest["bytes"])

    def run(fexec: FunctionExecutor, slices: int) -> tuple[float, list[Any], list[int]]:
        t0 = time.perf_counter()
        fs = fexec.map(count_variants, ds.url, obj_chunk_number=slices)
        result = fexec.get_result(fs)
        wall = time.perf_counter() - t0
        assert sum(r["rows"] for r in result) == ds.manifest["rows"]
        step = -(-total // slices)
        sizes = [min(step, total - i * step) for i in range(len(fs))]
        return wall, list(fs), sizes

    return Job("csv", count_variants, total, run)


def fastq_job(settings: Settings, size_mb: int) -> Job:
    ds = ensure_sample_fastq(settings.home, size_mb=size_mb)
    with FunctionExecutor(max_workers=WORKERS, settings=settings, progress=False) as fexec:
        co = CloudObject.from_path(FASTQGZip, ds.url, settings=settings).preprocess(fexec)
    total = int(ds.manifest["bytes"])  # uncompressed: what the calls decompress and scan
    parts: dict[int, list[Any]] = {}

    def run(fexec: FunctionExecutor, slices: int) -> tuple[float, list[Any], list[int]]:
        if slices not in parts:
            parts[slices] = co.partition(partition_reads_batches, num_batches=slices)
        t0 = time.perf_counter()
        fs = fexec.map(read_stats, parts[slices])
        result = fexec.get_result(fs)
        wall = time.perf_counter() - t0
        assert sum(r["reads"] for r in result) == ds.manifest["reads"]
        reads = ds.manifest["reads"]  # the bytes each slice owns (its reads' share; slices snap to checkpoints)
        return wall, list(fs), [round(total * p.count / reads) for p in parts[slices]]

    return Job("fastq", read_stats, total, run)


def learn(planner: Planner, job: Job, fexec: FunctionExecutor) -> None:
    name = function_name(job.function)
    before = len(planner.store.observations(name))
    expected = before
    job.run(fexec, WORKERS)  # warm the workers (imports, caches) as before the timed runs; not recorded
    for slices in CALIBRATION:
        _, fs, sizes = job.run(fexec, slices)
        planner.learn(name, fs, sizes)
        expected += len(fs)
    deadline = time.monotonic() + 30
    while len(planner.store.observations(name)) < expected and time.monotonic() < deadline:
        time.sleep(0.02)


def timed(job: Job, fexec: FunctionExecutor, label: str, slices: int, workers: int) -> None:
    wall, _, _ = job.run(fexec, slices)
    job.times.setdefault((label, slices, workers), []).append(wall)


def bench_jobs(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    grid = QUICK_GRID if args.quick else GRID
    jobs = [csv_job(settings, args.csv_mb), fastq_job(settings, args.fastq_mb)]
    out: dict[str, Any] = {}

    def executor(workers: int) -> FunctionExecutor:
        return FunctionExecutor(args.backend, max_workers=workers, settings=settings, progress=False)

    for job in jobs:
        with executor(WORKERS) as fexec:
            profile = measure_backend(fexec)
            planner = Planner(TelemetryStore(), profile=profile, max_slices=max(grid), min_slice_bytes=64 * 1024)
            learn(planner, job, fexec)
        name = function_name(job.function)
        plan = planner.plan(name, job.total_bytes, workers=WORKERS)
        default = Planner(TelemetryStore(), profile=profile).plan(name, job.total_bytes, workers=WORKERS)
        print(f"\n## {job.name}: {job.total_bytes / 1e6:.0f} MB on {args.backend}\n")
        print(plan.explain())
        for rnd in range(args.rounds):
            for w in (1, 2):
                runs = [("grid", n) for n in grid]
                runs += [("auto", plan.slices)] if w == plan.workers else []
                runs += [("default", default.slices)] if w == default.workers else []
                runs += [("executor default", 1)] if w == WORKERS else []
                # a new order each round (seeded): no configuration always runs first after the warm-up
                random.Random(rnd * 10 + w).shuffle(runs)
                with executor(w) as fexec:
                    job.run(fexec, w)  # start the workers, warm imports and caches
                    for label, n in runs:
                        timed(job, fexec, label, n, w)
        out[job.name] = report(job, plan, planner)
    return out


def _med(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), (max(values) - min(values))


def report(job: Job, plan: Any, planner: Planner) -> dict[str, Any]:
    rows = []
    for (label, n, w), ts in sorted(job.times.items(), key=lambda kv: (kv[0][0] != "auto", kv[0])):
        med, spread = _med(ts)
        rows.append(
            {"label": label, "slices": n, "workers": w, "wall": med, "spread": spread, "ws": w * med, "samples": ts}
        )
    grid = [r for r in rows if r["label"] == "grid"]
    best = min(grid, key=lambda r: r["wall"])
    best_ws = min(grid, key=lambda r: r["ws"])
    auto = next(r for r in rows if r["label"] == "auto")
    print(f"\n| {job.name} | slices x workers | wall (median, spread) | worker-s | vs grid best |")
    print("|---|---:|---:|---:|---:|")
    shown = [auto, *(r for r in rows if r["label"] in ("default", "executor default")), best]
    shown += [best_ws] if best_ws is not best else []
    for r in shown:
        names = {id(best_ws): "grid best (worker-s)", id(best): "grid best (time)"}
        if best is best_ws:
            names[id(best)] = "grid best (time and worker-s)"
        tag = names.get(id(r), r["label"])
        print(
            f"| {tag} | {r['slices']} x {r['workers']} | {r['wall']:.2f} s (±{r['spread'] / 2:.2f}) | "
            f"{r['ws']:.2f} | {r['wall'] / best['wall']:.2f}x |"
        )
    # The same slices x workers measured under several labels (auto, default, grid) is one configuration:
    # the median of all its samples ranks configurations with less noise than one row's 3 samples.
    pooled: dict[tuple[int, int], list[float]] = {}
    for (_, n, w), ts in job.times.items():
        pooled.setdefault((n, w), []).extend(ts)
    configs = {k: statistics.median(v) for k, v in pooled.items()}
    key = (auto["slices"], auto["workers"])
    grid_keys = {(r["slices"], r["workers"]) for r in grid}
    best_key = min(grid_keys, key=configs.__getitem__)
    print(
        f"\nAll samples of a configuration pooled: auto {key[0]} x {key[1]} {configs[key]:.2f} s "
        f"({len(pooled[key])} samples), grid best {best_key[0]} x {best_key[1]} {configs[best_key]:.2f} s "
        f"({len(pooled[best_key])} samples): {configs[key] / configs[best_key]:.2f}x"
    )
    model = planner.model_for(function_name(job.function))
    predicted = {}
    if model is not None:
        for r in grid:
            if r["workers"] == plan.workers:
                n, w = np.array([float(r["slices"])]), np.array([float(r["workers"])])
                predicted[r["slices"]] = float(completion_time(model, plan.profile, job.total_bytes, n, w)[0])
    return {
        "rows": rows,
        "plan": plan.to_dict(),
        "best": best,
        "auto": auto,
        "predicted": predicted,
        "pooled": {f"{n}x{w}": ts for (n, w), ts in pooled.items()},
        "pooled_ratio": configs[key] / configs[best_key],
    }


def bench_simulator(task_s: float, profile: BackendProfile) -> dict[str, Any]:
    print("\n## Forecasts: MAE per horizon on the 4th week (3 seeds)\n")
    print("| seed | horizon | seasonal naive | linear | SVR | linear vs naive |")
    print("|---|---:|---:|---:|---:|---:|")
    sims: list[SimResult] = []
    table: dict[str, list[tuple[float, float, int]]] = {}
    for seed in (0, 1, 2):
        w = generate_workload(WorkloadSpec(seed=seed, base=1000))
        y, c = w.counts.astype(float), w.counts[:TRAIN].astype(float)
        lin, svr = LaggedRegression("linear").fit(c), LaggedRegression("svr").fit(c)
        for h in (1, 2, 3):
            e = [mae(y[TRAIN:], f.backtest(y, TRAIN, h)) for f in (SeasonalNaive(24), lin, svr)]
            print(f"| {seed} | {h} | {e[0]:.1f} | {e[1]:.1f} | {e[2]:.1f} | {e[1] / e[0]:.2f}x |")
        # tasks of task_s seconds, hourly windows: ~1000 tasks/h need ~10-20 workers
        rule = ScalingRule(task_seconds=task_s, window_seconds=3600, utilisation=0.85, max_workers=64)
        cfg = SimConfig(task_s, 3600, per_task_s=profile.per_task_s, startup_s=max(profile.startup_s, 60.0),
                        slo_s=300, seed=seed)  # fmt: skip
        policies = [
            StaticPolicy(rule, rule.workers_for(float(np.percentile(c, 95)))),
            ReactivePolicy(rule),
            ForecastPolicy(rule, lin),
            ForecastPolicy(rule, svr),
            ReactivePolicy(rule, c),
            ForecastPolicy(rule, lin, c),
        ]
        for p in policies:
            r = simulate(w.counts, p, cfg, start=TRAIN)
            sims.append(r)
            label = "static (p95 of weeks 1-3)" if isinstance(p, StaticPolicy) else p.name.split(" (x")[0]
            table.setdefault(label + (" +headroom" if " (x" in p.name else ""), []).append(
                (r.worker_seconds / 3600, r.slo_miss_rate, r.slo_misses)
            )
    print(f"\n## Simulator: 4th week, task {task_s:.0f} s, SLO 300 s (median over 3 seeds)\n")
    print("| policy | worker-hours | SLO misses | miss rate | vs reactive: worker-h | vs reactive: misses |")
    print("|---|---:|---:|---:|---:|---:|")
    ref = table["reactive"]
    for name, vals in table.items():
        wh = statistics.median(v[0] for v in vals)
        miss = statistics.median(v[2] for v in vals)
        rate = statistics.median(v[1] for v in vals)
        print(
            f"| {name} | {wh:.0f} | {miss:.0f} | {rate:.2%} | {wh / statistics.median(v[0] for v in ref):.2f}x | "
            f"{miss / statistics.median(v[2] for v in ref):.2f}x |"
        )
    return {"table": dict(table)}


def plots(results: dict[str, Any], dst: Path) -> None:
    from xtremehub.optimizer.plots import new_figure, plot_forecast, save

    fig = new_figure(10, 4)
    for i, (job, res) in enumerate(results.items()):
        ax = fig.add_subplot(1, len(results), i + 1)
        for w in (1, 2):
            pts = sorted((r["slices"], r["wall"]) for r in res["rows"] if r["label"] == "grid" and r["workers"] == w)
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=f"measured, {w} worker{'s' * (w > 1)}")
        if res["predicted"]:
            pts = sorted(res["predicted"].items())
            ax.plot(*zip(*pts, strict=True), ls="--", color="grey", label="predicted (plan's workers)")
        a, b = res["auto"], res["best"]
        ax.scatter([a["slices"]], [a["wall"]], marker="*", s=160, color="red", zorder=5, label="auto plan")
        ax.scatter([b["slices"]], [b["wall"]], marker="s", s=60, facecolors="none", edgecolors="black", zorder=5,
                   label="grid-search best")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("slices")
        ax.set_ylabel("completion time (s)")
        ax.set_title(job)
        ax.legend(fontsize=7)
    print(save(fig, dst / "optimizer_plan.png"))
    w = generate_workload(WorkloadSpec(seed=0, base=1000))
    y, c = w.counts.astype(float), w.counts[:TRAIN].astype(float)
    lin, svr = LaggedRegression("linear").fit(c), LaggedRegression("svr").fit(c)
    rule = ScalingRule(task_seconds=30, window_seconds=3600, utilisation=0.85, max_workers=64)
    cfg = SimConfig(30, 3600, startup_s=60, slo_s=300)
    workers = {p.name: simulate(w.counts, p, cfg, start=TRAIN).workers for p in
               (ReactivePolicy(rule), ForecastPolicy(rule, lin))}  # fmt: skip
    print(
        plot_forecast(
            y[TRAIN:],
            {
                "seasonal naive (h=1)": SeasonalNaive(24).backtest(y, TRAIN, 1),
                "linear (h=1)": lin.backtest(y, TRAIN, 1),
                "SVR (h=1)": svr.backtest(y, TRAIN, 1),
                "linear (h=3)": lin.backtest(y, TRAIN, 3),
            },
            dst / "optimizer_forecast.png",
            start=TRAIN,
            title="generated load (seed 0), week 4: forecasts vs actual; workers of two policies",
            workers=workers,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--csv-mb", type=int, default=24)
    parser.add_argument("--fastq-mb", type=int, default=24)
    parser.add_argument("--plots", type=Path, default=None, help="write optimizer_plan.png / optimizer_forecast.png")
    parser.add_argument("--json", type=Path, default=Path(tempfile.gettempdir()) / "optimizer_plan.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=("local", "dask"), default="local", help="where part 1 runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.csv_mb, args.fastq_mb = 1, 16, 16
    logging.basicConfig(level=logging.WARNING)
    home = Path(tempfile.gettempdir()) / "xhub-bench-optimizer"
    settings = Settings.load(config_file=None, home=str(home))
    t0 = time.perf_counter()
    results = bench_jobs(args, settings)
    fastq = results["fastq"]
    profile = BackendProfile(**fastq["plan"]["profile"])
    sim = bench_simulator(30.0, profile)
    if args.plots:
        plots(results, args.plots)
    args.json.write_text(json.dumps({"jobs": results, "sim": sim}, indent=1, default=str))
    print(f"\n(total {time.perf_counter() - t0:.0f} s; raw figures in {args.json})")


if __name__ == "__main__":
    main()
