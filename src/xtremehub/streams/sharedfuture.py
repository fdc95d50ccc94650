"""A ``Future`` that shares one ``threading.Condition`` with others settled together.

A :class:`concurrent.futures.Future` makes a ``Condition`` (and its ``RLock``) when it is
created. Futures settled together (the events of one acknowledged batch, the batches of one
request) can share one: each waits for its own state, since a wake-up may be for another.
Everything else (``set_result``, callbacks, ``concurrent.futures.wait``) is ``Future``'s own.

Example:
    >>> import threading
    >>> condition = threading.Condition()
    >>> a, b = SharedConditionFuture(condition), SharedConditionFuture(condition)
    >>> a.set_result(1); b.set_exception(ValueError("no"))
    >>> a.result(), type(b.exception()).__name__
    (1, 'ValueError')
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from typing import Any, TypeVar

__all__ = ["SharedConditionFuture"]

_T = TypeVar("_T")
_OVER = (FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED)


class SharedConditionFuture(Future[_T]):
    """A ``Future`` whose condition is ``condition``, shared with the futures settled with it."""

    def __init__(self, condition: threading.Condition) -> None:  # no super().__init__: no condition of its own
        self._condition = condition
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []

    def done(self) -> bool:
        """Whether settled or cancelled, read without the shared condition.

        States only move forward and ``_state`` is assigned after the result, so a settled state
        read here stays true; taking the condition (shared, so contended with the thread settling
        a whole batch) cost more than the rest of a writer's per-event bookkeeping.
        """
        return self._state in _OVER

    def _wait(self, timeout: float | None) -> None:
        # The condition is shared: a wake-up may be for another future, so wait for this one's state.
        with self._condition:
            self._condition.wait_for(lambda: self._state in _OVER, timeout)

    def result(self, timeout: float | None = None) -> _T:
        self._wait(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return super().exception(0)
