"""``fexec.map(..., plan=...)`` slices object URLs as planned and learns from the calls."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from xtremehub import FunctionExecutor
from xtremehub.compute import ObjectPart
from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.optimizer import BackendProfile, Planner, TelemetryStore, measure_backend
from xtremehub.optimizer.planner import function_name


def count_lines(obj: ObjectPart) -> int:
    return obj.read().count(b"\n")


def _wait_learned(planner: Planner, name: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(planner.store.observations(name)) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_plan_auto_slices_and_learns(tmp_path: Path) -> None:
    data = tmp_path / "lines.txt"
    data.write_bytes(b"".join(b"%08d some text to scan\n" % i for i in range(100_000)))  # 3 MB
    settings = Settings.load(config_file=None, telemetry={"dir": str(tmp_path / "tel")})
    (tmp_path / "tel").mkdir()
    planner = Planner(TelemetryStore(), profile=BackendProfile("local", 2, 0.0, 0.002), min_slice_bytes=100_000)
    name = function_name(count_lines)
    with FunctionExecutor(max_workers=2, settings=settings, progress=False) as fexec:
        first = fexec.map(count_lines, str(data), plan=planner)
        assert sum(fexec.get_result(first)) == 100_000
        assert first.plan.source == "default"
        assert len(first) == first.plan.slices == 4
        _wait_learned(planner, name, 4)
        second = fexec.map(count_lines, str(data), plan=planner)
        assert sum(fexec.get_result(second)) == 100_000
        _wait_learned(planner, name, 8)
        # every call so far had the same size: the planner explores a slicing 4x finer (8 per worker)
        third = fexec.map(count_lines, str(data), plan=planner)
        assert sum(fexec.get_result(third)) == 100_000
        assert third.plan.source == "explore"  # type: ignore[attr-defined]
        assert len(third) == third.plan.slices == 16  # type: ignore[attr-defined]
        assert "exploring" in third.plan.explain()  # type: ignore[attr-defined]
        _wait_learned(planner, name, 24)
        fourth = fexec.map(count_lines, str(data), plan=planner)
        assert sum(fexec.get_result(fourth)) == 100_000
        plan = fourth.plan  # type: ignore[attr-defined]
        assert plan.source == "model"
        assert plan.workers == 2
        assert len(fourth) == plan.slices
    store = TelemetryStore()
    assert store.load(tmp_path / "tel") >= 8
    assert name in store.functions()  # the plan sidecar named the function
    assert sum(j.input_bytes for j in store.jobs(name)) >= 2 * data.stat().st_size


def _noop(x: int) -> int:
    return x


def test_plan_auto_on_plain_items_keeps_them_and_bad_arguments() -> None:
    with FunctionExecutor(max_workers=2, progress=False) as fexec:
        fs = fexec.map(_noop, [1, 2, 3], plan="auto")
        assert fexec.get_result(fs) == [1, 2, 3]
        assert fs.plan is None
        with pytest.raises(ConfigError, match="plan must be"):
            fexec.map(_noop, [1], plan="fast")
        with pytest.raises(ConfigError, match="not both"):
            fexec.map(count_lines, "/tmp", plan="auto", obj_chunk_number=2)
        profile = measure_backend(fexec)
        assert profile.workers == 2
        assert 0 <= profile.per_task_s < 1.0
        assert 0 < profile.per_job_s + profile.per_task_s < 1.0
        assert measure_backend(fexec) is profile  # cached per backend and pool size
