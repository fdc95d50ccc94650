"""The executor on Lithops's localhost backend: the conformance suite, shared checks, Lithops specifics.

Lithops starts about 0.3 s of processes per call here: task counts stay small.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import lithops
import psutil
import pytest
from backend_checks import BackendChecks
from lithops.constants import RN_LOG_FILE

from xtremehub import FunctionExecutor
from xtremehub.compute.backends._lithops_watch import GRACE_SECONDS
from xtremehub.errors import ConfigError, WorkerDied
from xtremehub.testing.executor import (
    ExecutorTests,
    kill_parent_and_linger,
    kill_task_process,
    sleep_then,
    square,
)
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


# -- activations whose task process died: Lithops itself only logs them -------------------------
#: A lost activation is reported this soon after it is invoked (Lithops starts a task process in
#: about half a second, the runner's function process in some more; the grace follows its death).
PROMPT = 10.0 + GRACE_SECONDS


def test_a_dead_task_process_fails_its_call_promptly_and_a_slow_live_one_runs_on(
    lithops_config: dict[str, Any],
) -> None:
    with FunctionExecutor("lithops", config=lithops_config) as fexec:
        slow = fexec.map(sleep_then, [(4 * GRACE_SECONDS + 2, "slow")])[0]  # no timeout anywhere
        _assert_lost_promptly(fexec, kill_task_process, None, "died before reporting \\(killed by SIGKILL")
        assert not slow.done  # still running, and alive: not reported lost
        assert slow.result(timeout=60) == "slow"
        assert fexec.get_result(fexec.map(square, [2, 3, 4]), timeout=60) == [4, 9, 16]  # still usable


def test_a_killed_task_process_takes_the_function_process_it_left_with_it(
    lithops_config: dict[str, Any], tmp_path: Path
) -> None:
    pid_file = tmp_path / "function.pid"
    with FunctionExecutor("lithops", config=lithops_config) as fexec:
        _assert_lost_promptly(fexec, kill_parent_and_linger, str(pid_file), "killed by SIGKILL")  # lingers 60 s
        orphan = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while _runs(orphan) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _runs(orphan), "the function process outlived its killed task process"
        # Lithops's worker slots are free again: both run at once
        assert fexec.get_result(fexec.map(sleep_then, [(0.5, 1), (0.5, 2)]), timeout=60) == [1, 2]


def test_a_runner_that_cannot_run_its_task_fails_the_call_with_its_exit_code(
    lithops_config: dict[str, Any], tmp_path: Path
) -> None:
    # What a runner or task file broken by another run in /tmp/lithops-$USER does: the task
    # process exits with an error before the function starts (here after half a second, as a
    # runner failing on its imports does), and Lithops only logs it.
    runtime = tmp_path / "broken-runner"
    fail = f'"{sys.executable}" -c "import sys, time; time.sleep(0.5); sys.exit(3)"'
    runtime.write_text(f'#!/bin/sh\n[ "$2" = run_job ] && exec {fail}\nexec "{sys.executable}" "$@"\n')
    runtime.chmod(0o755)
    lithops_config["localhost"]["runtime"] = str(runtime)
    with FunctionExecutor("lithops", config=lithops_config) as fexec:
        t0 = time.monotonic()
        futures = fexec.map(square, [1, 2, 3])
        for future in futures:
            with pytest.raises(WorkerDied, match="exit code 3") as info:
                future.result(timeout=60)
            assert future.call_key in str(info.value)
            assert RN_LOG_FILE in str(info.value)
        assert time.monotonic() - t0 < PROMPT


def test_retries_recover_a_dead_task_process(lithops_config: dict[str, Any], tmp_path: Path) -> None:
    with FunctionExecutor("lithops", config=lithops_config, retries=1) as fexec:
        future = fexec.call_async(kill_task_process, str(tmp_path / "marker"))
        assert future.result(timeout=60) == "survived"
        assert future.stats["attempts"] == 2


def test_a_dead_job_process_fails_its_calls_on_localhost_v1(lithops_config: dict[str, Any]) -> None:
    # Lithops's localhost v1 runs a whole job in one process: its death fails every unreported call.
    lithops_config["localhost"]["version"] = 1
    with FunctionExecutor("lithops", config=lithops_config) as fexec:
        _assert_lost_promptly(fexec, kill_task_process, None, "died before reporting")
        assert fexec.call_async(square, 6).result(timeout=60) == 36


def _assert_lost_promptly(fexec: FunctionExecutor, func: Any, arg: Any, match: str) -> None:
    """``func(arg)`` fails with :class:`WorkerDied` naming its call, within :data:`PROMPT` seconds."""
    t0 = time.monotonic()
    future = fexec.call_async(func, arg)
    with pytest.raises(WorkerDied, match=match) as info:
        future.result(timeout=60)
    assert time.monotonic() - t0 < PROMPT
    assert future.call_key in str(info.value)


def _runs(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
