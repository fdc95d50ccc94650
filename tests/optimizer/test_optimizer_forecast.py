"""Workload generator, forecasters (vs the seasonal-naive baseline), scaling policies, simulator."""

from __future__ import annotations

import numpy as np
import pytest

from xtremehub.errors import ConfigError, OptimizerError
from xtremehub.optimizer.forecast import Forecaster, LaggedRegression, SeasonalNaive, mae
from xtremehub.optimizer.simulator import (
    ForecastPolicy,
    ReactivePolicy,
    ScalingRule,
    SimConfig,
    StaticPolicy,
    simulate,
)
from xtremehub.optimizer.workload import WorkloadSpec, generate_workload

TRAIN = 24 * 21


def test_workload_has_its_components() -> None:
    spec = WorkloadSpec(seed=5, burst_probability=0.02, change_points=1)
    w = generate_workload(spec)
    assert np.array_equal(w.counts, generate_workload(spec).counts)  # deterministic for a seed
    assert w.counts.dtype == np.int64
    assert len(w.counts) == spec.windows
    calm = generate_workload(WorkloadSpec(seed=5, burst_probability=0, change_points=0)).rate
    y = calm - np.convolve(calm, np.ones(24) / 24, mode="same")  # remove the slow level
    lag24 = np.corrcoef(y[24:-24], y[48:])[0, 1]
    assert lag24 > 0.8  # daily seasonality
    assert w.bursts
    for b in w.bursts[:3]:
        assert w.rate[b] > w.rate[b - 1] + 0.5 * spec.base
    assert len(w.change_points) == 1
    assert abs(w.counts.mean() - w.rate.mean()) < 0.05 * w.rate.mean()  # Poisson around the rate
    flat = generate_workload(WorkloadSpec(trend=0.5, daily_amplitude=0, weekly_amplitude=0, burst_probability=0,
                                          change_points=0, ar_sigma=0.0, seed=1))  # fmt: skip
    assert flat.rate[-1] == pytest.approx(flat.rate[0] + 0.5 * (len(flat.rate) - 1))
    with pytest.raises(ConfigError, match="ar_phi"):
        generate_workload(WorkloadSpec(ar_phi=1.0))


@pytest.mark.parametrize("kind", ["linear", "svr"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forecasters_beat_seasonal_naive_per_horizon(kind: str, seed: int) -> None:
    y = generate_workload(WorkloadSpec(seed=seed)).counts.astype(float)
    model = LaggedRegression(kind).fit(y[:TRAIN])  # type: ignore[arg-type]
    naive = SeasonalNaive(24)
    for h in (1, 2, 3):
        base = naive.backtest(y, TRAIN, h)
        pred = model.backtest(y, TRAIN, h)
        # a forecaster that silently returned the baseline (or a copy of it) fails here
        assert not np.allclose(pred, base)
        assert mae(y[TRAIN:], pred) < 0.9 * mae(y[TRAIN:], base), f"{kind} h={h}"


def test_forecaster_errors_and_single_forecast() -> None:
    y = generate_workload(WorkloadSpec(seed=0)).counts.astype(float)
    with pytest.raises(OptimizerError, match="not fitted"):
        LaggedRegression().backtest(y, TRAIN, 1)
    model = LaggedRegression().fit(y[:TRAIN])
    with pytest.raises(ConfigError, match="horizon"):
        model.backtest(y, TRAIN, 4)
    with pytest.raises(OptimizerError, match="history"):
        model.backtest(y, 10, 1)
    with pytest.raises(OptimizerError, match="windows to fit"):
        LaggedRegression().fit(y[:100])
    one = model.forecast(y[:TRAIN], 1)
    assert one == pytest.approx(model.backtest(y, TRAIN, 1)[0])


class _Oracle(Forecaster):
    """Knows the future (tests the policy and simulator mechanics, not forecasting)."""

    name = "oracle"

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth

    def fit(self, y: np.ndarray) -> _Oracle:
        return self

    def backtest(self, y: np.ndarray, start: int, horizon: int) -> np.ndarray:
        return np.append(self.truth, 0.0)[start : len(y)].astype(float)


def test_static_policy_accounting_and_no_misses_when_ample() -> None:
    counts = np.full(10, 60)
    rule = ScalingRule(task_seconds=10, window_seconds=100, max_workers=50)
    r = simulate(counts, StaticPolicy(rule, 20), SimConfig(task_seconds=10, window_seconds=100, slo_s=30, jitter=0))
    assert r.tasks == 600
    assert r.worker_seconds == pytest.approx(20 * max(1000, r.completion))  # billed until the last task ends
    assert r.completion < 1000 + 10.001
    assert r.slo_misses == 0
    assert r.mean_latency == pytest.approx(10)
    short = simulate(counts, StaticPolicy(rule, 3), SimConfig(task_seconds=10, window_seconds=100, slo_s=30))
    assert short.slo_misses > 300  # 6 workers' worth of work on 3
    assert short.completion > 1000


def test_forecasting_pre_scales_before_a_step_and_reactive_lags() -> None:
    counts = np.array([20] * 30 + [200] * 10 + [20] * 10)
    rule = ScalingRule(task_seconds=10, window_seconds=100, utilisation=0.9, max_workers=40)
    cfg = SimConfig(task_seconds=10, window_seconds=100, startup_s=20, slo_s=60, jitter=0.05)
    reactive = simulate(counts, ReactivePolicy(rule), cfg, start=1)
    ahead = simulate(counts, ForecastPolicy(rule, _Oracle(counts), reactive_floor=False), cfg, start=1)
    assert ahead.slo_misses < reactive.slo_misses / 5
    assert ahead.workers[28] > reactive.workers[28]  # started before the step
    assert reactive.workers[30] > ahead.workers[30] - 1  # reactive catches up one window late
    assert abs(ahead.worker_seconds - reactive.worker_seconds) < 0.2 * reactive.worker_seconds


def test_policies_on_a_generated_workload() -> None:
    w = generate_workload(WorkloadSpec(seed=1, base=300, windows=24 * 26))
    c = w.counts[:TRAIN].astype(float)
    rule = ScalingRule(task_seconds=30, window_seconds=3600, utilisation=0.85)
    cfg = SimConfig(task_seconds=30, window_seconds=3600, startup_s=120, slo_s=300)
    policy = ForecastPolicy(rule, LaggedRegression("linear").fit(c), c)
    assert policy.factor >= 1.0
    res = simulate(w.counts, policy, cfg, start=TRAIN)
    assert res.tasks == int(w.counts[TRAIN:].sum())
    assert len(res.workers) == len(w.counts) - TRAIN
    assert max(res.workers) > min(res.workers)  # it scales
    with pytest.raises(ConfigError):
        ScalingRule(task_seconds=1, window_seconds=1, utilisation=0)
