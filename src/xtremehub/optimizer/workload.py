"""Synthetic workloads: task counts per window with trend, seasonality, AR(1) noise, bursts, change points.

The rate of window ``t`` is

``level(t) * (1 + daily sin + weekly sin) * (1 + ar(t)) + bursts(t)``

where ``level`` grows linearly and jumps at change points, ``ar`` is an AR(1) process and
bursts add a multiple of the base rate for a few windows; the task count of the window is
Poisson-distributed around that rate. Windows are hours by default (``period=24``,
``week=168``).

Example:
    >>> w = generate_workload(WorkloadSpec(windows=24 * 14, seed=1))
    >>> w.counts.shape, w.counts.dtype.kind, bool(w.counts.min() >= 0)
    ((336,), 'i', True)
    >>> generate_workload(WorkloadSpec(windows=48, seed=1)).counts.tolist() == w.counts[:48].tolist()
    False
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xtremehub.errors import ConfigError

__all__ = ["Workload", "WorkloadSpec", "generate_workload"]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Parameters of :func:`generate_workload` (rates in tasks per window)."""

    windows: int = 24 * 7 * 4
    base: float = 100.0
    trend: float = 0.02  # tasks per window added each window
    daily_amplitude: float = 0.5  # fraction of the level
    weekly_amplitude: float = 0.2
    period: int = 24
    week: int = 168
    ar_phi: float = 0.7
    ar_sigma: float = 0.05  # innovation s.d., fraction of the level
    burst_probability: float = 0.01  # per window
    burst_height: float = 1.5  # multiple of base added during a burst
    burst_windows: int = 3
    change_points: int = 1
    change_size: float = 0.3  # level multiplied by 1 +- this at each change point
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Workload:
    """The generated rate and Poisson counts per window, and what made them."""

    spec: WorkloadSpec
    rate: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    bursts: tuple[int, ...]
    change_points: tuple[int, ...]


def generate_workload(spec: WorkloadSpec | None = None) -> Workload:
    """Generate a workload (deterministic for a given ``spec.seed``)."""
    s = spec or WorkloadSpec()
    if s.windows < 1 or s.period < 1 or s.week < 1 or s.base <= 0:
        raise ConfigError("windows, period, week and base must be positive")
    if not -1 < s.ar_phi < 1:
        raise ConfigError(f"ar_phi must be in (-1, 1) for a stationary AR(1), not {s.ar_phi}")
    rng = np.random.default_rng(s.seed)
    t = np.arange(s.windows, dtype=np.float64)
    level = s.base + s.trend * t
    changes = tuple(sorted(int(c) for c in rng.choice(np.arange(s.windows // 4, s.windows), s.change_points, False)))
    for c in changes:
        level[c:] *= 1 + s.change_size * rng.choice([-1.0, 1.0])
    season = (
        1 + s.daily_amplitude * np.sin(2 * np.pi * t / s.period) + s.weekly_amplitude * np.sin(2 * np.pi * t / s.week)
    )
    ar = np.zeros(s.windows)
    eps = rng.normal(0, s.ar_sigma, s.windows)
    for i in range(1, s.windows):
        ar[i] = s.ar_phi * ar[i - 1] + eps[i]
    rate = np.maximum(0.0, level * season * (1 + ar))
    starts = np.flatnonzero(rng.random(s.windows) < s.burst_probability)
    for b in starts:
        rate[b : b + s.burst_windows] += s.burst_height * s.base
    counts = rng.poisson(rate).astype(np.int64)
    return Workload(s, rate, counts, tuple(int(b) for b in starts), changes)
