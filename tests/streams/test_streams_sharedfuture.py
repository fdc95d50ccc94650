"""Futures sharing one condition: ``done`` without the condition, ``wait`` over several of them."""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, wait

from xtremehub.streams.sharedfuture import SharedConditionFuture


def test_done_does_not_wait_for_the_shared_condition() -> None:
    condition = threading.Condition()
    future: SharedConditionFuture[int] = SharedConditionFuture(condition)
    answers: list[bool] = []
    with condition:  # as the thread settling a whole batch holds it
        asker = threading.Thread(target=lambda: answers.append(future.done()))
        asker.start()
        asker.join(5)
        assert answers == [False], "done() blocked on the condition another thread holds"
    future.set_result(7)
    assert future.done()
    assert future.result() == 7


def test_wait_over_futures_sharing_a_condition() -> None:
    condition = threading.Condition()
    a: SharedConditionFuture[int] = SharedConditionFuture(condition)
    b: SharedConditionFuture[int] = SharedConditionFuture(condition)
    threading.Timer(0.05, a.set_result, (1,)).start()
    done, not_done = wait([a, b], timeout=5, return_when=FIRST_COMPLETED)
    assert done == {a}
    assert not_done == {b}
    b.set_exception(ValueError("refused"))
    done, _ = wait([a, b], timeout=5)
    assert done == {a, b}
    assert isinstance(b.exception(), ValueError)
    assert a.result() == 1
    assert b.cancel() is False  # settled futures stay settled
