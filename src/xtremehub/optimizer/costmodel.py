"""Per-function cost models: duration, CPU and peak memory of one call from its input size.

Each target is a straight line in the call's input bytes (and records, when every call
knows them), fitted by a robust Huber regressor (scikit-learn) so that a few slow calls
(a cold cache, a noisy neighbour) do not tilt it. The coefficients are the explanation:
``seconds = intercept + slope * bytes``.

Prediction intervals are split-conformal: the line is fitted on part of the runs, the
absolute residuals on the held-out rest give the half-width (their
``ceil((n + 1) * coverage) / n`` quantile), which covers a new run with probability at
least ``coverage`` when runs are exchangeable. The same held-out runs give the reported
error (MAE and MAPE). The final line is refitted on every run.

When every observed call had the same input size the slope cannot be identified; the
model then goes through the origin (``seconds = rate * bytes``): a per-call constant is
the backend's overhead, which the planner measures separately. A fitted intercept below
zero (a call's fixed cost cannot be negative; it happens when big calls ran slower per byte
than small ones, e.g. on a loaded machine) is clamped at zero: the line is refitted through
the origin, which is the least-squares (or Huber) fit under the constraint ``intercept >= 0``;
the interval's residuals come from the clamped line, so it still covers at its rate.

The **spread** of a call's duration is measured within maps: the relative residuals of the
duration line (``observed / predicted - 1``) minus their mean over the calls of the same job
that ran on the same worker (which removes what differs between runs, a busier machine or the
line's misfit at that slice size, and what stays with a worker for the whole map, a core
shared with another process, which more slices do not even out), root-mean-squared with the
squared predicted duration as weight (the timer jitter of a 5 ms call says little about how
unequal 2 s calls are); see :func:`within_job_spread`. It is how unequal the calls of one map
are, which sets how late the last wave ends (the planner's tail term); the held-out error of
the line also holds the run-to-run noise and overstates it.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(1e6, 1e8, 200)
    >>> fit = fit_line(x, 0.5 + 2e-8 * x + rng.normal(0, 0.01, 200), coverage=0.9)
    >>> round(fit.intercept, 1), round(fit.coef[0] * 1e8, 1)
    (0.5, 2.0)
    >>> fit.predict(5e7).low < 1.5 < fit.predict(5e7).high
    True
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from xtremehub.errors import OptimizerError
from xtremehub.optimizer.store import Observations

__all__ = ["MIN_RUNS", "CostModel", "LineFit", "Prediction", "fit_cost_model", "fit_line", "within_job_spread"]

#: Fewest successful calls a function needs before it gets a model (else the default plan).
MIN_RUNS = 6

FloatArray = npt.NDArray[np.float64]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A point prediction and its interval ``[low, high]`` at ``coverage``."""

    mean: float
    low: float
    high: float
    coverage: float


@dataclass(frozen=True, slots=True)
class LineFit:
    """``y = intercept + coef . features`` with a conformal half-width and held-out errors."""

    target: str
    intercept: float
    coef: tuple[float, ...]
    half_width: float
    coverage: float
    heldout_mae: float
    heldout_mape: float
    n_runs: int
    through_origin: bool = False
    clamped: bool = False  # the intercept was fitted below 0 and clamped (refitted through the origin)

    def predict(self, input_bytes: float, records: float | None = None) -> Prediction:
        feats = (input_bytes,) if len(self.coef) == 1 else (input_bytes, records or 0.0)
        mean = self.intercept + sum(c * f for c, f in zip(self.coef, feats, strict=True))
        mean = max(0.0, mean)
        return Prediction(mean, max(0.0, mean - self.half_width), mean + self.half_width, self.coverage)

    def describe(self, unit: str, scale: float = 1.0) -> str:
        per_mb = self.coef[0] * 1e6 / scale
        parts = [f"{self.target} = {self.intercept / scale:.4g} {unit} + {per_mb:.4g} {unit}/MB"]
        if self.clamped:
            parts.append("(intercept clamped at 0)")
        if len(self.coef) > 1:
            parts.append(f"+ {self.coef[1] * 1e3 / scale:.4g} {unit}/1k records")
        parts.append(
            f"(±{self.half_width / scale:.3g} {unit} at {self.coverage:.0%}; held-out MAE "
            f"{self.heldout_mae / scale:.3g} {unit}, MAPE {self.heldout_mape:.1%}; {self.n_runs} runs)"
        )
        return " ".join(parts)


def _design(x: FloatArray | tuple[FloatArray, ...]) -> FloatArray:
    cols = x if isinstance(x, tuple) else (x,)
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


def _regress(features: FloatArray, y: FloatArray, robust: bool, through_origin: bool) -> tuple[float, FloatArray, bool]:
    """Fit on standardised features, return (intercept >= 0, coefficients, clamped) in the original units."""
    b0, b = _regress_once(features, y, robust, through_origin)
    if b0 >= 0:
        return b0, b, False
    # the constrained fit (intercept >= 0) of a convex loss whose free optimum is below 0 has intercept 0
    b0, b = _regress_once(features, y, robust, True, huber_through_origin=robust)
    return b0, b, True


def _regress_once(
    features: FloatArray, y: FloatArray, robust: bool, through_origin: bool, *, huber_through_origin: bool = False
) -> tuple[float, FloatArray]:
    from sklearn.linear_model import HuberRegressor, LinearRegression

    if through_origin:
        # no intercept, so no shift: scale by the root mean square, which puts a column near 1
        # even when its values barely vary (a spread of 2 on values of 2.5e6 made z ~ 1e6)
        shift, y_shift = np.zeros(features.shape[1]), 0.0
        scale = np.sqrt(np.mean(features**2, axis=0))
        y_scale = float(np.sqrt(np.mean(y**2)))
    else:
        # an intercept absorbs any shift of x or y exactly (same loss), so centre, then scale
        shift, y_shift = features.mean(axis=0), float(np.mean(y))
        scale = features.std(axis=0)
        y_scale = float(np.std(y))
    scale[scale == 0] = 1.0
    y_scale = y_scale or 1.0
    z, yz = (features - shift) / scale, (y - y_shift) / y_scale
    use_huber = robust and (huber_through_origin or not through_origin)
    model = (
        HuberRegressor(epsilon=1.35, alpha=0.0, max_iter=2000, fit_intercept=not through_origin)
        if use_huber
        else LinearRegression(fit_intercept=not through_origin)
    )
    try:
        model.fit(z, yz)
    except ValueError as exc:  # L-BFGS-B gave up: a plan from least squares beats no plan
        if not use_huber:
            raise
        log.warning("Huber fit did not converge (%s); using least squares", exc)
        model = LinearRegression(fit_intercept=not through_origin).fit(z, yz)
    coef = np.asarray(model.coef_, dtype=np.float64) / scale * y_scale
    if through_origin:
        return 0.0, coef
    return float(model.intercept_) * y_scale + y_shift - float(shift @ coef), coef


def fit_line(
    x: FloatArray | tuple[FloatArray, ...],
    y: FloatArray,
    *,
    target: str = "y",
    coverage: float = 0.9,
    holdout: float = 0.3,
    robust: bool = True,
    seed: int = 0,
) -> LineFit:
    """Fit ``y`` on one or more feature columns with a split-conformal interval (see module doc)."""
    if not 0 < coverage < 1:
        raise OptimizerError(f"coverage must be in (0, 1), not {coverage}")
    features, y = _design(x), np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 3:
        raise OptimizerError(f"{target}: {n} runs are too few to fit a cost model (need >= 3)")
    through_origin = bool(np.all(features.std(axis=0) == 0))
    order = np.random.default_rng(seed).permutation(n)
    n_cal = min(n - 2, max(2, math.ceil(n * holdout)))
    cal, train = order[:n_cal], order[n_cal:]
    b0, b, _ = _regress(features[train], y[train], robust, through_origin)
    residuals = np.abs(y[cal] - (b0 + features[cal] @ b))
    rank = min(n_cal, math.ceil((n_cal + 1) * coverage))
    half = float(np.sort(residuals)[rank - 1])
    mae = float(residuals.mean())
    mape = float(np.mean(residuals / np.maximum(np.abs(y[cal]), 1e-12)))
    b0, b, clamped = _regress(features, y, robust, through_origin)
    return LineFit(target, b0, tuple(float(c) for c in b), half, coverage, mae, mape, n, through_origin, clamped)


@dataclass(frozen=True, slots=True)
class CostModel:
    """Duration, CPU seconds and peak RSS of one call of ``function``, each a :class:`LineFit`."""

    function: str
    duration: LineFit
    cpu: LineFit
    peak_rss: LineFit
    uses_records: bool = False
    backends: tuple[str, ...] = field(default=())
    #: relative spread of a call's duration within a map and worker (module doc); None: no 2 such calls
    duration_spread: float | None = None
    spread_jobs: int = 0  # jobs (maps) the spread was measured on

    def explain(self) -> str:
        spread = (
            f"  spread of call durations within a map (same worker): {self.duration_spread:.1%} "
            f"({self.spread_jobs} maps)"
            if self.duration_spread is not None
            else "  spread of call durations within a map: unknown (no map with 2 calls on one worker recorded)"
        )
        return "\n".join(
            [
                f"cost model of {self.function} (backends: {', '.join(self.backends) or '?'})",
                "  " + self.duration.describe("s"),
                "  " + self.cpu.describe("CPU s"),
                "  " + self.peak_rss.describe("MiB", 2**20),
                spread,
            ]
        )


def within_job_spread(
    fit: LineFit,
    features: FloatArray,
    y: FloatArray,
    jobs: tuple[str, ...],
    workers: tuple[str, ...] = (),
) -> tuple[float, int] | None:
    """Relative spread of ``y`` around ``fit`` among calls of the same job, and the jobs it used.

    Calls are grouped by job and, when ``workers`` is given, by the worker that ran them (a
    worker slow for the whole map is not a spread that more slices even out). Per call the
    relative residual ``y / predicted - 1`` less its group's mean; the spread is the root of
    their mean square weighted by the squared predicted duration (the seconds a deviation
    costs: a 10 % deviation of a 2 s call matters, the timer jitter of a 5 ms call does not),
    with ``n / (n - 1)`` per group of ``n`` calls for the group's mean taken out. Groups of
    one call are skipped; ``None`` if no group has two.

    Example:
        >>> import numpy as np
        >>> fit = LineFit("duration", 0.0, (1.0,), 0.0, 0.9, 0.0, 0.0, 4)
        >>> x = np.array([[1.0], [1.0], [1.0], [1.0]])
        >>> # job a: 0.9 and 1.1 (±10 %); job b: both 50 % slower, equal: a run-to-run shift, no spread
        >>> s, jobs = within_job_spread(fit, x, np.array([0.9, 1.1, 1.5, 1.5]), ("a", "a", "b", "b"))
        >>> round(s, 3), jobs
        (0.1, 2)
    """
    if len(jobs) != len(y):
        return None
    pred = np.maximum(fit.intercept + features @ np.asarray(fit.coef), 1e-12)
    rel = y / pred - 1.0
    keys = list(zip(jobs, workers, strict=True)) if len(workers) == len(jobs) else [(j, "") for j in jobs]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    num = den = 0.0
    used: set[str] = set()
    for (job, _), members in groups.items():
        if len(members) < 2:
            continue
        idx = np.asarray(members)
        weight = pred[idx] ** 2
        num += float(np.sum(weight * (rel[idx] - rel[idx].mean()) ** 2))
        den += float(np.sum(weight)) * (len(members) - 1) / len(members)
        used.add(job)
    if not used or den <= 0:
        return None
    return math.sqrt(num / den), len(used)


def fit_cost_model(obs: Observations, *, coverage: float = 0.9, robust: bool = True, seed: int = 0) -> CostModel:
    """Fit the three lines of a function from its observed calls (needs :data:`MIN_RUNS`).

    Example:
        >>> import numpy as np
        >>> from xtremehub.optimizer.store import Observations
        >>> x = np.linspace(1e6, 1e7, 20)
        >>> obs = Observations("f", x, None, 0.1 + 1e-7 * x, 1e-7 * x, 5e7 + 2 * x, ("local",) * 20)
        >>> m = fit_cost_model(obs)
        >>> round(m.duration.predict(2e7).mean, 2), round(m.peak_rss.coef[0], 2)
        (2.1, 2.0)
    """
    if len(obs) < MIN_RUNS:
        raise OptimizerError(f"{obs.function}: {len(obs)} successful runs recorded, a cost model needs {MIN_RUNS}")
    x: FloatArray | tuple[FloatArray, ...] = (
        (obs.input_bytes, obs.records) if obs.records is not None else obs.input_bytes
    )

    def line(y: FloatArray, target: str) -> LineFit:
        return fit_line(x, y, target=target, coverage=coverage, robust=robust, seed=seed)

    duration = line(obs.duration, "duration")
    spread = within_job_spread(duration, _design(x), obs.duration, obs.job, obs.worker)
    return CostModel(
        obs.function,
        duration,
        line(obs.cpu, "cpu"),
        line(obs.peak_rss, "peak_rss"),
        uses_records=obs.records is not None,
        backends=tuple(sorted(set(obs.backend))),
        duration_spread=spread[0] if spread else None,
        spread_jobs=spread[1] if spread else 0,
    )
