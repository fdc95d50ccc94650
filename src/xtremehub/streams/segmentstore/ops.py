"""The operations a segment store queues for its group commit, and the futures they settle.

An append is an :class:`AppendOp`; the events of one ``append_batches`` batch share a
:class:`BatchOutcomes` (one :class:`EventSlot` each, standing in for a future); control
operations (create, seal, merge, truncate, delete, tiered) are :class:`ControlOp`.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from xtremehub.errors import StoreClosed
from xtremehub.streams.segmentstore.contract import AppendOutcome, AppendResult
from xtremehub.streams.segmentstore.wal import RecordType

__all__ = ["AppendOp", "BatchOutcomes", "ControlOp", "EventSlot"]


class BatchOutcomes:
    """The outcomes of one :meth:`SegmentStore.append_many`; its future resolves with the last one.

    Only the holder of the commit lock settles events (and the submitting thread, before the
    batch is queued, for events refused at once), so no lock is needed.
    """

    __slots__ = ("future", "left", "outcomes")

    def __init__(self, count: int) -> None:
        self.future: Future[list[AppendOutcome]] = Future()
        self.outcomes: list[AppendOutcome | None] = [None] * count
        self.left = count
        if not count:
            self.future.set_result([])

    def settle(self, index: int, outcome: AppendOutcome) -> None:
        self.outcomes[index] = outcome
        self.left -= 1
        if not self.left:
            self.future.set_result([o for o in self.outcomes if o is not None])


class EventSlot:
    """Stands in for the future of one event of a batch: what the group commit settles."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: BatchOutcomes, index: int) -> None:
        self.batch, self.index = batch, index

    def done(self) -> bool:
        return self.batch.outcomes[self.index] is not None

    def set_result(self, result: AppendResult) -> None:
        self.batch.settle(self.index, result)

    def set_exception(self, exc: BaseException | None) -> None:
        self.batch.settle(
            self.index, exc if isinstance(exc, Exception) else StoreClosed(f"append interrupted: {exc!r}")
        )


@dataclass(slots=True)
class AppendOp:
    """One queued append."""

    segment: str
    data: bytes
    writer_id: str | None
    event_number: int | None
    expected_offset: int | None
    future: Future[AppendResult] | EventSlot = field(default_factory=Future)
    #: True for every event of an ``append_many`` batch but its last: the batch is committed whole.
    more: bool = False


@dataclass(slots=True)
class ControlOp:
    """One queued control operation (``kind`` is its WAL record type)."""

    kind: RecordType | str
    body: dict[str, Any]
    future: Future[Any] = field(default_factory=Future)
