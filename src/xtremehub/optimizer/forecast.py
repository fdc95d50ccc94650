"""Load forecasters: 1..H windows ahead from the windows seen so far.

- :class:`SeasonalNaive`: the value one season ago (the baseline);
- :class:`LaggedRegression`: one scikit-learn regressor per horizon (direct strategy) on
  a lagged window: the last ``lags`` values, the values one and two seasons and one week
  before the target, and the target's position in the day and week (sin/cos). Values are
  divided by the local level (the mean of the last season), so a trend or a change point
  shifts the level, not the model. ``kind``
  ``"linear"`` is a ridge regression, ``"svr"`` an RBF support-vector regression on
  standardised features.

Every forecaster answers :meth:`~Forecaster.backtest`: for each target window ``T`` from
``start`` on, the forecast of ``y[T]`` made with ``y[: T - horizon + 1]`` only.

Example:
    >>> from xtremehub.optimizer.workload import WorkloadSpec, generate_workload
    >>> y = generate_workload(WorkloadSpec(windows=24 * 28, burst_probability=0, seed=2)).counts.astype(float)
    >>> train = 24 * 21
    >>> naive = SeasonalNaive(24).fit(y[:train]).backtest(y, train, 1)
    >>> lin = LaggedRegression("linear").fit(y[:train]).backtest(y, train, 1)
    >>> bool(mae(y[train:], lin) < mae(y[train:], naive))
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from xtremehub.errors import ConfigError, OptimizerError

__all__ = ["Forecaster", "LaggedRegression", "SeasonalNaive", "mae"]

FloatArray = npt.NDArray[np.float64]


def mae(actual: FloatArray, predicted: FloatArray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(actual, dtype=np.float64) - predicted)))


class Forecaster(ABC):
    """Fit on a history, then forecast windows ``1..max_horizon`` ahead."""

    name: str
    max_horizon: int = 3

    @abstractmethod
    def fit(self, y: FloatArray) -> Forecaster: ...

    @abstractmethod
    def backtest(self, y: FloatArray, start: int, horizon: int) -> FloatArray:
        """Forecasts of ``y[start:]``, each made ``horizon`` windows before its target."""

    def forecast(self, history: FloatArray, horizon: int) -> float:
        """The forecast of the window ``horizon`` after the last of ``history``."""
        y = np.append(np.asarray(history, dtype=np.float64), np.zeros(horizon))
        return float(self.backtest(y, len(y) - 1, horizon)[0])

    def _check(self, y: FloatArray, start: int, horizon: int, need: int) -> None:
        if not 1 <= horizon <= self.max_horizon:
            raise ConfigError(f"{self.name}: horizon must be 1..{self.max_horizon}, not {horizon}")
        if start < need:
            raise OptimizerError(f"{self.name}: needs {need} windows of history before the first forecast")


class SeasonalNaive(Forecaster):
    """``y[T - season]`` (for horizons up to one season): the baseline every forecaster must beat."""

    def __init__(self, season: int = 24, max_horizon: int = 3) -> None:
        if not 1 <= max_horizon <= season:
            raise ConfigError("the seasonal-naive horizon must be 1..season")
        self.season, self.max_horizon, self.name = season, max_horizon, "seasonal naive"

    def fit(self, y: FloatArray) -> SeasonalNaive:
        return self

    def backtest(self, y: FloatArray, start: int, horizon: int) -> FloatArray:
        self._check(y, start, horizon, self.season)
        out: FloatArray = np.asarray(y, dtype=np.float64)[start - self.season : len(y) - self.season].copy()
        return out


class LaggedRegression(Forecaster):
    """A regressor per horizon on lagged windows (see module doc); ``kind`` is ``"linear"`` or ``"svr"``."""

    def __init__(
        self,
        kind: Literal["linear", "svr"] = "linear",
        *,
        lags: int = 6,
        season: int = 24,
        week: int = 168,
        max_horizon: int = 3,
        svr_c: float = 3.0,
    ) -> None:
        if kind not in ("linear", "svr"):
            raise ConfigError(f"kind must be 'linear' or 'svr', not {kind!r}")
        if max_horizon > season:
            raise ConfigError("max_horizon must not exceed the season")
        self.kind, self.lags, self.season, self.week = kind, lags, season, week
        self.max_horizon, self.svr_c = max_horizon, svr_c
        self.name = "linear regression" if kind == "linear" else "SVR"
        self._models: dict[int, Any] = {}
        self._scale = 1.0

    @property
    def history_needed(self) -> int:
        return max(self.lags, 2 * self.season, self.week)

    def _level(self, y: FloatArray, origin: npt.NDArray[np.int64]) -> FloatArray:
        """Mean of the last season up to each origin (the local level every value is divided by)."""
        c = np.concatenate([[0.0], np.cumsum(y)])
        level: FloatArray = (c[origin + 1] - c[origin + 1 - self.season]) / self.season
        return np.maximum(level, 1e-9)

    def _features(self, y: FloatArray, targets: npt.NDArray[np.int64], horizon: int) -> FloatArray:
        origin = targets - horizon  # the last window known when forecasting
        level = self._level(y, origin)
        cols = [y[origin - k] / level for k in range(self.lags)]
        cols += [y[t] / level for t in (targets - self.season, targets - 2 * self.season, targets - self.week)]
        tf = targets.astype(np.float64)
        cols += [np.sin(2 * np.pi * tf / self.season), np.cos(2 * np.pi * tf / self.season)]
        cols += [np.sin(2 * np.pi * tf / self.week), np.cos(2 * np.pi * tf / self.week)]
        return np.column_stack(cols)

    def _new_model(self) -> Any:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVR

        if self.kind == "linear":
            return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
        return make_pipeline(StandardScaler(), SVR(kernel="rbf", C=self.svr_c, epsilon=0.05, gamma="scale"))

    def fit(self, y: FloatArray) -> LaggedRegression:
        y = np.asarray(y, dtype=np.float64)
        first = self.history_needed + self.max_horizon
        if len(y) - first < 2 * self.season:
            raise OptimizerError(f"{self.name}: needs at least {first + 2 * self.season} windows to fit")
        self._scale = float(np.mean(np.abs(y))) or 1.0
        ys = y / self._scale
        for h in range(1, self.max_horizon + 1):
            targets = np.arange(self.history_needed + h, len(ys))
            level = self._level(ys, targets - h)
            self._models[h] = self._new_model().fit(self._features(ys, targets, h), ys[targets] / level)
        return self

    def backtest(self, y: FloatArray, start: int, horizon: int) -> FloatArray:
        self._check(y, start, horizon, self.history_needed)
        if horizon not in self._models:
            raise OptimizerError(f"{self.name}: not fitted (call fit first)")
        ys = np.asarray(y, dtype=np.float64) / self._scale
        targets = np.arange(start, len(ys))
        pred = self._models[horizon].predict(self._features(ys, targets, horizon))
        level = self._level(ys, targets - horizon)
        out: FloatArray = np.maximum(0.0, np.asarray(pred, dtype=np.float64) * level * self._scale)
        return out
