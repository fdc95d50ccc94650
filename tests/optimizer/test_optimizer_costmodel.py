"""Cost models recover known lines from synthetic telemetry; their intervals cover at the stated rate."""

from __future__ import annotations

import numpy as np
import pytest
from optimizer_synthetic import synthetic_calls

from xtremehub.errors import OptimizerError
from xtremehub.optimizer import TelemetryStore, fit_cost_model
from xtremehub.optimizer.costmodel import MIN_RUNS, fit_line


def _model(n: int, seed: int = 0, **kw: float):  # type: ignore[no-untyped-def]
    store = TelemetryStore()
    rows, sizes = synthetic_calls(n, seed=seed, **kw)
    store.add(rows, function="f", input_bytes=sizes)
    return fit_cost_model(store.observations("f"), coverage=0.9)


def test_recovers_known_parameters() -> None:
    m = _model(300, intercept=0.3, per_byte=2.5e-8, rss0=90e6, rss_per_byte=1.25)
    assert m.duration.intercept == pytest.approx(0.3, abs=0.01)
    assert m.duration.coef[0] == pytest.approx(2.5e-8, rel=0.01)
    assert m.peak_rss.intercept == pytest.approx(90e6, rel=0.01)
    assert m.peak_rss.coef[0] == pytest.approx(1.25, rel=0.01)
    assert m.cpu.coef[0] == pytest.approx(0.9 * 2.5e-8, rel=0.02)
    assert m.duration.heldout_mae == pytest.approx(0.02 * np.sqrt(2 / np.pi), rel=0.35)  # MAE of N(0, 0.02)
    assert "s/MB" in m.explain()
    assert "held-out MAE" in m.explain()


def test_robust_fit_ignores_a_few_stragglers() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(1e6, 1e8, 200)
    y = 0.1 + 1e-8 * x + rng.normal(0, 0.005, 200)
    y[:10] += 5.0  # ten calls hit a cold cache
    robust = fit_line(x, y, robust=True)
    plain = fit_line(x, y, robust=False)
    assert robust.intercept == pytest.approx(0.1, abs=0.01)
    assert abs(plain.intercept - 0.1) > 0.1  # least squares is pulled up by the stragglers


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_intervals_cover_at_the_stated_rate(coverage: float) -> None:
    hits = []
    for seed in range(25):
        rng = np.random.default_rng(seed)
        x = rng.uniform(1e6, 1e8, 60)
        fit = fit_line(x, 0.2 + 3e-8 * x + rng.normal(0, 0.05, 60), coverage=coverage, seed=seed)
        xt = rng.uniform(1e6, 1e8, 200)
        yt = 0.2 + 3e-8 * xt + rng.normal(0, 0.05, 200)
        preds = [fit.predict(v) for v in xt]
        hits.append(np.mean([p.low <= y <= p.high for p, y in zip(preds, yt, strict=True)]))
    # split conformal guarantees >= coverage on average; it should not be wildly conservative either
    assert coverage - 0.02 <= float(np.mean(hits)) <= coverage + 0.08


def test_same_size_calls_give_a_line_through_the_origin() -> None:
    fit = fit_line(np.full(10, 4e6), np.full(10, 2.0))
    assert fit.through_origin
    assert fit.intercept == 0.0
    assert fit.predict(8e6).mean == pytest.approx(4.0)


def test_sizes_that_barely_differ_fit_without_a_solver_failure() -> None:
    """Six demo runs' peak RSS: inputs 2.5e6 bytes apart by 2 (CI, stop 28: L-BFGS-B gave up)."""
    a, b = 2535318.2370924, 2535320.54649348
    x = np.array([a, b, b, b, b, a])
    y = x - a + 36708.39199529  # one extra byte in, one extra byte of RSS
    fit = fit_line(x, y, target="peak_rss")
    # the free slope is 1 with an intercept of -2.5e6: clamped to the line through the origin
    assert fit.clamped
    ratios = y / x  # a line through the origin has its rate between the runs' own rates
    assert ratios.min() <= fit.coef[0] <= ratios.max()
    shifted = fit_line(x - 2535318.0, y)  # the same data near 0: the free fit is kept, slope 1
    assert not shifted.clamped
    assert shifted.coef[0] == pytest.approx(1.0, rel=1e-3)
    assert shifted.predict(1.0).mean == pytest.approx(36708.39199529 + 1.0 - 0.2370924, abs=0.01)


def test_a_huber_solver_failure_falls_back_to_least_squares(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Simulated: no data known to us still makes L-BFGS-B give up after the scaling fix."""
    from sklearn.linear_model import HuberRegressor

    def give_up(self: HuberRegressor, *args: object, **kwargs: object) -> HuberRegressor:
        raise ValueError("HuberRegressor convergence failed: l-BFGS-b solver terminated with ABNORMAL")

    monkeypatch.setattr(HuberRegressor, "fit", give_up)
    x = np.linspace(1e6, 1e7, 12)
    with caplog.at_level("WARNING", logger="xtremehub.optimizer.costmodel"):
        fit = fit_line(x, 0.5 + 2e-7 * x)
    assert fit.intercept == pytest.approx(0.5)
    assert fit.coef[0] == pytest.approx(2e-7)
    assert "using least squares" in caplog.text


def test_too_few_runs_is_a_typed_error() -> None:
    store = TelemetryStore()
    rows, sizes = synthetic_calls(MIN_RUNS - 1)
    store.add(rows, function="f", input_bytes=sizes)
    with pytest.raises(OptimizerError, match=f"{MIN_RUNS - 1} successful runs"):
        fit_cost_model(store.observations("f"))
    with pytest.raises(OptimizerError, match="coverage"):
        fit_line(np.arange(10.0), np.arange(10.0), coverage=1.5)


def _negative_intercept_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Big calls slower per byte than small ones (a loaded machine): the free line's intercept is < 0."""
    x = rng.uniform(1e7, 1e8, n)
    return x, -0.1 + 3e-8 * x + rng.normal(0, 0.05, n)


def test_a_negative_intercept_is_clamped_at_zero() -> None:
    rng = np.random.default_rng(7)
    x, y = _negative_intercept_data(rng, 200)
    free = np.polyfit(x, y, 1)
    assert free[1] < -0.05  # what an unconstrained fit says: every call saves 0.1 s
    fit = fit_line(x, y)
    assert fit.clamped
    assert not fit.through_origin
    assert fit.intercept == 0.0
    # the constrained least-squares slope (through the origin) is sum(xy) / sum(x^2)
    assert fit.coef[0] == pytest.approx(float(x @ y / (x @ x)), rel=0.02)
    assert "intercept clamped at 0" in fit.describe("s")
    assert not fit_line(x, y + 0.2).clamped  # a positive intercept is kept as fitted


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_clamped_intervals_still_cover_at_the_stated_rate(coverage: float) -> None:
    hits = []
    for seed in range(25):
        rng = np.random.default_rng(100 + seed)
        x, y = _negative_intercept_data(rng, 60)
        fit = fit_line(x, y, coverage=coverage, seed=seed)
        assert fit.clamped
        xt, yt = _negative_intercept_data(rng, 200)
        preds = [fit.predict(v) for v in xt]
        hits.append(np.mean([p.low <= v <= p.high for p, v in zip(preds, yt, strict=True)]))
    assert coverage - 0.02 <= float(np.mean(hits)) <= coverage + 0.08
