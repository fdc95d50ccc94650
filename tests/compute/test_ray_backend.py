"""The executor on a real local Ray instance: the conformance suite, the shared checks, Ray specifics."""

from __future__ import annotations

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
