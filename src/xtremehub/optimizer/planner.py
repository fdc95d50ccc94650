"""Choose the number of slices and workers of a map from the function's cost model.

For ``n`` slices of an input of ``B`` bytes on ``w`` workers the planner predicts

- per-slice time ``d(n) = duration(B / n) + per_task`` (the cost model's line plus the
  backend's measured per-task overhead),
- completion time ``T = startup + per_job + ceil(n / w) * d(n) + tail(n, w)`` (waves of ``w``
  slices; ``per_job`` is the backend's fixed cost of a map whatever its size), where
  ``tail = spread * e(min(n, w)) * duration(B / n)`` is how late the slowest call of the last
  wave ends: ``spread`` is the relative spread of call durations within a map (the cost
  model's :attr:`~xtremehub.optimizer.costmodel.CostModel.duration_spread`; calls of equal
  size do not take equal time: a busy core, a cold cache, slices cut at checkpoints; the
  line's held-out MAPE when no map had two calls) and ``e(m)`` the expected largest of ``m``
  standard normal deviates (0 for one worker, 0.59 for two: Blom's approximation); smaller
  slices shorten the tail, each slice adds its fixed cost (the line's intercept, never below
  0, and ``per_task``),
- cost ``W = w * T`` worker-seconds (workers are held for the whole job),
- peak memory per worker: the upper end of the cost model's interval of ``peak_rss(B / n)``,

and returns the feasible ``(n, w)`` (peak within ``memory_limit``) with the smallest
``time_weight * T + cost_weight * W``; ties go to fewer workers, then fewer slices, so the
same inputs always give the same plan.

A function with fewer than :data:`~xtremehub.optimizer.costmodel.MIN_RUNS` successful
calls recorded gets the **default plan**: every available worker, two slices per worker
(no slice below ``min_slice_bytes``). Its calls are recorded, so later plans use a model.
While the recorded calls span less than a factor :data:`EXPLORE_RATIO` of input sizes, a
line's intercept (the fixed cost of a call) cannot be told from its slope, so the planner
**explores**: of ``w``, ``2 w``, ``4 w`` and ``8 w`` slices it takes the count whose slice
size is farthest from every size seen (source ``"explore"``); then it plans from the model.

Example:
    >>> planner = Planner(profile=BackendProfile("local", workers=4, startup_s=0.0, per_task_s=0.01))
    >>> plan = planner.plan("never.seen", 1 << 30)
    >>> plan.source, plan.workers, plan.slices
    ('default', 4, 8)
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.errors import ConfigError, InfeasiblePlan
from xtremehub.optimizer.costmodel import MIN_RUNS, CostModel, FloatArray, LineFit, fit_cost_model
from xtremehub.optimizer.store import TelemetryStore, write_job_meta

if TYPE_CHECKING:
    from xtremehub.compute.executor import FunctionExecutor
    from xtremehub.compute.futures import FuturesList, ResponseFuture

__all__ = [
    "EXPLORE_RATIO",
    "BackendProfile",
    "Candidate",
    "Objective",
    "Plan",
    "Planner",
    "completion_time",
    "default_planner",
    "function_name",
    "measure_backend",
    "planned_map",
]

log = logging.getLogger(__name__)

#: The planner explores other slicings until the recorded input sizes span this factor.
EXPLORE_RATIO = 4.0


def function_name(func: Callable[..., Any]) -> str:
    """The key a function's telemetry is stored under: ``module.qualname``."""
    inner = getattr(func, "func", func)  # functools.partial / WithEnv
    return f"{getattr(inner, '__module__', '?')}.{getattr(inner, '__qualname__', type(inner).__name__)}"


@dataclass(frozen=True, slots=True)
class BackendProfile:
    """What running on a backend costs besides the function itself (seconds)."""

    name: str
    workers: int
    startup_s: float = 0.0
    per_task_s: float = 0.005
    per_job_s: float = 0.0  # fixed cost of a map (submitting, collecting), whatever its number of calls


@dataclass(frozen=True, slots=True)
class Objective:
    """Score ``time_weight * seconds + cost_weight * worker_seconds`` (lower is better).

    Example:
        >>> Objective.parse("time"), Objective.parse("mix:0.25")
        (Objective(time_weight=1.0, cost_weight=0.0), Objective(time_weight=0.75, cost_weight=0.25))
    """

    time_weight: float = 1.0
    cost_weight: float = 0.0

    @classmethod
    def parse(cls, spec: str | Objective) -> Objective:
        if isinstance(spec, Objective):
            return spec
        if spec == "time":
            return cls(1.0, 0.0)
        if spec == "cost":
            return cls(0.0, 1.0)
        if spec.startswith("mix:"):
            try:
                w = float(spec[4:])
            except ValueError:
                w = -1.0
            if 0.0 <= w <= 1.0:
                return cls(1.0 - w, w)
        raise ConfigError(f"objective must be 'time', 'cost' or 'mix:<cost weight in [0, 1]>', not {spec!r}")

    def __str__(self) -> str:
        if self.cost_weight == 0:
            return "time"
        if self.time_weight == 0:
            return "cost (worker-seconds)"
        return f"{self.time_weight:g} x time + {self.cost_weight:g} x worker-seconds"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ``(slices, workers)`` choice and its predictions."""

    slices: int
    workers: int
    time: float
    worker_seconds: float
    peak_rss: float
    score: float


@dataclass(frozen=True)
class Plan:
    """The chosen slices and workers of a map, and why (:meth:`explain`)."""

    function: str
    total_bytes: int
    slices: int
    workers: int
    predicted_time: float
    predicted_worker_seconds: float
    predicted_peak_rss: float
    objective: Objective
    source: str  # "model" or "default"
    profile: BackendProfile
    memory_limit: int | None = None
    model: CostModel | None = None
    alternatives: tuple[Candidate, ...] = field(default=())
    reason: str = ""

    @property
    def slice_bytes(self) -> int:
        return max(1, math.ceil(self.total_bytes / self.slices))

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "total_bytes": self.total_bytes,
            "slices": self.slices,
            "workers": self.workers,
            "predicted_time": self.predicted_time,
            "predicted_worker_seconds": self.predicted_worker_seconds,
            "predicted_peak_rss": self.predicted_peak_rss,
            "objective": str(self.objective),
            "source": self.source,
            "memory_limit": self.memory_limit,
            "profile": asdict(self.profile),
        }

    def explain(self) -> str:
        """A few lines: the choice, the predictions, the model behind them and the runners-up."""
        mem = f"{self.memory_limit / 2**20:.0f} MiB" if self.memory_limit else "none"
        lines = [
            f"plan for {self.function}: {self.slices} slices of ~{self.slice_bytes / 1e6:.2f} MB "
            f"on {self.workers} workers ({self.source})",
            f"  input {self.total_bytes / 1e6:.1f} MB; objective {self.objective}; memory limit per worker {mem}",
            f"  backend {self.profile.name}: {self.profile.workers} workers available, start-up "
            f"{self.profile.startup_s:.3f}s, per-task overhead {self.profile.per_task_s * 1e3:.2f} ms, "
            f"per-job overhead {self.profile.per_job_s * 1e3:.1f} ms",
        ]
        if self.source != "default":
            lines.append(
                f"  predicted: {self.predicted_time:.2f}s, {self.predicted_worker_seconds:.2f} worker-s, "
                f"peak {self.predicted_peak_rss / 2**20:.0f} MiB per worker (upper bound)"
            )
        if self.reason:
            lines.append(f"  why: {self.reason}")
        if self.model is not None:
            lines += ["  " + line for line in self.model.explain().splitlines()]
        if self.alternatives:
            lines.append("  runners-up (slices x workers: time, worker-s):")
            lines += [
                f"    {c.slices:>4} x {c.workers:<3}: {c.time:.2f}s, {c.worker_seconds:.2f} worker-s"
                for c in self.alternatives
            ]
        return "\n".join(lines)


class Planner:
    """Plans maps from a :class:`TelemetryStore` and learns from the maps it plans.

    Args:
        store: where past calls are (default: a new in-memory store).
        profile: the backend's overheads (default: measured on first use by :meth:`map`).
        objective: ``"time"``, ``"cost"``, ``"mix:<w>"`` or an :class:`Objective`.
        memory_limit: bytes of memory per worker a slice may use (``None``: no limit).
        max_slices: the largest number of slices considered.
        min_slice_bytes: no slice smaller than this (bounds the number of slices).
        coverage: the prediction interval's coverage used for the memory bound.
    """

    def __init__(
        self,
        store: TelemetryStore | None = None,
        *,
        profile: BackendProfile | None = None,
        objective: str | Objective = "time",
        memory_limit: int | None = None,
        max_slices: int = 256,
        min_slice_bytes: int = 64 * 1024,
        coverage: float = 0.9,
    ) -> None:
        if max_slices < 1 or min_slice_bytes < 1:
            raise ConfigError("max_slices and min_slice_bytes must be >= 1")
        if memory_limit is not None and memory_limit <= 0:
            raise ConfigError(f"memory_limit must be > 0 bytes, not {memory_limit}")
        self.store = store if store is not None else TelemetryStore()
        self.profile = profile
        self.objective = Objective.parse(objective)
        self.memory_limit = memory_limit
        self.max_slices = max_slices
        self.min_slice_bytes = min_slice_bytes
        self.coverage = coverage
        self._models: dict[tuple[str, int], CostModel] = {}
        self._lock = threading.Lock()

    # -- models ---------------------------------------------------------------------------
    def model_for(self, function: str) -> CostModel | None:
        """The function's cost model, refitted when new calls were recorded; ``None`` if too few."""
        obs = self.store.observations(function)
        if len(obs) < MIN_RUNS:
            return None
        key = (function, len(obs))
        with self._lock:
            if key not in self._models:
                self._models[key] = fit_cost_model(obs, coverage=self.coverage)
            return self._models[key]

    # -- planning -------------------------------------------------------------------------
    def plan(
        self,
        function: str | Callable[..., Any],
        total_bytes: int,
        *,
        workers: int | None = None,
        fixed_workers: bool = False,
        model: CostModel | None = None,
    ) -> Plan:
        """Choose slices and workers for ``total_bytes`` of input to ``function``.

        ``workers``: how many are available (default: the profile's); with ``fixed_workers``
        the plan uses exactly that many (an executor whose pool is already started).
        """
        name = function if isinstance(function, str) else function_name(function)
        if total_bytes < 0:
            raise ConfigError(f"total_bytes must be >= 0, not {total_bytes}")
        profile = self.profile or BackendProfile("local", os.cpu_count() or 1)
        if workers is not None:
            profile = replace(profile, workers=workers)
        explore = model is None
        model = model or self.model_for(name)
        max_n = max(1, min(self.max_slices, total_bytes // self.min_slice_bytes))
        if model is None:
            return self._default_plan(name, total_bytes, profile, max_n)
        only = None
        if explore:
            sizes = self.store.observations(name).input_bytes
            only = _exploration(sizes[sizes > 0], total_bytes, profile.workers, max_n)
        return self._model_plan(name, total_bytes, profile, max_n, model, fixed_workers, only)

    def _default_plan(self, name: str, total_bytes: int, profile: BackendProfile, max_n: int) -> Plan:
        slices = max(1, min(2 * profile.workers, max_n))
        return Plan(
            name,
            total_bytes,
            slices,
            profile.workers,
            math.nan,
            math.nan,
            math.nan,
            self.objective,
            "default",
            profile,
            self.memory_limit,
            reason=f"fewer than {MIN_RUNS} recorded calls of this function: the default plan, 2 slices "
            f"per worker, slices of at least {self.min_slice_bytes / 1e6:.3g} MB; its calls are recorded",
        )

    def _model_plan(
        self,
        name: str,
        total_bytes: int,
        profile: BackendProfile,
        max_n: int,
        model: CostModel,
        fixed: bool,
        only: int | None = None,
    ) -> Plan:
        n = np.arange(1, max_n + 1, dtype=np.float64)
        size = total_bytes / n
        peak = _line(model.peak_rss, size, model.peak_rss.half_width)
        spread = duration_spread(model)
        feasible = peak <= self.memory_limit if self.memory_limit is not None else np.ones_like(n, dtype=bool)
        if not feasible.any():
            smallest = size[-1]
            raise InfeasiblePlan(
                f"{name}: memory limit {self.memory_limit / 2**20:.0f} MiB per worker is below the predicted peak "  # type: ignore[operator]
                f"of the smallest slice ({smallest / 1e6:.3g} MB, {max_n} slices): {peak[-1] / 2**20:.0f} MiB "
                f"at {model.peak_rss.coverage:.0%} (raise the limit or allow smaller slices: min_slice_bytes)"
            )
        w_range = np.array([profile.workers] if fixed else range(1, profile.workers + 1), dtype=np.float64)
        nn, ww = np.meshgrid(n, w_range, indexing="ij")
        t = completion_time(model, profile, total_bytes, nn, ww)
        ws = ww * t
        score = self.objective.time_weight * t + self.objective.cost_weight * ws
        score[~feasible, :] = np.inf
        explored = False
        if only is not None and feasible[only - 1]:
            score[np.arange(max_n) != only - 1, :] = np.inf
            explored = True
        # deterministic: smallest score, then fewest workers, then fewest slices (rounded to 1e-9 s)
        keys = np.lexsort((nn.ravel(), ww.ravel(), np.round(score.ravel(), 9)))
        cands = [
            Candidate(
                int(nn.flat[k]),
                int(ww.flat[k]),
                float(t.flat[k]),
                float(ws.flat[k]),
                float(peak[int(nn.flat[k]) - 1]),
                float(score.flat[k]),
            )
            for k in keys[:4]
            if np.isfinite(score.flat[k])
        ]
        best = cands[0]
        bound = "" if self.memory_limit is None else f"; memory allows >= {int(n[feasible][0])} slices"
        reason = (
            f"minimises {self.objective} over 1..{max_n} slices x "
            f"{'exactly ' if fixed else '1..'}{profile.workers} workers{bound}; "
            f"spread of call durations {spread:.0%} "
            f"{'within a map' if model.duration_spread is not None else '(held-out MAPE: no map of 2 calls)'} "
            "(the last wave's tail)"
        )
        if explored:
            reason = (
                f"exploring: the recorded calls span less than {EXPLORE_RATIO:g}x in input size, too narrow to "
                f"tell a call's fixed cost from its cost per byte; {best.slices} slices give a new size"
            )
        return Plan(
            name,
            total_bytes,
            best.slices,
            best.workers,
            best.time,
            best.worker_seconds,
            best.peak_rss,
            self.objective,
            "explore" if explored else "model",
            profile,
            self.memory_limit,
            model,
            tuple(cands[1:]),
            reason,
        )

    # -- learning -------------------------------------------------------------------------
    def learn(
        self,
        function: str,
        futures: Iterable[ResponseFuture],
        input_bytes: list[int] | None,
        *,
        meta_dir: str | None = None,
        plan: Plan | None = None,
    ) -> None:
        """Record the futures' telemetry under ``function`` once all are done (callbacks, no waiting)."""
        fs = list(futures)
        pending = [len(fs)]
        rows: list[TaskTelemetry] = []
        lock = threading.Lock()

        def done(f: ResponseFuture) -> None:
            t = f.telemetry
            with lock:
                if t is not None:
                    rows.append(t)
                pending[0] -= 1
                if pending[0]:
                    return
            self.store.add(rows, function=function, input_bytes=input_bytes)
            if meta_dir and rows:
                try:
                    write_job_meta(
                        meta_dir,
                        rows[0].job_id,
                        function=function,
                        input_bytes=input_bytes or [r.bytes_read for r in rows],
                        plan=plan.to_dict() if plan else None,
                    )
                except OSError:
                    log.warning("could not write the plan sidecar of %s to %s", rows[0].job_id, meta_dir)

        for f in fs:
            f.add_done_callback(done)

    # -- the executor hook ----------------------------------------------------------------
    def map(
        self, fexec: FunctionExecutor, map_function: Callable[..., Any], map_iterdata: Any, **kwargs: Any
    ) -> FuturesList:
        """``fexec.map`` with the slicing chosen by this planner (see :func:`planned_map`)."""
        return planned_map(fexec, self, map_function, map_iterdata, **kwargs)


def _line(fit: LineFit, size: FloatArray, extra: float) -> FloatArray:
    """Vectorised ``fit.predict(size).mean (+ extra)``, clipped at 0 (records unknown here: 0)."""
    out: FloatArray = np.maximum(0.0, fit.intercept + fit.coef[0] * size) + extra
    return out


def completion_time(
    model: CostModel, profile: BackendProfile, total_bytes: float, slices: FloatArray, workers: FloatArray
) -> FloatArray:
    """Predicted seconds of ``total_bytes`` in ``slices`` equal slices on ``workers`` (see the module doc).

    Example:
        >>> import numpy as np
        >>> from xtremehub.optimizer.store import Observations
        >>> x = np.repeat([1e6, 4e6, 1.6e7], 4)
        >>> obs = Observations("f", x, None, 0.01 + 1e-8 * x, 1e-8 * x, 5e7 + 0 * x, ("local",) * 12)
        >>> m = fit_cost_model(obs)
        >>> t = completion_time(m, BackendProfile("local", 2), 1.6e8, np.array([2.0, 8.0]), np.array([2.0, 2.0]))
        >>> [round(float(v), 3) for v in t]  # 0.01 s and 5 ms per slice: 4 waves cost 3 x 15 ms more
        [0.815, 0.86]
    """
    call = _line(model.duration, total_bytes / slices, 0.0)
    tail = duration_spread(model) * _expected_max(np.minimum(slices, workers)) * call
    fixed = profile.startup_s + profile.per_job_s
    out: FloatArray = fixed + np.ceil(slices / workers) * (call + profile.per_task_s) + tail
    return out


def duration_spread(model: CostModel) -> float:
    """The relative spread of a call's duration within a map, at most 1.

    The cost model's :attr:`~xtremehub.optimizer.costmodel.CostModel.duration_spread` (measured
    among calls of the same job); the duration line's held-out MAPE when no job had two calls.
    """
    value = model.duration_spread if model.duration_spread is not None else model.duration.heldout_mape
    return min(1.0, value) if math.isfinite(value) else 0.0


_NORMAL = statistics.NormalDist()


def _expected_max(m: FloatArray) -> FloatArray:
    """Expected largest of ``m`` standard normal deviates (Blom: ``inv_cdf((m - 0.375) / (m + 0.25))``)."""
    ks = m.astype(np.int64)
    table = {int(k): _NORMAL.inv_cdf((k - 0.375) / (k + 0.25)) for k in np.unique(ks)}
    out: FloatArray = np.vectorize(table.__getitem__, otypes=[np.float64])(ks)
    return out


def _exploration(sizes: FloatArray, total_bytes: int, workers: int, max_n: int) -> int | None:
    """The slice count to try next while the recorded sizes span less than :data:`EXPLORE_RATIO`."""
    if sizes.size == 0 or total_bytes <= 0 or sizes.max() >= EXPLORE_RATIO * sizes.min():
        return None
    logs = np.log(np.unique(sizes))
    options = sorted({min(max_n, workers * k) for k in (1, 2, 4, 8)})
    distance = [float(np.min(np.abs(math.log(total_bytes / k) - logs))) for k in options]
    best = options[int(np.argmax(distance))]  # the first of equals: the fewest slices
    return best if max(distance) > math.log(2) - 1e-9 else None


_DEFAULT: Planner | None = None
_PROFILES: dict[tuple[str, int], BackendProfile] = {}


def default_planner() -> Planner:
    """The process-wide planner behind ``plan="auto"`` (an in-memory store)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Planner()
    return _DEFAULT


def _noop(x: int) -> int:
    return x


def measure_backend(fexec: FunctionExecutor, calls_per_worker: int = 4, repeats: int = 3) -> BackendProfile:
    """Measure start-up, per-job and per-task overhead of ``fexec``'s backend with no-op maps (cached).

    Start-up is the extra time of the first map (starting the workers). Then maps of one
    wave (one call per worker) and of ``calls_per_worker`` waves run ``repeats`` times each,
    alternating; from the fastest of each kind (noise only adds), each extra wave costs
    ``per_task = (T_waves - T_one) / (calls_per_worker - 1)`` and what is left of the one-wave
    map is the per-job cost (submitting the map, collecting its results), which does not
    grow with the number of slices: ``per_job = T_one - per_task``. Both are at least 0.
    """
    if calls_per_worker < 2 or repeats < 1:
        raise ConfigError("measure_backend needs calls_per_worker >= 2 and repeats >= 1")
    workers = max(1, int(fexec.backend.workers or 1))
    key = (fexec.backend.name, workers)
    if key in _PROFILES:
        return _PROFILES[key]

    def wall(calls: int) -> float:
        t0 = time.perf_counter()
        fexec.get_result(fexec.map(_noop, list(range(calls))))
        return time.perf_counter() - t0

    first = wall(calls_per_worker * workers)
    one, many = [], []
    for _ in range(repeats):
        one.append(wall(workers))
        many.append(wall(calls_per_worker * workers))
    per_task = max(0.0, (min(many) - min(one)) / (calls_per_worker - 1))
    per_job = max(0.0, min(one) - per_task)
    profile = BackendProfile(fexec.backend.name, workers, max(0.0, first - min(many)), per_task, per_job)
    log.info("backend %s, %d workers: %s", fexec.backend.name, workers, profile)
    _PROFILES[key] = profile
    return profile


def _object_urls(func: Callable[..., Any], iterdata: Any) -> list[str] | None:
    try:
        wants_obj = "obj" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return None
    if isinstance(iterdata, str | os.PathLike):
        iterdata = [os.fspath(iterdata)]
    if wants_obj and isinstance(iterdata, list | tuple) and iterdata and all(isinstance(i, str) for i in iterdata):
        return list(iterdata)
    return None


def planned_map(
    fexec: FunctionExecutor, plan: str | Planner, map_function: Callable[..., Any], map_iterdata: Any, **kwargs: Any
) -> FuturesList:
    """Run ``fexec.map`` with slices chosen by a planner (``plan="auto"``: :func:`default_planner`).

    Object URLs given to a function with an ``obj`` parameter are cut into the planned
    number of slices (``obj_chunk_size``); the executor's pool is already sized, so the
    plan uses its workers. Other inputs keep their items; their calls are recorded so
    the function gets a model. The plan is ``futures.plan`` and logged at INFO.
    """
    from xtremehub.compute.partitioner import partition_objects

    if plan == "auto":
        planner = default_planner()
    elif isinstance(plan, Planner):
        planner = plan
    else:
        raise ConfigError(f"plan must be 'auto' or a Planner, not {plan!r}")
    if kwargs.get("obj_chunk_size") is not None or kwargs.get("obj_chunk_number") is not None:
        raise ConfigError("give plan= or obj_chunk_size/obj_chunk_number, not both")
    name = function_name(map_function)
    urls = _object_urls(map_function, map_iterdata)
    chosen: Plan | None = None
    sizes: list[int] | None = None
    if urls is not None:
        urls = [fexec._object_url(u) for u in urls]
        total = sum(p.size for p in partition_objects(urls, settings=fexec.settings, newline=None))
        if planner.profile is None:
            planner.profile = measure_backend(fexec)
        chosen = planner.plan(name, total, workers=int(fexec.backend.workers or 1), fixed_workers=True)
        kwargs["obj_chunk_size"] = chosen.slice_bytes
        parts = partition_objects(urls, settings=fexec.settings, chunk_size=chosen.slice_bytes, newline=None)
        sizes = [p.data_byte_range[1] - p.data_byte_range[0] + 1 for p in parts]
        log.info("%s", chosen.explain())
    futures = fexec.map(map_function, map_iterdata, **kwargs)
    futures.plan = chosen  # type: ignore[attr-defined]
    tdir = fexec.settings.telemetry.dir
    meta_dir = tdir if tdir and "://" not in str(tdir) and Path(tdir).is_dir() else None
    planner.learn(name, futures, sizes, meta_dir=meta_dir, plan=chosen)
    return futures
