"""The operations a segment store queues for its group commit, and the futures they settle.

An append is an :class:`AppendOp`; the events of one batch of one writer to one segment
(``append_runs``, ``append_batches``) are one :class:`RunOp` with one future for the batch's
:class:`~.runs.RunOutcome`; control operations (create, seal, merge, truncate, delete,
tiered) are :class:`ControlOp`.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from xtremehub.streams.segmentstore.contract import AppendResult
from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.segmentstore.wal import RecordType

__all__ = ["AppendOp", "ControlOp", "RunOp"]


@dataclass(slots=True)
class AppendOp:
    """One queued append."""

    segment: str
    data: bytes
    writer_id: str | None
    event_number: int | None
    expected_offset: int | None
    future: Future[AppendResult] = field(default_factory=Future)
    #: The writer's event number sent before this one (``previous_event_number``): the append is
    #: refused (``EventNumberGap``) while the segment holds a lower one. None: no check.
    previous: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class RunOp:
    """The events of one batch of one writer to one segment, committed together (one future).

    Event ``i`` carries number ``first + i`` when ``writer_id`` is set; ``lengths`` are the
    events' lengths and ``size`` their sum.
    """

    segment: str
    events: list[bytes]
    lengths: list[int]
    size: int
    writer_id: str | None
    first: int | None
    future: Future[RunOutcome] = field(default_factory=Future)
    #: True for every run of one ``append_runs`` call but its last: the call is committed whole.
    more: bool = False
    #: The writer's event number sent before this run (``SegmentBatch.previous_event_number``):
    #: the run is refused (``EventNumberGap``) while the segment holds a lower one. None: no check.
    previous: int | None = None


@dataclass(slots=True)
class ControlOp:
    """One queued control operation (``kind`` is its WAL record type)."""

    kind: RecordType | str
    body: dict[str, Any]
    future: Future[Any] = field(default_factory=Future)
