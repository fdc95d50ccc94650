"""A future read or settled by several threads at once: one value, one settlement."""

from __future__ import annotations

import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from xtremehub.compute import ResponseFuture
from xtremehub.compute.futures import Signal
from xtremehub.compute.task import Outcome


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make the interleavings the races need likely
    yield
    sys.setswitchinterval(previous)


def _together(n: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``n`` threads released at once; their results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_threads_reading_one_finished_future_all_get_its_value() -> None:
    value = {"rows": list(range(2000))}
    payload = pickle.dumps(value)
    for _ in range(300):
        future = ResponseFuture("job", 0, Signal())
        future._resolve(Outcome("job", 0, True, payload), attempts=1)
        assert _together(8, future.result) == [value] * 8
        assert future.stats["result_size"] == len(payload)


def _collect(into: list[Callable[[], None]], settle: Callable[..., list[Callable[[], None]]], what: Any) -> None:
    into.extend(settle(what, 1))


def test_an_outcome_racing_a_timeout_settles_the_future_once() -> None:
    payload = pickle.dumps(42)
    for _ in range(20):
        future = ResponseFuture("job", 0, Signal())
        settled: list[ResponseFuture] = []
        future.add_done_callback(settled.append)
        callbacks: list[Callable[[], None]] = []
        outcome = Outcome("job", 0, True, payload, end=123.0)
        settlers = [
            threading.Thread(target=_collect, args=(callbacks, future._resolve, outcome)),
            threading.Thread(target=_collect, args=(callbacks, future._fail, TimeoutError("too late"))),
        ]
        with future._signal:  # both settlers arrive while a waiter holds the signal
            for t in settlers:
                t.start()
            time.sleep(0.02)
        for t in settlers:
            t.join()
        for callback in callbacks:
            callback()
        assert len(settled) == 1
        if future.error:
            assert isinstance(future.exception(), TimeoutError)
            assert "end" not in future.stats  # the late outcome did not slip in
        else:
            assert future.result() == 42
            assert future.stats["end"] == 123.0
