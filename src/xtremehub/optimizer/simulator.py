"""Pre-scaling policies and a discrete-event simulator of a scalable backend.

A **policy** decides, at the start of each window, how many workers the backend should
have: :class:`StaticPolicy` a fixed number, :class:`ReactivePolicy` enough for the load
of the window that just ended, :class:`ForecastPolicy` enough for the larger of the
forecasts of this window and the next (so workers started now are up before a burst).
Dynamic policies add the tasks still queued at the boundary (the backlog) to the expected
load. The count is ``ceil(tasks * task_seconds / (window_seconds * utilisation))``, clipped to
``[min_workers, max_workers]``; :meth:`ScalingRule.workers_for` is what backends that
scale (Ray, Dask adaptive, Lithops, the stream processors) are given.

The **simulator** replays task counts per window: tasks arrive uniformly within their
window, queue FIFO and run on the earliest free worker; each takes ``task_seconds`` plus
the backend's ``per_task_s`` overhead (times a log-normal jitter). Workers added at a
window boundary are billed from then on and serve after ``startup_s``; removed workers
finish their queued task first. Results: completion (mean and p95 latency, the last
finish), worker-seconds and SLO misses (tasks whose latency exceeds ``slo_s``).

Example:
    >>> rule = ScalingRule(task_seconds=2.0, window_seconds=60.0, utilisation=0.8, max_workers=50)
    >>> rule.workers_for(100)
    5
    >>> counts = np.array([50, 50, 200, 50])
    >>> r = simulate(counts, StaticPolicy(rule, 8), SimConfig(task_seconds=2.0, window_seconds=60.0, slo_s=30))
    >>> r.tasks, r.worker_seconds
    (350, 1920.0)
"""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from xtremehub.errors import ConfigError
from xtremehub.optimizer.forecast import Forecaster

__all__ = [
    "ForecastPolicy",
    "Policy",
    "ReactivePolicy",
    "ScalingRule",
    "SimConfig",
    "SimResult",
    "StaticPolicy",
    "simulate",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScalingRule:
    """Turns a task count per window into a worker count."""

    task_seconds: float
    window_seconds: float
    utilisation: float = 0.8
    min_workers: int = 1
    max_workers: int = 64

    def __post_init__(self) -> None:
        if not 0 < self.utilisation <= 1 or self.task_seconds <= 0 or self.window_seconds <= 0:
            raise ConfigError("utilisation must be in (0, 1], task and window seconds > 0")
        if not 1 <= self.min_workers <= self.max_workers:
            raise ConfigError("need 1 <= min_workers <= max_workers")

    def workers_for(self, tasks: float) -> int:
        need = math.ceil(max(0.0, tasks) * self.task_seconds / (self.window_seconds * self.utilisation) - 1e-9)
        return int(min(self.max_workers, max(self.min_workers, need)))


class Policy(ABC):
    """Decides the worker count of window ``t`` from the counts of windows ``< t`` and the backlog."""

    name: str

    def __init__(self, rule: ScalingRule) -> None:
        self.rule = rule

    @abstractmethod
    def expected(self, counts: npt.NDArray[np.int64], start: int) -> FloatArray:
        """Tasks expected in windows ``start..len(counts)-1`` (each from earlier counts only)."""

    def workers(self, expected: float, backlog: int) -> int:
        """Workers for a window expecting ``expected`` new tasks with ``backlog`` still queued."""
        return self.rule.workers_for(expected + backlog)


class StaticPolicy(Policy):
    def __init__(self, rule: ScalingRule, workers: int) -> None:
        super().__init__(rule)
        self.fixed, self.name = workers, f"static {workers}"

    def expected(self, counts: npt.NDArray[np.int64], start: int) -> FloatArray:
        return np.zeros(len(counts) - start)

    def workers(self, expected: float, backlog: int) -> int:
        return self.fixed


def _headroom(actual: FloatArray, predicted: FloatArray, quantile: float) -> float:
    """The ``quantile`` of ``actual / predicted``: the factor that covers that share of past windows."""
    ok = predicted > 0
    if not ok.any():
        return 1.0
    return float(max(1.0, np.quantile(actual[ok] / predicted[ok], quantile)))


class ReactivePolicy(Policy):
    """Enough workers for the last window's load (what autoscalers without a forecast do).

    With ``calibration`` (a past series) the load is multiplied by the ``quantile`` of the
    past ratios ``y[t] / y[t - 1]`` (the same head-room rule as :class:`ForecastPolicy`).
    """

    def __init__(self, rule: ScalingRule, calibration: FloatArray | None = None, quantile: float = 0.9) -> None:
        super().__init__(rule)
        self.factor = 1.0
        if calibration is not None:
            c = np.asarray(calibration, dtype=np.float64)
            self.factor = _headroom(c[1:], c[:-1], quantile)
        self.name = "reactive" + (f" (x{self.factor:.2f})" if self.factor > 1 else "")

    def expected(self, counts: npt.NDArray[np.int64], start: int) -> FloatArray:
        out: FloatArray = self.factor * counts[start - 1 : len(counts) - 1].astype(np.float64)
        return out


class ForecastPolicy(Policy):
    """Enough workers for ``max(forecast of this window, forecast of the next)``.

    With ``reactive_floor`` (the default) never fewer than the reactive policy's load
    (the last window's count): regressions shrink toward the seasonal mean, so a burst
    that lasts several windows would otherwise be under-provisioned after its first.

    With ``calibration`` (the fitted forecaster's past series) forecasts are multiplied by
    the ``quantile`` of ``actual / forecast`` over its last ``calibration_windows`` windows.
    """

    def __init__(
        self,
        rule: ScalingRule,
        forecaster: Forecaster,
        calibration: FloatArray | None = None,
        quantile: float = 0.9,
        calibration_windows: int = 24 * 7,
        reactive_floor: bool = True,
    ) -> None:
        super().__init__(rule)
        self.forecaster, self.factor, self.floor = forecaster, 1.0, reactive_floor
        if calibration is not None:
            c = np.asarray(calibration, dtype=np.float64)
            first = max(len(c) - calibration_windows, getattr(forecaster, "history_needed", 0), 1)
            self.factor = _headroom(c[first:], forecaster.backtest(c, first, 1), quantile)
        self.name = f"forecast ({forecaster.name})" + (f" (x{self.factor:.2f})" if self.factor > 1 else "")

    def expected(self, counts: npt.NDArray[np.int64], start: int) -> FloatArray:
        y = np.append(counts.astype(np.float64), 0.0)  # one window past the end, for h = 2
        f1 = self.forecaster.backtest(y, start, 1)[:-1]  # made at t-1 for window t
        f2 = self.forecaster.backtest(y, start + 1, 2)  # made at t-1 for window t+1
        expect = np.maximum(f1, f2)
        if self.floor:  # never below what the last window needed: a burst that lasts is not shrunk
            expect = np.maximum(expect, counts[start - 1 : len(counts) - 1])
        out: FloatArray = self.factor * expect
        return out


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The simulated backend and service level (seconds)."""

    task_seconds: float
    window_seconds: float
    per_task_s: float = 0.0
    startup_s: float = 0.0
    slo_s: float = 60.0
    jitter: float = 0.1  # sigma of the log-normal factor on each task's time
    seed: int = 0


@dataclass(frozen=True)
class SimResult:
    policy: str
    tasks: int
    worker_seconds: float
    mean_latency: float
    p95_latency: float
    completion: float  # when the last task finished (seconds from the first window)
    slo_misses: int
    workers: tuple[int, ...] = field(default=())

    @property
    def slo_miss_rate(self) -> float:
        return self.slo_misses / self.tasks if self.tasks else 0.0

    def row(self) -> str:
        return (
            f"{self.policy:<28} {self.worker_seconds / 3600:>9.1f} {self.mean_latency:>8.1f} {self.p95_latency:>8.1f} "
            f"{self.slo_misses:>7} {self.slo_miss_rate:>7.2%} {self.completion / 3600:>8.2f}"
        )

    HEADER = f"{'policy':<28} {'worker-h':>9} {'mean s':>8} {'p95 s':>8} {'SLO miss':>7} {'rate':>7} {'done h':>8}"


@dataclass(slots=True)
class _Worker:
    billed_from: float
    ready: float
    free: float = 0.0  # when its last started task ends
    retired: float | None = None
    tail: list[tuple[float, float, float, float]] = field(default_factory=list)  # (begin, finish, arrival, service)

    @property
    def available(self) -> float:
        return max(self.ready, self.free, self.tail[-1][1] if self.tail else 0.0)


def simulate(counts: npt.NDArray[np.int64], policy: Policy, cfg: SimConfig, *, start: int = 0) -> SimResult:
    """Replay ``counts[start:]`` under ``policy`` (see module doc).

    Tasks are dispatched FIFO to the earliest available worker; at each window boundary
    the tasks not yet started go back to the queue (they are the backlog the policy sees)
    and are dispatched again over the resized pool.
    """
    counts = np.asarray(counts, dtype=np.int64)
    expected = policy.expected(counts, start)
    rng = np.random.default_rng(cfg.seed)
    w = cfg.window_seconds
    pool: list[_Worker] = []
    plan: list[int] = []
    latencies: list[float] = []
    last_finish = 0.0
    pending: list[tuple[float, float]] = []  # (arrival, service) not started at the boundary

    def commit(worker: _Worker, upto: float) -> None:
        nonlocal last_finish
        keep = [t for t in worker.tail if t[0] > upto]
        for _begin, finish, arrival, _service in worker.tail[: len(worker.tail) - len(keep)]:
            latencies.append(finish - arrival)
            last_finish = max(last_finish, finish)
            worker.free = finish
        pending.extend((t[2], t[3]) for t in keep)
        worker.tail = []

    for i, exp in enumerate(expected):
        t0 = i * w
        pending = []
        active = [k for k in pool if k.retired is None]
        for k in active:
            commit(k, t0)
        target = policy.workers(float(exp), len(pending))
        plan.append(target)
        if target > len(active):
            pool += [_Worker(t0, t0 + cfg.startup_s) for _ in range(target - len(active))]
        elif target < len(active):
            active.sort(key=lambda k: k.available)  # retire those free soonest; they finish their task
            for k in active[: len(active) - target]:
                k.retired = max(t0, k.available)
        n = int(counts[start + i])
        arrivals = t0 + rng.random(n) * w
        service = (cfg.task_seconds + cfg.per_task_s) * rng.lognormal(0.0, cfg.jitter, n)
        tasks = sorted(pending + list(zip(arrivals.tolist(), service.tolist(), strict=True)))
        heap = [(k.available, j, k) for j, k in enumerate(pool) if k.retired is None]
        heapq.heapify(heap)
        for arrival, svc in tasks:
            avail, j, k = heapq.heappop(heap)
            begin = max(arrival, avail)
            k.tail.append((begin, begin + svc, arrival, svc))
            heapq.heappush(heap, (begin + svc, j, k))
    pending = []
    for k in pool:
        commit(k, math.inf)
    end = max(last_finish, len(plan) * w)
    billed = sum((k.retired if k.retired is not None else end) - k.billed_from for k in pool)
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return SimResult(
        policy.name,
        len(latencies),
        float(billed),
        float(lat.mean()),
        float(np.percentile(lat, 95)),
        float(last_finish),
        int((lat > cfg.slo_s).sum()) if latencies else 0,
        tuple(plan),
    )
