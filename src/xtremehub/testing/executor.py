"""Executor conformance suite: every compute backend must pass these tests unchanged.

Subclass :class:`ExecutorTests` and provide ``make_executor``, a fixture returning
a factory ``(**kwargs) -> FunctionExecutor`` for your backend; executors it makes
are closed by the suite. Task functions live at module level so that backends
that pickle by reference (Ray, Dask, Lithops) can import them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xtremehub import storage
from xtremehub.compute import ALL_COMPLETED, ALWAYS, ANY_COMPLETED, FunctionExecutor, ObjectPart
from xtremehub.errors import ConfigError, ExecutorClosed, TaskError, TaskTimeout, WorkerDied

__all__ = ["ExecutorTests"]

Factory = Callable[..., FunctionExecutor]


# -- task functions (module level: importable on any worker) ----------------------------
def add(x: int, y: int = 0) -> int:
    return x + y


def square(x: int) -> int:
    return x * x


def total(results: list[int]) -> int:
    return sum(results)


def ordered(results: list[int]) -> list[int]:
    return list(results)


def identity(x: Any) -> Any:
    return x


class Counted:
    """Counts its live instances in this process, unpickled copies included (as CPython's
    ``CountedObject``): what a backend still holds of arguments or results its caller dropped.

    Example:
        >>> import pickle
        >>> before = Counted.live
        >>> copy = pickle.loads(pickle.dumps(Counted()))
        >>> Counted.live - before
        1
    """

    live = 0

    def __new__(cls) -> Counted:
        cls.live += 1
        return super().__new__(cls)

    def __del__(self) -> None:
        type(self).live -= 1


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def fail_with_value_error(x: int) -> None:
    raise ValueError(f"bad input {x}")


class _Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.lock = threading.Lock()


def fail_unpicklable(_: Any) -> None:
    raise _Unpicklable()


def return_unpicklable(_: Any) -> Any:
    return threading.Lock()


def fail_until_marker(marker: str) -> str:
    """Fails on the first attempt (creates ``marker``), succeeds afterwards."""
    path = Path(marker)
    if not path.exists():
        path.write_text("attempted")
        raise RuntimeError("first attempt fails on purpose")
    return "recovered"


def kill_self(_: Any = None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_until_marker(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def exit_hard(code: int) -> None:
    os._exit(code)


def kill_task_process(marker: str | None = None) -> str:
    """Kills the process that started this one and everything in its process group, this one too
    (on Lithops localhost: the task process that runs the call, and the call's own process).

    With ``marker``: only the first time (it creates ``marker``); afterwards returns ``"survived"``.
    Refuses unless this process's session leader is its parent (Lithops starts each task process in
    a session of its own): the process group of any other worker may be the test's own.
    """
    if marker is not None:
        path = Path(marker)
        if path.exists():
            return "survived"
        path.write_text("killed once")
    _refuse_unless_parent_leads_session()
    os.killpg(os.getpgid(0), signal.SIGKILL)
    return "not reached"


def kill_parent_and_linger(pid_file: str, seconds: float = 60.0) -> None:
    """Kills the process that started this one, leaves this one's pid in ``pid_file``, sleeps ``seconds``.

    Refuses as :func:`kill_task_process` does (the parent of another worker may be the test itself).
    """
    _refuse_unless_parent_leads_session()
    Path(pid_file).write_text(str(os.getpid()))
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(seconds)


def _refuse_unless_parent_leads_session() -> None:
    if os.getsid(0) != os.getppid():
        raise RuntimeError("this process's parent does not lead its session: it is not a task process to kill")


def with_id(x: int, id: int) -> tuple[int, int]:
    return (id, x)


def env_value(name: str) -> str | None:
    return os.environ.get(name)


def count_items(items: list[Any]) -> int:
    return len(items)


def read_size(url: str) -> int:
    return len(storage.get(url))


def line_records(obj: ObjectPart) -> list[str]:
    return obj.data_stream.read().decode().splitlines()


def line_count(obj: ObjectPart) -> int:
    return len(obj.read().splitlines())


def part_meta(obj: ObjectPart) -> tuple[str, int, int, tuple[int, int]]:
    return (obj.key, obj.part, obj.total_parts, obj.data_byte_range)


class ExecutorTests:
    """The behaviour of :class:`xtremehub.FunctionExecutor` that every backend shares."""

    #: Whether the backend can stop a running call at its time limit (else it only reports
    #: :class:`TaskTimeout` at the limit and the call runs on to its end).
    supports_kill: bool = True
    #: Whether a dead worker's signal or exit code appears in :class:`WorkerDied` (Ray and Dask
    #: only learn that the worker is gone).
    reports_exit_cause: bool = True

    @pytest.fixture
    def make_executor(self) -> Factory:
        raise NotImplementedError("subclasses return a factory of executors for their backend")

    @pytest.fixture
    def fexec(self, executor_factory: Factory) -> FunctionExecutor:
        return executor_factory()

    @pytest.fixture
    def executor_factory(self, make_executor: Factory) -> Iterator[Factory]:
        made: list[FunctionExecutor] = []

        def factory(**kwargs: Any) -> FunctionExecutor:
            fexec = make_executor(**kwargs)
            made.append(fexec)
            return fexec

        yield factory
        for fexec in made:
            fexec.close(wait=False)

    # -- the basic API -------------------------------------------------------------------
    def test_call_async(self, fexec: FunctionExecutor) -> None:
        future = fexec.call_async(add, (2, 3))
        assert future.result(timeout=60) == 5
        assert future.done
        assert not future.running
        assert (future.success, future.error) == (True, False)
        assert future.status() == "success"

    def test_call_async_argument_conventions(self, fexec: FunctionExecutor) -> None:
        assert fexec.call_async(add, {"x": 1, "y": 10}).result() == 11
        assert fexec.call_async(square, 7).result() == 49
        assert fexec.call_async(add, 1, extra_args=(5,)).result() == 6
        assert fexec.call_async(add, {"x": 1}, extra_args={"y": 2}).result() == 3

    def test_map_keeps_order(self, fexec: FunctionExecutor) -> None:
        futures = fexec.map(square, range(50))
        assert fexec.get_result(futures) == [i * i for i in range(50)]
        assert [f.call_id for f in futures] == list(range(50))

    def test_map_with_extra_args_and_chunksize(self, fexec: FunctionExecutor) -> None:
        futures = fexec.map(add, range(20), extra_args=(100,), chunksize=3)
        assert fexec.get_result(futures) == [i + 100 for i in range(20)]

    def test_map_empty(self, fexec: FunctionExecutor) -> None:
        assert fexec.get_result(fexec.map(square, [])) == []

    def test_map_closures_and_lambdas(self, fexec: FunctionExecutor) -> None:
        offset = 1000
        assert fexec.get_result(fexec.map(lambda x: x + offset, [1, 2])) == [1001, 1002]

    def test_id_parameter(self, fexec: FunctionExecutor) -> None:
        assert fexec.get_result(fexec.map(with_id, [5, 6, 7])) == [(0, 5), (1, 6), (2, 7)]

    def test_map_reduce(self, fexec: FunctionExecutor) -> None:
        reducer = fexec.map_reduce(square, range(10), total)
        assert len(reducer) == 11  # as in Lithops: the map futures, then the reducer's
        assert fexec.get_result(reducer) == sum(i * i for i in range(10))

    def test_map_reduce_results_in_input_order(self, fexec: FunctionExecutor) -> None:
        reducer = fexec.map_reduce(sleep_then, [(0.05 * (5 - i), i) for i in range(6)], ordered)
        assert reducer[-1].result(timeout=60) == list(range(6))

    def test_map_reduce_propagates_map_failure(self, fexec: FunctionExecutor) -> None:
        reducer = fexec.map_reduce(fail_with_value_error, [1, 2], total)
        with pytest.raises(ValueError, match="bad input"):
            fexec.get_result(reducer)

    def test_get_result_without_futures_returns_new_outputs(self, fexec: FunctionExecutor) -> None:
        fexec.map(square, [1, 2, 3])
        assert fexec.get_result() == [1, 4, 9]
        fexec.map_reduce(square, [4, 5], total)
        assert fexec.get_result() == 41  # map outputs of map_reduce are not outputs; one result is not a list

    def test_lithops_argument_shapes(self, fexec: FunctionExecutor) -> None:
        assert fexec.get_result(fexec.map(count_items, [[1, 2], [3]])) == [2, 1]  # a list is one argument
        assert fexec.get_result(fexec.map(add, [(1, 2), {"x": 3, "y": 4}])) == [3, 7]
        envs = fexec.get_result(fexec.map(env_value, ["XHUB_CONFORMANCE"], extra_env={"XHUB_CONFORMANCE": "on"}))
        assert envs == ["on"]
        assert fexec.map(square, [2, 3]).map(square).get_result() == [16, 81]  # chained on the results

    def test_futures_pickle_with_their_result(self, fexec: FunctionExecutor) -> None:
        import pickle

        future = fexec.call_async(square, 6)
        future.result(timeout=60)
        copy = pickle.loads(pickle.dumps(future))
        assert (copy.done, copy.error, copy.result()) == (True, False, 36)

    # -- waiting -------------------------------------------------------------------------
    def test_wait_any_always_all(self, fexec: FunctionExecutor) -> None:
        fast = fexec.call_async(sleep_then, (0.0, "fast"))
        slow = fexec.call_async(sleep_then, (1.5, "slow"))
        done, not_done = fexec.wait([fast, slow], return_when=ANY_COMPLETED)
        assert fast in done
        assert slow in not_done
        done, not_done = fexec.wait([fast, slow], return_when=ALWAYS)
        assert fast in done
        done, not_done = fexec.wait([fast, slow], return_when=ALL_COMPLETED)
        assert (len(done), not_done) == (2, [])
        assert slow.result() == "slow"

    def test_wait_timeout_returns_not_done(self, fexec: FunctionExecutor) -> None:
        slow = fexec.call_async(sleep_then, (3.0, 1))
        t0 = time.monotonic()
        done, not_done = fexec.wait([slow], timeout=0.3)
        assert time.monotonic() - t0 < 2.5
        assert (done, not_done) == ([], [slow])
        assert slow.status() in ("queued", "running")
        assert slow.result(timeout=60) == 1

    def test_wait_rejects_unknown_mode(self, fexec: FunctionExecutor) -> None:
        with pytest.raises(ConfigError, match="return_when"):
            fexec.wait([], return_when="SOMETIMES")

    # -- failures ------------------------------------------------------------------------
    def test_remote_exception_keeps_type_and_traceback(self, fexec: FunctionExecutor) -> None:
        future = fexec.call_async(fail_with_value_error, 42)
        with pytest.raises(ValueError, match="bad input 42") as info:
            future.result(timeout=60)
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert "Remote traceback" in notes
        assert "fail_with_value_error" in notes
        assert future.status(throw_except=False) == "error"
        assert future.error
        with pytest.raises(ValueError, match="bad input 42"):
            future.status()  # as in Lithops: raises the call's exception

    def test_get_result_raises_and_throw_except_false(self, fexec: FunctionExecutor) -> None:
        futures = fexec.map(fail_with_value_error, [1])
        with pytest.raises(ValueError, match="bad input 1"):
            fexec.get_result(futures)
        assert fexec.get_result(futures, throw_except=False) == [None]

    def test_unpicklable_exception_becomes_task_error(self, fexec: FunctionExecutor) -> None:
        with pytest.raises(TaskError, match="cannot travel") as info:
            fexec.call_async(fail_unpicklable, None).result(timeout=60)
        assert "_Unpicklable" in info.value.type_name
        assert "fail_unpicklable" in info.value.remote_traceback

    def test_unpicklable_result_is_an_error(self, fexec: FunctionExecutor) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            fexec.call_async(return_unpicklable, None).result(timeout=60)

    def test_retries_recover_a_failed_call(self, executor_factory: Factory, tmp_path: Path) -> None:
        fexec = executor_factory(retries=1)
        future = fexec.call_async(fail_until_marker, str(tmp_path / "m"))
        assert future.result(timeout=60) == "recovered"
        assert future.stats["attempts"] == 2

    def test_without_retries_the_failure_stands(self, executor_factory: Factory, tmp_path: Path) -> None:
        fexec = executor_factory(retries=0)
        with pytest.raises(RuntimeError, match="on purpose"):
            fexec.call_async(fail_until_marker, str(tmp_path / "m")).result(timeout=60)

    def test_killed_worker_is_an_error_not_a_hang(self, fexec: FunctionExecutor) -> None:
        others = fexec.map(sleep_then, [(0.2, i) for i in range(4)])
        victim = fexec.call_async(kill_self, None)
        with pytest.raises(WorkerDied, match="SIGKILL" if self.reports_exit_cause else "died") as info:
            victim.result(timeout=60)
        assert victim.call_key in str(info.value)
        assert fexec.get_result(others, timeout=60) == [0, 1, 2, 3]
        assert fexec.call_async(square, 9).result(timeout=60) == 81  # the pool recovered

    def test_worker_exit_is_an_error(self, fexec: FunctionExecutor) -> None:
        future = fexec.call_async(exit_hard, 3)
        with pytest.raises(WorkerDied, match="exit code 3" if self.reports_exit_cause else "died") as info:
            future.result(timeout=60)
        assert future.call_key in str(info.value)

    def test_retries_recover_a_killed_worker(self, executor_factory: Factory, tmp_path: Path) -> None:
        fexec = executor_factory(retries=2)
        assert fexec.call_async(kill_until_marker, str(tmp_path / "k")).result(timeout=60) == "survived"

    def test_call_timeout_stops_the_call(self, fexec: FunctionExecutor) -> None:
        # A call the backend cannot stop keeps its worker busy until it returns: keep it short.
        seconds = 60.0 if self.supports_kill else 6.0
        t0 = time.monotonic()
        future = fexec.map(sleep_then, [(seconds, 1)], timeout=1.0)[0]
        with pytest.raises(TaskTimeout, match="1s limit"):
            future.result(timeout=60)
        assert time.monotonic() - t0 < min(20, seconds - 1)  # reported at the limit, not when the call returns
        assert fexec.map(square, [3], timeout=30.0)[0].result(timeout=60) == 9

    def test_invalid_timeout(self, fexec: FunctionExecutor) -> None:
        with pytest.raises(ConfigError, match="timeout"):
            fexec.map(square, [1], timeout=0)

    # -- lifecycle -----------------------------------------------------------------------
    def test_closed_executor_refuses_work(self, executor_factory: Factory) -> None:
        fexec = executor_factory()
        fexec.call_async(square, 2).result(timeout=60)
        fexec.close()
        with pytest.raises(ExecutorClosed):
            fexec.call_async(square, 2)

    def test_context_manager_finishes_queued_work(self, make_executor: Factory) -> None:
        with make_executor() as fexec:
            futures = fexec.map(sleep_then, [(0.05, i) for i in range(6)])
        assert [f.result(timeout=0) for f in futures] == list(range(6))

    def test_future_stats(self, fexec: FunctionExecutor) -> None:
        future = fexec.call_async(sleep_then, (0.05, None))
        future.result(timeout=60)
        stats = future.stats
        assert stats["submit"] <= stats["start"] <= stats["end"]
        assert stats["end"] - stats["start"] >= 0.04
        assert stats["worker"]
        assert stats["host"]
        assert stats["attempts"] == 1

    def test_task_telemetry(self, fexec: FunctionExecutor, object_root: str) -> None:
        url = object_root + "telemetry.bin"
        storage.put(url, b"t" * 300_000)
        future = fexec.call_async(read_size, url)
        assert future.result(timeout=60) == 300_000
        t = future.telemetry
        assert t is not None
        assert t.schema == "1"
        assert t.backend == fexec.backend.name
        assert t.status == "success"
        assert t.bytes_read >= 300_000  # counted on the worker, through the storage layer
        assert t.start is not None
        assert t.end is not None
        assert t.start <= t.end
        assert t.attempts == 1
        assert t.result_size > 0
        assert len(fexec.job_summary([future])) == 1

    # -- object partitioning --------------------------------------------------------------
    @pytest.fixture
    def object_root(self, tmp_path: Path) -> str:
        """Where the partitioning tests write objects (override to use S3)."""
        return f"{tmp_path}/objects/"

    def _write_lines(self, root: str) -> dict[str, list[str]]:
        files = {
            "a.txt": [f"a-line-{i:04d} " + "x" * (i % 17) for i in range(500)],
            "b.txt": [f"b{i}" for i in range(37)],
            "sub/c.txt": ["only-line-no-newline"],
        }
        for name, lines in files.items():
            text = "\n".join(lines) + ("" if name == "sub/c.txt" else "\n")
            storage.put(root + name, text.encode())
        return files

    @pytest.mark.parametrize("chunking", [{"obj_chunk_size": 97}, {"obj_chunk_number": 7}, {}])
    def test_map_over_objects_every_line_once(
        self, fexec: FunctionExecutor, object_root: str, chunking: dict[str, int]
    ) -> None:
        files = self._write_lines(object_root)
        futures = fexec.map(line_records, object_root, **chunking)  # type: ignore[arg-type]
        got = [line for part in fexec.get_result(futures) for line in part]
        expected = [line for lines in files.values() for line in lines]
        assert sorted(got) == sorted(expected)
        if chunking:
            assert len(futures) > len(files)

    def test_object_part_metadata(self, fexec: FunctionExecutor, object_root: str) -> None:
        self._write_lines(object_root)
        metas = fexec.get_result(fexec.map(part_meta, [object_root + "b.txt"], obj_chunk_number=3))
        assert [m[1] for m in metas] == [0, 1, 2]
        assert {m[2] for m in metas} == {3}
        assert all(m[0].endswith("b.txt") for m in metas)
        assert metas[0][3][0] == 0

    def test_map_reduce_over_objects_per_object(self, fexec: FunctionExecutor, object_root: str) -> None:
        files = self._write_lines(object_root)
        reducers = fexec.map_reduce(line_count, object_root, total, obj_chunk_size=64, obj_reduce_by_key=True)
        assert sorted(fexec.get_result(reducers)) == sorted(len(v) for v in files.values())

    def test_custom_newline(self, fexec: FunctionExecutor, object_root: str) -> None:
        records = [f"rec{i}".encode() * (i % 5 + 1) for i in range(200)]
        storage.put(object_root + "recs.bin", b"||".join(records) + b"||")
        parts = fexec.get_result(fexec.map(part_raw, [object_root + "recs.bin"], obj_chunk_size=50, obj_newline="||"))
        assert b"".join(parts) == b"||".join(records) + b"||"
        for part in parts:
            assert part == b"" or part.endswith(b"||")

    def test_missing_object_prefix(self, fexec: FunctionExecutor, object_root: str) -> None:
        with pytest.raises(FileNotFoundError, match="no objects"):
            fexec.map(line_count, object_root + "nothing/")


def part_raw(obj: ObjectPart) -> bytes:
    return obj.read()
