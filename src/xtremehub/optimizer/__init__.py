"""The resource optimizer: learn from job telemetry, forecast load, choose slices and workers.

- :mod:`~xtremehub.optimizer.store`: job telemetry (JSON lines) in a SQLite table;
- :mod:`~xtremehub.optimizer.costmodel`: per-function duration / CPU / memory lines with
  conformal prediction intervals;
- :mod:`~xtremehub.optimizer.planner`: the number of slices and workers for a map;
- :mod:`~xtremehub.optimizer.workload`, :mod:`~xtremehub.optimizer.forecast`,
  :mod:`~xtremehub.optimizer.simulator`: load generation, forecasting, pre-scaling and
  a discrete-event simulator of backends.

See ``docs/optimizer.md``.
"""

from __future__ import annotations

from xtremehub.optimizer.costmodel import CostModel, LineFit, Prediction, fit_cost_model
from xtremehub.optimizer.forecast import Forecaster, LaggedRegression, SeasonalNaive, mae
from xtremehub.optimizer.planner import BackendProfile, Objective, Plan, Planner, default_planner, measure_backend
from xtremehub.optimizer.simulator import (
    ForecastPolicy,
    ReactivePolicy,
    ScalingRule,
    SimConfig,
    SimResult,
    StaticPolicy,
    simulate,
)
from xtremehub.optimizer.store import JobRow, Observations, TelemetryStore, read_jsonl
from xtremehub.optimizer.workload import Workload, WorkloadSpec, generate_workload

__all__ = [
    "BackendProfile",
    "CostModel",
    "ForecastPolicy",
    "Forecaster",
    "JobRow",
    "LaggedRegression",
    "LineFit",
    "Objective",
    "Observations",
    "Plan",
    "Planner",
    "Prediction",
    "ReactivePolicy",
    "ScalingRule",
    "SeasonalNaive",
    "SimConfig",
    "SimResult",
    "StaticPolicy",
    "TelemetryStore",
    "Workload",
    "WorkloadSpec",
    "default_planner",
    "fit_cost_model",
    "generate_workload",
    "mae",
    "measure_backend",
    "read_jsonl",
    "simulate",
]
