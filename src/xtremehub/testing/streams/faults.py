"""Segment-store wrappers that lose or hold acknowledgements, to drive writers through failures."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TypeVar

from xtremehub.streams.segmentstore.contract import (
    AppendOutcome,
    AppendResult,
    SegmentBatch,
    SegmentStoreContract,
    runs_via_batches,
)
from xtremehub.streams.segmentstore.runs import RunOutcome

T = TypeVar("T")


__all__ = ["FlakyAcks", "HeldAcks"]


class FlakyAcks:
    """Wraps a segment store; every ``every``-th append (or batch) is stored but its acknowledgement is lost.

    The writer sees a ``ConnectionError`` as after a dropped connection and must re-send the
    same event numbers, which the store must recognise as duplicates. ``lost`` counts the
    events whose acknowledgement was lost.
    """

    def __init__(self, inner: SegmentStoreContract, every: int = 3) -> None:
        self._inner, self._every, self._count = inner, every, 0
        self.lost = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def append(self, segment: str, data: bytes, **kwargs: object) -> AppendResult:
        return self.append_async(segment, data, **kwargs).result()

    def append_async(self, segment: str, data: bytes, **kwargs: object) -> Future[AppendResult]:
        return self._maybe_lose(self._inner.append_async(segment, data, **kwargs), 1)  # type: ignore[arg-type]

    def append_batches(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[list[AppendOutcome]]]:
        self._count += 1
        inner = self._inner.append_batches(batches, writer_id=writer_id, timeout=timeout)
        if self._count % self._every:
            return inner
        return [self._lose(f, len(b.events)) for f, b in zip(inner, batches, strict=True)]

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        """The runs of :meth:`append_batches` (so that writers see the lost acknowledgements)."""
        return runs_via_batches(self, batches, writer_id=writer_id, timeout=timeout)  # type: ignore[arg-type]

    def _maybe_lose(self, inner: Future[T], events: int) -> Future[T]:
        self._count += 1
        if self._count % self._every:
            return inner
        return self._lose(inner, events)

    def _lose(self, inner: Future[T], events: int) -> Future[T]:
        inner.result()  # stored ...
        self.lost += events
        failed: Future[T] = Future()
        failed.set_exception(ConnectionError("acknowledgement lost (simulated dropped connection)"))
        return failed  # ... but the writer never hears of it


class HeldAcks:
    """Wraps a segment store; batches are stored at once but acknowledged only after :meth:`release`.

    Lets a test hold a writer's batch in flight, deterministically, while it queues more
    events (which must then leave together) or changes the stream under it. ``batches``
    records the size of every batch given to ``append_batches``.
    """

    def __init__(self, inner: SegmentStoreContract) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._held: list[tuple[Future[list[AppendOutcome]], Future[list[AppendOutcome]]]] = []
        self._released = False
        self.batches: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def append_batches(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[list[AppendOutcome]]]:
        inner = self._inner.append_batches(batches, writer_id=writer_id, timeout=timeout)
        with self._lock:
            self.batches.extend(len(b.events) for b in batches)
            if self._released:
                return inner
            outer: list[Future[list[AppendOutcome]]] = [Future() for _ in inner]
            self._held.extend(zip(inner, outer, strict=True))
            return outer

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        """The runs of :meth:`append_batches` (so that writers see the held acknowledgements)."""
        return runs_via_batches(self, batches, writer_id=writer_id, timeout=timeout)  # type: ignore[arg-type]

    def release(self) -> None:
        """Deliver the held acknowledgements and stop holding new ones."""
        with self._lock:
            self._released = True
            held, self._held = self._held, []
        for inner, outer in held:
            inner.add_done_callback(functools.partial(_copy_outcome, outer))


def _copy_outcome(outer: Future[T], inner: Future[T]) -> None:
    exc = inner.exception()
    if exc is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(inner.result())
