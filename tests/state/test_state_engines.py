"""Handles pickled to Ray and Dask workers reach the same objects (real engines, session fixtures)."""

from __future__ import annotations

from typing import Any

import pytest

from xtremehub import FunctionExecutor, state


def _workload(fexec: FunctionExecutor, address: str, tag: str) -> None:
    counter = state.Counter(f"{tag}/count", address=address)
    seen = state.Dict(f"{tag}/seen", address=address)
    barrier = state.Barrier(f"{tag}/barrier", 2, timeout=120, address=address)
    lock = state.Lock(f"{tag}/lock", address=address)

    def work(i: int) -> int:
        import os

        for _ in range(200):
            counter.add()
        with lock:
            seen[i] = os.getpid()
        return barrier.wait()  # both calls run at once on the two worker slots

    indices = fexec.get_result(fexec.map(work, range(2), chunksize=1, timeout=300))
    assert sorted(indices) == [0, 1]
    assert counter.get() == 400
    assert sorted(seen.keys()) == [0, 1]
    assert barrier.generation == 1
    assert not lock.locked()


@pytest.mark.ray
def test_handles_on_ray_workers(address: str, ray_engine: Any) -> None:
    with FunctionExecutor("ray") as fexec:
        _workload(fexec, address, "ray")


@pytest.mark.dask
def test_handles_on_dask_workers(address: str, dask_client: Any) -> None:
    with FunctionExecutor("dask", client=dask_client) as fexec:
        _workload(fexec, address, "dask")


@pytest.mark.lithops
def test_handles_on_lithops_localhost_workers(address: str, lithops_config: dict[str, Any]) -> None:
    with FunctionExecutor("lithops", config=lithops_config) as fexec:
        _workload(fexec, address, "lithops")
