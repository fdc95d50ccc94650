"""The future of one written event: cheap to make, settled a whole batch at a time.

A :class:`concurrent.futures.Future` makes a ``threading.Condition`` (and its lock) when it is
created and takes it, notifies and runs its callbacks for every ``set_result``: per event,
that is more than the rest of the writer's bookkeeping. An :class:`EventFuture` is a real
``Future`` (``concurrent.futures.wait``, ``as_completed``, callbacks, ``result(timeout)`` work
as usual) whose condition is shared by all the futures of its writer, and
:func:`settle_run` settles every event of an acknowledged batch under one acquisition of it,
with one notification; the :class:`~xtremehub.streams.client.writer.EventPointer` of an event
is made only when its result is asked for.

Example:
    >>> import threading
    >>> from xtremehub.streams.segmentstore.runs import RunOutcome
    >>> condition = threading.Condition()
    >>> futures = [EventFuture(condition), EventFuture(condition)]
    >>> settle_run(condition, futures, RunOutcome.contiguous("s", 10, [4, 6]), range(2))
    >>> [f.result() for f in futures]
    [EventPointer(segment='s', offset=10, length=4), EventPointer(segment='s', offset=14, length=6)]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures._base import FINISHED, PENDING
from dataclasses import dataclass

from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.sharedfuture import SharedConditionFuture

__all__ = ["EventFuture", "EventPointer", "settle_run"]


@dataclass(frozen=True, slots=True)
class EventPointer:
    """Where a written event is stored."""

    segment: str
    offset: int
    length: int


class EventFuture(SharedConditionFuture[EventPointer]):
    """A ``Future`` sharing its writer's condition; its result is built from its batch's run on demand."""

    def __init__(self, condition: threading.Condition) -> None:
        super().__init__(condition)
        self._index = 0

    def result(self, timeout: float | None = None) -> EventPointer:
        self._wait(timeout)
        with self._condition:
            run = self._result
            if self._state == FINISHED and isinstance(run, RunOutcome):
                i = self._index
                self._result = EventPointer(run.segment, run.offsets[i], run.lengths[i])
        return super().result(0)


def settle_run(
    condition: threading.Condition, futures: Sequence[EventFuture], run: RunOutcome, which: Iterable[int]
) -> None:
    """Settle ``futures[i]`` as stored, for each ``i`` in ``which``, from ``run`` (the batch's outcome).

    One acquisition of the shared ``condition`` and one notification for all of them; the
    callbacks of futures that have some run afterwards, outside the lock, as ``set_result``
    runs them. A future already settled or cancelled is left as it is.
    """
    called: list[EventFuture] = []
    with condition:
        for i in which:
            future = futures[i]
            if future._state != PENDING:
                continue
            future._result, future._index, future._state = run, i, FINISHED
            if future._waiters:
                for waiter in future._waiters:
                    waiter.add_result(future)
            if future._done_callbacks:
                called.append(future)
        condition.notify_all()
    for future in called:
        future._invoke_callbacks()  # type: ignore[attr-defined]
