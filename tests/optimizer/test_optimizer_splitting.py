"""A fast scan with a fixed per-call cost and calls of unequal duration: the planner splits enough.

The FASTQ.gz scan of ``bench/optimizer_plan.py`` (~170 MB at ~230 MB/s per worker, ~12 ms fixed
cost per call) was planned as one slice per worker. On two workers that is right only if both
calls end together; calls of equal size do not (a busy core, slices cut at checkpoints), and the
slowest call of the last wave sets the completion time. The ground truth here is a simulation
of the executor's dynamic scheduling (each call to the first free worker) with the process that
generated the telemetry.
"""

from __future__ import annotations

import heapq
from dataclasses import replace

import numpy as np
import pytest
from optimizer_synthetic import lognormal_factor, synthetic_calls

from xtremehub.optimizer import BackendProfile, Planner, TelemetryStore, fit_cost_model
from xtremehub.optimizer.planner import duration_spread

TOTAL = 170e6
FIXED, PER_BYTE, PER_TASK = 0.012, 4.4e-9, 0.0005
CALIBRATION = (2, 4, 8, 16, 32)  # the bench's calibration maps
MAX_SLICES = 48


def _true_makespan(n: int, workers: int, cv: float, reps: int = 150) -> float:
    """Mean completion time of ``n`` equal slices on ``workers`` under dynamic scheduling."""
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(reps):
        free = [0.0] * workers
        for d in (FIXED + PER_BYTE * TOTAL / n) * lognormal_factor(rng, cv, n) + PER_TASK:
            heapq.heappush(free, heapq.heappop(free) + float(d))
        total += max(free)
    return total / reps


def _planner(workers: int, cv: float) -> Planner:
    sizes = np.concatenate([np.full(k, TOTAL / k) for k in CALIBRATION * 2])
    rows, sizes_int = synthetic_calls(
        len(sizes), intercept=FIXED, per_byte=PER_BYTE, noise=0.0, rel_noise=cv, sizes=sizes, seed=1
    )
    store = TelemetryStore()
    store.add(rows, function="fast.scan", input_bytes=sizes_int)
    return Planner(store, profile=BackendProfile("sim", workers, 0.0, PER_TASK), max_slices=MAX_SLICES)


@pytest.mark.parametrize(("workers", "cv"), [(2, 0.1), (2, 0.6), (8, 0.6)])
def test_fast_scan_plan_is_near_the_simulated_optimum(workers: int, cv: float) -> None:
    planner = _planner(workers, cv)
    plan = planner.plan("fast.scan", int(TOTAL), workers=workers, fixed_workers=True)
    assert plan.source == "model"
    truth = {n: _true_makespan(n, workers, cv) for n in range(1, MAX_SLICES + 1)}
    best = min(truth.values())
    assert truth[plan.slices] <= 1.05 * best, (plan.explain(), min(truth, key=truth.__getitem__))
    model = planner.model_for("fast.scan")
    assert model is not None
    assert model.duration.intercept == pytest.approx(FIXED, abs=0.01)  # the fixed per-call cost is seen
    spread = duration_spread(model)
    assert 0.4 * cv < spread < 1.2 * cv  # within-map spread; a heavy-tailed log-normal reads low at large CV
    assert f"spread of call durations {spread:.0%}" in plan.explain()
    if cv >= 0.5:
        # the failure mode: one slice per worker (what a plan blind to the spread picks) is >10 % slower
        assert truth[workers] > 1.10 * best
        assert plan.slices >= 3 * workers


def test_one_slice_per_worker_when_calls_are_even() -> None:
    # no spread, a fixed cost per call: more waves only add fixed costs
    planner = _planner(2, 0.0)
    plan = planner.plan("fast.scan", int(TOTAL), workers=2, fixed_workers=True)
    assert (plan.slices, plan.workers) == (2, 2)
    assert plan.predicted_time == pytest.approx(FIXED + PER_BYTE * TOTAL / 2 + PER_TASK, rel=0.02)


def _runs_with_shifts(within_cv: float, between_cv: float, slow_worker: float = 1.0) -> TelemetryStore:
    """The calibration maps as separate jobs: calls of a map spread by ``within_cv``; each map's
    level shifted by a mean-one factor of CV ``between_cv`` (a busier machine on that run); the
    calls of worker ``local-1`` take ``slow_worker`` times as long (a core it shares)."""
    rng = np.random.default_rng(5)
    store = TelemetryStore()
    for i, k in enumerate(CALIBRATION * 2):
        level = float(lognormal_factor(rng, between_cv, 1)[0])
        rows, sizes = synthetic_calls(
            k, intercept=FIXED * level, per_byte=PER_BYTE * level, noise=0.0, rel_noise=within_cv,
            sizes=np.full(k, TOTAL / k), seed=10 + i, job=f"cal-M{i:03d}",
        )  # fmt: skip
        rows = [replace(r, end=r.start + slow_worker * (r.end - r.start)) if r.worker == "local-1" else r for r in rows]
        store.add(rows, function="fast.scan", input_bytes=sizes)
    return store


def test_spread_is_measured_within_maps_not_between_runs() -> None:
    store = _runs_with_shifts(within_cv=0.1, between_cv=0.6)
    obs = store.observations("fast.scan")
    assert len(set(obs.job)) == 2 * len(CALIBRATION)  # the job of each call is kept
    planner = Planner(store, profile=BackendProfile("sim", 2, 0.0, PER_TASK), max_slices=MAX_SLICES)
    model = planner.model_for("fast.scan")
    assert model is not None
    assert model.spread_jobs == 2 * (len(CALIBRATION) - 1)  # 2-slice maps: one call per worker
    assert model.duration_spread == pytest.approx(0.1, abs=0.03)  # the maps' own spread
    assert model.duration.heldout_mape > 1.4 * model.duration_spread  # it also holds the run-to-run shifts
    assert duration_spread(model) == model.duration_spread
    plan = planner.plan("fast.scan", int(TOTAL), workers=2, fixed_workers=True)
    assert "spread of call durations 10% within a map" in plan.explain()
    truth = {n: _true_makespan(n, 2, 0.1) for n in range(1, MAX_SLICES + 1)}
    assert truth[plan.slices] <= 1.05 * min(truth.values()), plan.explain()


def test_without_job_ids_the_spread_falls_back_to_the_heldout_error() -> None:
    obs = _runs_with_shifts(0.1, 0.0).observations("fast.scan")
    model = fit_cost_model(replace(obs, job=()))
    assert model.duration_spread is None
    assert model.spread_jobs == 0
    assert duration_spread(model) == pytest.approx(model.duration.heldout_mape)
    assert "unknown" in model.explain()


def test_a_per_job_cost_adds_time_but_does_not_move_the_plan() -> None:
    planner = _planner(2, 0.1)
    plan = planner.plan("fast.scan", int(TOTAL), workers=2, fixed_workers=True)
    planner.profile = BackendProfile("sim", 2, 0.0, PER_TASK, per_job_s=0.25)
    costly = planner.plan("fast.scan", int(TOTAL), workers=2, fixed_workers=True)
    assert costly.slices == plan.slices
    assert costly.predicted_time == pytest.approx(plan.predicted_time + 0.25)
    assert "per-job overhead 250.0 ms" in costly.explain()


def test_a_worker_slow_for_the_whole_map_is_not_a_spread_that_splitting_evens_out() -> None:
    model = fit_cost_model(_runs_with_shifts(0.05, 0.0, slow_worker=1.4).observations("fast.scan"))
    assert model.duration_spread == pytest.approx(0.05, abs=0.02)  # calls of one worker in one map
    obs = _runs_with_shifts(0.05, 0.0, slow_worker=1.4).observations("fast.scan")
    mixed = fit_cost_model(replace(obs, worker=()))  # without the worker: the slow worker looks like spread
    assert mixed.duration_spread is not None
    assert mixed.duration_spread > 0.1
