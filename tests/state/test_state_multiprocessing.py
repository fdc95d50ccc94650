"""``xtremehub.multiprocessing``'s shared state on the node service: Ray and Dask run stdlib-style code."""

from __future__ import annotations

import sys
import threading
from typing import Any

import cloudpickle
import pytest

from xtremehub import multiprocessing as xmp


def _work(q: Any, lock: Any, total: Any, squares: Any, log: Any, i: int) -> int:
    with lock:
        total.value += i  # read-modify-write under the lock
    squares[i] = i * i
    log.append(i)
    q.put(i)
    return i


def _run(ctx: xmp.Context) -> None:
    assert ctx.shared_state == "service"
    manager = ctx.Manager()
    q, lock, total = ctx.Queue(), ctx.Lock(), ctx.Value("i", 0)
    squares, log = manager.dict(), manager.list()
    with ctx.Pool(2) as pool:
        assert pool.starmap(_work, [(q, lock, total, squares, log, i) for i in range(10)]) == list(range(10))
    assert total.value == 45
    assert dict(squares) == {i: i * i for i in range(10)}
    assert sorted(log) == list(range(10))
    assert sorted(q.get(timeout=30) for _ in range(10)) == list(range(10))
    event = ctx.Event()
    p = ctx.Process(target=event.set)
    p.start()
    p.join(120)
    assert p.exitcode == 0
    assert event.is_set()
    barrier = ctx.Barrier(2, timeout=0.2)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    with pytest.raises(NotImplementedError, match="Pipe"):
        ctx.Pipe()
    manager.shutdown()


@pytest.mark.ray
def test_multiprocessing_shared_state_on_ray(address: str, ray_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XHUB_EPH_ADDRESS", address)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this module
    try:
        _run(xmp.get_context("ray"))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.dask
def test_multiprocessing_shared_state_on_dask(address: str, dask_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XHUB_EPH_ADDRESS", address)
    _run(xmp.get_context("dask", client=dask_client, shared_state="service"))
