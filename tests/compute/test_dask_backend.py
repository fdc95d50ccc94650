"""The executor on a real dask.distributed LocalCluster: the conformance suite, shared checks, Dask specifics."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest
from backend_checks import BackendChecks

from xtremehub import FunctionExecutor
from xtremehub.testing.executor import Counted, ExecutorTests, identity, sleep_then, square

pytestmark = pytest.mark.dask


class TestDaskExecutor(ExecutorTests, BackendChecks):
    backend = "dask"
    supports_kill = False  # Dask runs tasks in threads: a running call cannot be stopped
    reports_exit_cause = False  # Dask only reports that the worker died

    @pytest.fixture
    def make_executor(self, dask_client: Any) -> Any:
        def make(**kwargs: Any) -> FunctionExecutor:
            return FunctionExecutor("dask", client=dask_client, **kwargs)

        return make


def test_a_client_object_selects_the_dask_backend_and_stays_open(dask_client: Any) -> None:
    with FunctionExecutor(dask_client) as fexec:
        assert fexec.backend.name == "dask"
        assert fexec.get_result(fexec.map(square, range(5), chunksize=2)) == [0, 1, 4, 9, 16]
        assert fexec.backend.workers == 2
    assert dask_client.status == "running"
    assert dask_client.submit(square, 3, pure=False).result() == 9


def test_timed_out_call_that_has_not_started_is_cancelled(dask_client: Any) -> None:
    with FunctionExecutor(dask_client) as fexec:
        busy = fexec.map(sleep_then, [(2.0, "a"), (2.0, "b")])  # both workers busy for 2 s
        t0 = time.monotonic()
        queued = fexec.map(sleep_then, [(30.0, "never")], timeout=1.0)[0]
        with pytest.raises(TimeoutError, match="1s limit"):
            queued.result(timeout=60)
        assert fexec.get_result(busy) == ["a", "b"]
        assert fexec.call_async(square, 4).result(timeout=60) == 16  # nothing still occupies a worker
        assert time.monotonic() - t0 < 25


def test_arguments_and_results_of_a_map_are_released_once_read(dask_client: Any) -> None:
    # The LocalCluster's scheduler runs in this process and keeps its last messages to each worker:
    # arguments sent as objects would live on there after the caller dropped them.
    assert Counted.live == 0
    with FunctionExecutor(dask_client) as fexec:
        items = [Counted() for _ in range(10)]
        originals = [weakref.ref(item) for item in items]
        results = fexec.get_result(fexec.map(identity, items))
        assert len(results) == 10
        assert all(type(r) is Counted for r in results)
        assert Counted.live == 20  # the arguments and their copies sent back
        del items, results
        deadline = time.monotonic() + 5.0  # the scheduler forgets released keys asynchronously
        while True:
            gc.collect()
            if Counted.live == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [ref() for ref in originals] == [None] * 10
        assert Counted.live == 0, f"{Counted.live} copies are still referenced in the client process"


@pytest.mark.slow
def test_without_a_client_a_local_cluster_is_started_and_closed() -> None:
    with FunctionExecutor("dask", workers=1) as fexec:
        assert fexec.get_result(fexec.map(square, [2, 3])) == [4, 9]
        cluster = fexec.backend._cluster  # type: ignore[attr-defined]
        assert cluster is not None
    assert fexec.backend._cluster is None  # type: ignore[attr-defined]
    assert cluster.status.name == "closed"
