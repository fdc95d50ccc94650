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

import numpy as np
import pytest
from optimizer_synthetic import lognormal_factor, synthetic_calls

from xtremehub.optimizer import BackendProfile, Planner, TelemetryStore
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
    assert 0.4 * cv < spread < 1.2 * cv  # held-out MAPE of a log-normal factor ~0.8 x its CV
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
