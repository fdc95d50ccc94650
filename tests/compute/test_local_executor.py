"""The executor conformance suite on the local process-pool backend, plus local specifics."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from xtremehub import FunctionExecutor
from xtremehub.compute import create_backend, known_backends
from xtremehub.config import Settings
from xtremehub.errors import PluginNotFound
from xtremehub.testing.executor import ExecutorTests, square


class TestLocalExecutor(ExecutorTests):
    @pytest.fixture
    def make_executor(self) -> Any:
        def make(**kwargs: Any) -> FunctionExecutor:
            kwargs.setdefault("workers", 2)
            return FunctionExecutor("local", **kwargs)

        return make


@pytest.mark.s3
class TestLocalExecutorOnS3Objects(TestLocalExecutor):
    """Object partitioning with the data in a real S3 server; workers resolve it from settings."""

    @pytest.fixture
    def make_executor(self, s3_settings: Settings) -> Any:
        def make(**kwargs: Any) -> FunctionExecutor:
            kwargs.setdefault("workers", 2)
            return FunctionExecutor("local", settings=s3_settings, **kwargs)

        return make

    @pytest.fixture
    def object_root(self, s3_root: str, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
        from xtremehub.config import use_process_settings

        use_process_settings(s3_settings)  # so this test process writes to the same server
        return s3_root


@pytest.fixture(autouse=True)
def _reset_process_settings() -> Any:
    from xtremehub.config import use_process_settings

    yield
    use_process_settings(None)


def test_unknown_backend_lists_valid_ones() -> None:
    with pytest.raises(PluginNotFound, match="valid: dask, lithops, local, ray"):
        FunctionExecutor("quantum")
    assert "local" in known_backends()


def test_backend_instance_is_accepted() -> None:
    backend = create_backend("local", workers=1)
    with FunctionExecutor(backend) as fexec:
        assert fexec.backend is backend
        assert fexec.call_async(square, 4).result(timeout=60) == 16


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods(method: str) -> None:
    with FunctionExecutor("local", workers=1, start_method=method) as fexec:
        assert fexec.get_result(fexec.map(square, [1, 2, 3])) == [1, 4, 9]


def test_workers_are_reused_across_jobs() -> None:
    with FunctionExecutor(workers=2) as fexec:
        first = {f.stats["worker"] for f in fexec.map(square, range(20)) if f.result(timeout=60) is not None}
        second = {f.stats["worker"] for f in fexec.map(square, range(20)) if f.result(timeout=60) is not None}
        assert len(first | second) <= 2


def test_interpreter_exits_with_an_unclosed_executor(tmp_path: Path) -> None:
    script = tmp_path / "leave.py"
    script.write_text(
        "from xtremehub import FunctionExecutor\n"
        "fexec = FunctionExecutor(workers=2)\n"
        "print(fexec.get_result(fexec.map(abs, [-1, -2])))\n"
        "raise SystemExit(3)  # no close(), no context manager\n"
    )
    result = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "[1, 2]" in result.stdout


def test_worker_settings_come_from_the_executor(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "custom-home")
    with FunctionExecutor(workers=1, settings=settings) as fexec:
        assert fexec.call_async(_worker_home, None).result(timeout=60) == str(tmp_path / "custom-home")


def _worker_home(_: object) -> str:
    from xtremehub.config import default_settings

    return str(default_settings().home)


def test_a_redefined_main_function_runs_its_new_body(tmp_path: Path) -> None:
    # Workers outlive jobs: a function of __main__ redefined (a notebook cell run again)
    # must not run its old body, nor see the globals of when the worker started.
    script = tmp_path / "redefine.py"
    script.write_text(
        "from xtremehub import FunctionExecutor\n"
        "OFFSET = 0\n"
        "def f(x):\n"
        "    return x + OFFSET\n"
        "with FunctionExecutor(workers=1) as fexec:\n"
        "    print(fexec.get_result(fexec.map(f, [1, 2])))\n"
        "    def f(x):\n"
        "        return -x\n"
        "    print(fexec.get_result(fexec.map(f, [1, 2])))\n"
        "    def g(x):\n"
        "        return x + OFFSET\n"
        "    OFFSET = 10\n"
        "    print(fexec.get_result(fexec.map(g, [1, 2])))\n"
    )
    result = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["[1, 2]", "[-1, -2]", "[11, 12]"]


def _nap_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


@pytest.mark.parametrize("calls", [2, 3])
def test_few_calls_spread_over_idle_workers(calls: int) -> None:
    """Two or three calls of 50 ms on two idle workers: both workers get one (they once all went
    to the first). Calls of microseconds are batched onto one worker on purpose (one message)."""
    with FunctionExecutor(workers=2) as fexec:
        fexec.get_result(fexec.map(_nap_square, range(4)))  # workers started, durations known
        for _ in range(3):
            fs = fexec.map(_nap_square, range(calls))
            fexec.get_result(fs)
            assert len({f.stats["worker"] for f in fs}) == 2
