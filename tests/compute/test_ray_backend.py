"""The executor on a real local Ray instance: the conformance suite, the shared checks, Ray specifics."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from backend_checks import BackendChecks

from xtremehub import FunctionExecutor
from xtremehub.compute import create_backend
from xtremehub.testing.executor import ExecutorTests, square

pytestmark = pytest.mark.ray


class TestRayExecutor(ExecutorTests, BackendChecks):
    backend = "ray"
    reports_exit_cause = False  # Ray only reports that the worker died

    @pytest.fixture
    def make_executor(self, ray_engine: Any) -> Any:
        def make(**kwargs: Any) -> FunctionExecutor:
            return FunctionExecutor("ray", **kwargs)

        return make


def test_a_ray_connection_the_user_made_is_left_open(ray_engine: Any) -> None:
    backend = create_backend("ray")
    with FunctionExecutor(backend) as fexec:
        assert fexec.backend is backend
        assert fexec.get_result(fexec.map(square, [1, 2, 3], chunksize=2)) == [1, 4, 9]
        assert fexec.backend.workers == 2  # the session instance's CPUs
    assert ray_engine.is_initialized()
    with FunctionExecutor("ray", address="auto") as fexec:  # connected already: the address is not re-dialled
        assert fexec.call_async(square, 5).result(timeout=60) == 25
    assert ray_engine.is_initialized()


def test_an_unpicklable_argument_fails_the_whole_map_before_anything_runs(ray_engine: Any, tmp_path: Path) -> None:
    ran = tmp_path / "first-call-ran"

    def touch(target: Any) -> Any:  # nested: goes by value (the workers cannot import this test module)
        if isinstance(target, Path):
            target.write_text("ran")
        return target

    with FunctionExecutor("ray") as fexec:
        with pytest.raises(TypeError):
            fexec.map(touch, [ran, threading.Lock()], chunksize=1)
        # Two later tasks of the same function run to the end: a first batch already handed to Ray
        # would have been given a worker before them (Ray leases workers to one function's tasks in
        # the order they were submitted), and touching a file takes microseconds.
        assert fexec.get_result(fexec.map(touch, [1, 2], chunksize=1)) == [1, 2]
        assert not ran.exists()
        assert fexec.get_result(fexec.map(touch, [ran, 2], chunksize=1)) == [ran, 2]
        assert ran.read_text() == "ran"  # the same function does run once its arguments can travel
