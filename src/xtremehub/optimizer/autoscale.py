"""Pre-scaling a live backend from a load forecast: the policies of :mod:`.simulator`, applied.

A :class:`Prescaler` counts the load of each window (tasks submitted, events written...),
asks a :class:`~xtremehub.optimizer.simulator.Policy` how many workers the *next* window needs
(a :class:`~xtremehub.optimizer.simulator.ForecastPolicy` looks one and two windows ahead, so
workers started now are up before a burst) and hands the number to a :class:`ScalingTarget`:

- :class:`DaskClusterTarget`: ``cluster.scale(n)`` of a ``distributed`` cluster (LocalCluster,
  Kubernetes, Slurm...);
- :class:`StreamSegmentsTarget`: splits the input stream's widest segments until it has ``n``;
  a :class:`~xtremehub.streams.processing.StreamProcessor` follows the segment count with its
  workers, so this pre-scales a stream processing job (scaling down is left to the stream's
  own policy, which merges segments once the rate stays low).

Scaling up is applied at once; scaling down only after ``scale_down_windows`` windows agree
(the same hysteresis as the stream processor's ``scale_down_delay``).

Example:
    >>> import numpy as np
    >>> from xtremehub.optimizer.simulator import ReactivePolicy, ScalingRule
    >>> class Recorder:
    ...     name, workers = "recorder", 1
    ...     def current(self): return self.workers
    ...     def scale_to(self, n): self.workers = n
    >>> rule = ScalingRule(task_seconds=1.0, window_seconds=10.0, utilisation=1.0, max_workers=8)
    >>> scaler = Prescaler(ReactivePolicy(rule), Recorder())
    >>> [scaler.end_window(n) for n in (5, 40, 70, 10)]
    [1, 4, 7, 7]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from xtremehub.errors import ConfigError
from xtremehub.optimizer.simulator import Policy

__all__ = ["DaskClusterTarget", "Prescaler", "ScalingDecision", "ScalingTarget", "StreamSegmentsTarget"]

log = logging.getLogger(__name__)


class ScalingTarget(Protocol):
    """Something whose worker count can be set while it runs."""

    name: str

    def current(self) -> int:
        """Workers (or segments) now."""
        ...

    def scale_to(self, workers: int) -> None:
        """Ask for ``workers``; may take effect later (workers start asynchronously)."""
        ...


@dataclass(frozen=True)
class ScalingDecision:
    """What the prescaler decided at the end of one window."""

    window: int
    observed: int
    expected_next: float
    wanted: int
    applied: int


class Prescaler:
    """Turns per-window load into worker counts on a :class:`ScalingTarget`.

    Args:
        policy: decides the workers of the next window from the counts so far.
        target: what to scale.
        history: counts of past windows (a forecaster needs its lags: two seasons and a week
            for :class:`~xtremehub.optimizer.forecast.LaggedRegression`).
        scale_down_windows: windows a lower count must last before it is applied.
    """

    def __init__(
        self,
        policy: Policy,
        target: ScalingTarget,
        *,
        history: Any = (),
        scale_down_windows: int = 2,
    ) -> None:
        if scale_down_windows < 1:
            raise ConfigError(f"scale_down_windows must be >= 1, not {scale_down_windows}")
        self.policy, self.target, self.scale_down_windows = policy, target, scale_down_windows
        self.counts: list[int] = [int(c) for c in np.asarray(history, dtype=np.int64)]
        self.decisions: list[ScalingDecision] = []
        self._lower_for = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def expected_next(self) -> float:
        """Tasks the policy expects in the coming window (from the counts seen so far)."""
        if not self.counts:
            return 0.0
        counts = np.append(np.asarray(self.counts, dtype=np.int64), 0)  # the window to come
        return float(self.policy.expected(counts, len(self.counts))[0])

    def end_window(self, observed: int) -> int:
        """Record the load of the window that just ended; scale for the next; the workers asked for."""
        self.counts.append(int(observed))
        expected = self.expected_next()
        wanted = self.policy.workers(expected, 0)
        now = self.target.current()
        applied = now
        if wanted > now:
            applied, self._lower_for = wanted, 0
        elif wanted < now:
            self._lower_for += 1
            if self._lower_for >= self.scale_down_windows:
                applied, self._lower_for = wanted, 0
        else:
            self._lower_for = 0
        if applied != now:
            log.info(
                "%s: %d -> %d workers (window %d: %d seen, %.1f expected next)",
                self.target.name,
                now,
                applied,
                len(self.counts) - 1,
                observed,
                expected,
            )
            self.target.scale_to(applied)
        self.decisions.append(ScalingDecision(len(self.counts) - 1, int(observed), expected, wanted, applied))
        return applied

    # -- running on a clock -------------------------------------------------------------------
    def start(self, observe: Callable[[], int], window_seconds: float) -> Prescaler:
        """Call ``observe()`` (the load since its last call) every ``window_seconds`` in a thread."""
        if window_seconds <= 0:
            raise ConfigError(f"window_seconds must be > 0, not {window_seconds}")

        def run() -> None:
            deadline = time.monotonic() + window_seconds
            while not self._stop.wait(max(0.0, deadline - time.monotonic())):
                deadline += window_seconds
                try:
                    self.end_window(observe())
                except Exception:  # a failed observation or scale call must not kill the loop
                    log.exception("%s: prescaling step failed", self.target.name)

        self._stop.clear()
        self._thread = threading.Thread(target=run, name=f"xhub-prescaler-{self.target.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the clock thread (the target keeps its current size)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class DaskClusterTarget:
    """A ``distributed`` cluster object with ``scale(n)`` and ``workers`` (LocalCluster, ...)."""

    name = "dask"

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def current(self) -> int:
        return len(self.cluster.worker_spec)

    def scale_to(self, workers: int) -> None:
        self.cluster.scale(workers)


class StreamSegmentsTarget:
    """An input stream's segment count: splits its widest active segments up to ``n``.

    Splitting is exact and online (the controller seals the old segment and opens two halves of
    its routing-key range); readers and processors follow the successors.
    """

    def __init__(self, manager: Any, scope: str, stream: str) -> None:
        self.manager, self.scope, self.stream = manager, scope, stream
        self.name = f"stream {scope}/{stream}"

    def current(self) -> int:
        return len(self.manager.get_stream(self.scope, self.stream).active_segments)

    def scale_to(self, workers: int) -> None:
        controller = self.manager.controller
        while True:
            active = self.manager.get_stream(self.scope, self.stream).active_segments
            if len(active) >= workers:
                return
            widest = max(active, key=lambda s: s.key_high - s.key_low)
            middle = (widest.key_low + widest.key_high) / 2
            controller.scale_stream(
                self.scope,
                self.stream,
                [widest.name],
                [(widest.key_low, middle), (middle, widest.key_high)],
            )
