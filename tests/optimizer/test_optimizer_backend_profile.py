"""``measure_backend`` tells a map's fixed cost from the cost of each extra wave of calls."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pytest

from xtremehub import FunctionExecutor
from xtremehub.errors import ConfigError
from xtremehub.optimizer import measure_backend

JOB_S, WAVE_S, START_S = 0.2, 0.05, 0.3  # known costs of the timed backend below (sleeps only overshoot)


@dataclass
class _Backend:
    name: str
    workers: int


class _TimedBackend:
    """An executor whose maps take ``JOB_S + waves * WAVE_S`` seconds (no-op calls, known overheads)."""

    def __init__(self, name: str, workers: int) -> None:
        self.backend = _Backend(name, workers)
        self.maps = 0

    def map(self, func: Any, items: list[int]) -> list[int]:
        self.maps += 1
        time.sleep(JOB_S + math.ceil(len(items) / self.backend.workers) * WAVE_S + (START_S if self.maps == 1 else 0))
        return [func(i) for i in items]

    def get_result(self, fs: list[int]) -> list[int]:
        return fs


def test_per_job_and_per_task_costs_are_separated() -> None:
    fexec = _TimedBackend("timed-test", 2)
    profile = measure_backend(fexec, calls_per_worker=4, repeats=3)  # type: ignore[arg-type]
    assert profile.per_task_s == pytest.approx(WAVE_S, abs=0.015)
    assert profile.per_job_s == pytest.approx(JOB_S, abs=0.04)  # not spread over the calls as per-task cost
    assert profile.startup_s == pytest.approx(START_S, abs=0.08)  # the first map's extra
    assert fexec.maps == 1 + 2 * 3
    assert measure_backend(fexec) is profile  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="calls_per_worker"):
        measure_backend(_TimedBackend("timed-bad", 2), calls_per_worker=1)  # type: ignore[arg-type]


def test_local_backend_overheads_are_small_and_non_negative() -> None:
    with FunctionExecutor(max_workers=2, progress=False) as fexec:
        profile = measure_backend(fexec)
    assert profile.per_job_s >= 0
    assert 0 <= profile.per_task_s < 0.05
    assert 0 < profile.per_job_s + profile.per_task_s < 0.5
