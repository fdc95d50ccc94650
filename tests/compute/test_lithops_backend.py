"""The executor on Lithops's localhost backend: the conformance suite, shared checks, Lithops specifics.

Lithops starts about 0.3 s of processes per call here: task counts stay small.
"""

from __future__ import annotations

from typing import Any

import lithops
import pytest
from backend_checks import BackendChecks

from xtremehub import FunctionExecutor
from xtremehub.errors import ConfigError
from xtremehub.testing.executor import ExecutorTests, square
from xtremehub.testing.seaweedfs import SeaweedFS

pytestmark = [pytest.mark.lithops, pytest.mark.slow]


class TestLithopsExecutor(ExecutorTests, BackendChecks):
    backend = "lithops"

    @pytest.fixture
    def make_executor(self, lithops_config: dict[str, Any], seaweedfs: SeaweedFS, monkeypatch: Any) -> Any:
        # Lithops's localhost backend starts its function processes per call, from this environment.
        for name, value in seaweedfs.env().items():
            monkeypatch.setenv(name, value)

        def make(**kwargs: Any) -> FunctionExecutor:
            return FunctionExecutor("lithops", config=lithops_config, **kwargs)

        return make


def test_a_lithops_executor_object_is_used_as_it_is(lithops_config: dict[str, Any]) -> None:
    lexec = lithops.FunctionExecutor(config=lithops_config)
    with FunctionExecutor(lexec) as fexec:
        assert fexec.backend.name == "lithops"
        assert fexec.get_result(fexec.map(square, [3, 4], chunksize=2)) == [9, 16]
    # still usable: closing ours did not clean up the user's Lithops executor
    assert lexec.get_result(lexec.map(square, [5])) == [25]


def test_executor_and_config_together_are_refused(lithops_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="either an executor or a config"):
        FunctionExecutor("lithops", executor=object(), config=lithops_config)
