"""The planner picks the known optimum of synthetic cost surfaces, respects memory, is deterministic."""

from __future__ import annotations

import itertools
import math

import pytest
from optimizer_synthetic import synthetic_calls

from xtremehub.errors import ConfigError, InfeasiblePlan
from xtremehub.optimizer import BackendProfile, Objective, Planner, TelemetryStore
from xtremehub.optimizer.costmodel import MIN_RUNS

MB = 1_000_000


def _planner(*, per_task: float = 0.05, startup: float = 0.5, workers: int = 8, **kw: object) -> Planner:
    store = TelemetryStore()
    rows, sizes = synthetic_calls(200, intercept=0.2, per_byte=2e-8, rss0=80e6, rss_per_byte=1.5, noise=0.005)
    store.add(rows, function="job.scan", input_bytes=sizes)
    return Planner(store, profile=BackendProfile("sim", workers, startup, per_task), **kw)  # type: ignore[arg-type]


def _brute_force(total: int, workers: int, per_task: float, startup: float, objective: Objective, n_max: int):  # type: ignore[no-untyped-def]
    """The true optimum of the known surface (the synthetic line's parameters, no model)."""
    best = None
    for n, w in itertools.product(range(1, n_max + 1), range(1, workers + 1)):
        t = startup + math.ceil(n / w) * (0.2 + 2e-8 * total / n + per_task)
        score = objective.time_weight * t + objective.cost_weight * w * t
        if best is None or score < best[0] - 1e-6:
            best = (score, n, w, t)
    return best


@pytest.mark.parametrize("objective", ["time", "cost", "mix:0.3"])
@pytest.mark.parametrize("total", [50 * MB, 2_000 * MB])
def test_picks_the_known_optimum(objective: str, total: int) -> None:
    planner = _planner(objective=objective)
    plan = planner.plan("job.scan", total)
    assert plan.source == "model"
    _, _n, w, t = _brute_force(total, 8, 0.05, 0.5, Objective.parse(objective), planner.max_slices)
    # the model was fitted on noisy calls: its optimum is the true one or scores within 2 % of it
    true_t = 0.5 + math.ceil(plan.slices / plan.workers) * (0.2 + 2e-8 * total / plan.slices + 0.05)
    obj = Objective.parse(objective)
    assert obj.time_weight * true_t + obj.cost_weight * plan.workers * true_t <= 1.02 * (
        obj.time_weight * t + obj.cost_weight * w * t
    )
    assert plan.predicted_time == pytest.approx(true_t, rel=0.03)


def test_time_optimum_on_a_surface_with_a_known_answer() -> None:
    # time = 0.5 + ceil(n/w) * (0.25 + 40 s / n) for 2 GB: with w = 8, k waves of 8 slices take
    # 0.5 + 0.25 k + 5 s, so one wave on every worker (8 x 8) is the optimum
    plan = _planner().plan("job.scan", 2_000 * MB)
    assert (plan.slices, plan.workers) == (8, 8)
    assert "minimises time" in plan.explain()
    # with a per-worker memory limit that forces slices of <= ~90 MB, 24 slices (3 full waves) win
    limited = _planner(memory_limit=int(80e6 + 1.5 * 90e6) + 8 * 2**20).plan("job.scan", 2_000 * MB)
    assert limited.workers == 8
    assert limited.slices % 8 == 0
    assert limited.slices >= 2_000 / 90


def test_cost_objective_uses_one_worker() -> None:
    plan = _planner(objective="cost").plan("job.scan", 200 * MB)
    assert plan.workers == 1
    assert plan.slices == 1


def test_respects_the_memory_limit() -> None:
    free = _planner().plan("job.scan", 2_000 * MB)
    limit = 400 * 2**20
    plan = _planner(memory_limit=limit).plan("job.scan", 2_000 * MB)
    assert plan.predicted_peak_rss <= limit
    assert plan.slices > free.slices  # smaller slices to fit
    # the memory bound of every candidate it considered best is within the limit
    assert all(c.peak_rss <= limit for c in plan.alternatives)
    assert 80e6 + 1.5 * plan.slice_bytes <= limit  # the true peak fits too


def test_memory_limit_below_the_smallest_slice_is_a_clear_error() -> None:
    with pytest.raises(InfeasiblePlan, match=r"memory limit 50 MiB per worker is below the predicted peak"):
        _planner(memory_limit=50 * 2**20).plan("job.scan", 2_000 * MB)


def test_deterministic() -> None:
    plans = [_planner(objective="mix:0.5").plan("job.scan", 700 * MB) for _ in range(3)]
    assert len({(p.slices, p.workers, p.predicted_time) for p in plans}) == 1
    assert plans[0].explain() == plans[1].explain()


def test_unseen_function_gets_the_documented_default() -> None:
    planner = _planner(workers=3)
    plan = planner.plan("never.seen", 500 * MB)
    assert (plan.source, plan.workers, plan.slices) == ("default", 3, 6)
    assert "default plan" in plan.explain()
    tiny = planner.plan("never.seen", 100 * 1024)  # no slice below min_slice_bytes (64 KiB)
    assert tiny.slices == 1
    rows, sizes = synthetic_calls(MIN_RUNS - 1)
    planner.store.add(rows, function="few.runs", input_bytes=sizes)
    assert planner.plan("few.runs", 500 * MB).source == "default"


def test_fixed_workers_and_bad_arguments() -> None:
    plan = _planner(objective="cost").plan("job.scan", 200 * MB, workers=4, fixed_workers=True)
    assert plan.workers == 4
    with pytest.raises(ConfigError, match="objective"):
        Planner(objective="fast")
    with pytest.raises(ConfigError, match="memory_limit"):
        Planner(memory_limit=0)
