"""Pre-scaling live backends from forecasts: a real Dask LocalCluster and a real stream's segments."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xtremehub.optimizer.autoscale import DaskClusterTarget, Prescaler, StreamSegmentsTarget
from xtremehub.optimizer.forecast import LaggedRegression
from xtremehub.optimizer.simulator import ForecastPolicy, ReactivePolicy, ScalingRule
from xtremehub.streams import StreamManager

RULE = ScalingRule(task_seconds=1.0, window_seconds=10.0, utilisation=1.0, max_workers=6)
DAY, BURST_HOUR = 24, 12


def daily_bursts(days: int, seed: int = 3) -> np.ndarray:
    """10 +- noise tasks per hour, 55 at noon: a burst the history predicts."""
    rng = np.random.default_rng(seed)
    y = 10 + rng.integers(-2, 3, days * DAY)
    y[BURST_HOUR::DAY] = 55
    return y


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.workers = 1

    def current(self) -> int:
        return self.workers

    def scale_to(self, workers: int) -> None:
        self.workers = workers


def replay(scaler: Prescaler, load: np.ndarray) -> list[int]:
    """Workers in place at the start of each window of ``load``."""
    ready = []
    for count in load:
        ready.append(scaler.target.current())
        scaler.end_window(int(count))
    return ready


def test_forecast_scales_up_before_the_burst_reactive_after() -> None:
    y = daily_bursts(12)
    train, future = y[: 10 * DAY], y[10 * DAY :]
    need = [RULE.workers_for(c) for c in future]
    forecast = Prescaler(
        ForecastPolicy(RULE, LaggedRegression("linear").fit(train.astype(float))), Recorder(), history=train
    )
    reactive = Prescaler(ReactivePolicy(RULE), Recorder(), history=train)
    f_ready, r_ready = replay(forecast, future), replay(reactive, future)
    bursts = [i for i, c in enumerate(future) if c == 55]
    assert bursts
    assert all(f_ready[i] >= need[i] for i in bursts)  # up before each burst
    assert all(r_ready[i] < need[i] for i in bursts)  # the reactive policy is always one window late
    # and the forecast does not simply keep the maximum: it scales down between bursts
    assert min(f_ready[bursts[0] + 3 : bursts[0] + 10]) < max(need)


def test_scale_down_waits_for_the_hysteresis() -> None:
    scaler = Prescaler(ReactivePolicy(RULE), Recorder(), scale_down_windows=3)
    assert [scaler.end_window(n) for n in (60, 10, 10, 10, 10)] == [6, 6, 6, 1, 1]
    assert [d.wanted for d in scaler.decisions] == [6, 1, 1, 1, 1]


@pytest.mark.dask
def test_prescales_a_real_dask_cluster() -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        y = daily_bursts(11)
        history, upto_burst = y[: 10 * DAY], y[10 * DAY : 10 * DAY + BURST_HOUR]
        policy = ForecastPolicy(RULE, LaggedRegression("linear").fit(history.astype(float)))
        scaler = Prescaler(policy, DaskClusterTarget(cluster), history=history)
        for count in upto_burst:  # the quiet morning: the burst window comes next
            scaler.end_window(int(count))
        wanted = RULE.workers_for(55)
        client.wait_for_workers(wanted, timeout=60)
        workers = client.scheduler_info()["workers"]
        assert len(workers) >= wanted > 1
        ran_on = set(client.run(lambda: 1))  # every worker answers: they are up, not just asked for
        assert len(ran_on) == len(workers)
        for count in y[10 * DAY + BURST_HOUR : 10 * DAY + BURST_HOUR + 4]:  # the burst passes
            scaler.end_window(int(count))
        assert DaskClusterTarget(cluster).current() < wanted


def test_prescales_a_streams_segments(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "streams", lts_flush_delay=0.0) as manager:
        manager.create_scope("icu")
        manager.create_stream("icu", "video")
        with manager.create_writer("icu", "video") as writer:
            for i in range(20):
                writer.write_event(b"before %d" % i, routing_key=f"cam-{i % 4}")
            target = StreamSegmentsTarget(manager, "icu", "video")
            Prescaler(ReactivePolicy(RULE), target).end_window(38)  # 38 tasks of 1 s per 10 s: 4 workers
            active = manager.get_stream("icu", "video").active_segments
            assert len(active) == 4 == target.current()
            ranges = sorted((s.key_low, s.key_high) for s in active)
            assert ranges[0][0] == 0.0
            assert ranges[-1][1] == 1.0
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            for i in range(20):
                writer.write_event(b"after %d" % i, routing_key=f"cam-{i % 4}")
        reader = manager.create_reader_group("all", "icu", ["video"]).create_reader("r")
        seen: list[Any] = []
        while (event := reader.read_next(timeout=1.0)) is not None:
            seen.append(event.data)
        assert sorted(seen) == sorted([b"before %d" % i for i in range(20)] + [b"after %d" % i for i in range(20)])
