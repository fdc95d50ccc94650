"""The contract between the stream layer (controller, writers, readers) and the segment store.

Pravega splits a stream store in two: a *controller* that knows scopes, streams, segments,
scaling, transactions and reader groups, and a *segment store* that only knows named,
append-only byte sequences (segments). Events are framed by the client; the segment store
never looks inside the bytes. This module is that second half's interface. It is the seam
between :mod:`xtremehub.streams.segmentstore` (the implementation: write-ahead log, cache,
tiering to long-term storage, spill tier) and everything above it, and the same operations
are what the stream server exposes over the network.

Segment names are plain strings chosen by the controller, for example
``"scope/stream/3.#epoch.0"`` or ``"scope/stream/3.#txn.9f2c"`` for a transaction segment.

Guarantees every implementation gives:

- An append that returned (or whose future resolved) is durable: it survives ``kill -9`` of
  the process and is readable after restart, exactly once.
- Appends to one segment are applied in the order they were accepted.
- Exactly-once writers: an append carrying ``writer_id`` and ``event_number`` whose
  event number is not greater than the last one stored for that writer on that segment is
  acknowledged as a duplicate and not written again. The writer's last event number is
  stored atomically with the data, so this also holds across crashes and restarts.
- ``merge`` (transaction commit) is atomic: readers see all of the source's bytes in the
  target or none of them.
- When long-term storage (LTS) is unreachable, appends keep being accepted into memory and
  then local disk up to the configured budgets; past both budgets appends block (back
  pressure) and raise :class:`~xtremehub.errors.BackPressure` only after the caller's
  timeout, without writing anything. Nothing acknowledged is ever lost.
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from xtremehub.errors import BackPressure, InvalidOffset

if TYPE_CHECKING:
    from xtremehub.streams.segmentstore.runs import RunOutcome

__all__ = [
    "AppendOutcome",
    "AppendResult",
    "ReadResult",
    "SegmentBatch",
    "SegmentInfo",
    "SegmentStoreContract",
    "StoreStats",
    "check_batches",
    "gather_outcomes",
    "runs_via_batches",
    "when_all",
]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed: ``offset`` is the segment offset of its first byte."""

    segment: str
    offset: int
    length: int
    #: True when the append was recognised as a retry of an already stored event number;
    #: ``offset`` is then the offset of that writer's last stored event (nothing was written).
    duplicate: bool = False


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class SegmentBatch:
    """Events for one segment in :meth:`SegmentStoreContract.append_batches`.

    With a writer id, event ``i`` carries number ``first_event_number + i``.
    ``previous_event_number`` (optional, with a writer id) is the number of the writer's event
    sent to this segment just before this batch: a store that keeps writer numbers (the
    embedded one, and the stream server in front of it) refuses the whole batch with
    :class:`~xtremehub.errors.EventNumberGap` (nothing written) while the number it holds for
    the writer is lower, i.e. while that earlier event is not stored (refused for back
    pressure, or not arrived). So a batch never overtakes an earlier one whose re-send would
    then count as a duplicate. ``None``: no check (a re-send in order, or the first batch).
    """

    segment: str
    events: Sequence[bytes]
    first_event_number: int | None = None
    previous_event_number: int | None = None


#: One event's outcome in :meth:`SegmentStoreContract.append_many`: where it landed, or why not.
AppendOutcome = AppendResult | Exception


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Bytes read from ``offset``; ``end_of_segment`` when the segment is sealed and fully read."""

    segment: str
    offset: int
    data: bytes
    end_of_segment: bool = False


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What the store knows about one segment."""

    name: str
    #: First readable offset (grows with truncation).
    start_offset: int
    #: Offset one past the last durable byte.
    length: int
    sealed: bool
    #: Bytes of this segment already moved to long-term storage.
    tiered_length: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Health and tiering backlog, for monitoring and back-pressure decisions."""

    cache_bytes: int
    spill_bytes: int
    wal_bytes: int
    untiered_bytes: int
    lts_available: bool
    throttled: bool


class SegmentStoreContract(ABC):
    """Named append-only byte segments with durable appends, tiered to long-term storage."""

    @abstractmethod
    def create_segment(self, name: str) -> bool:
        """Create an empty segment; returns False (no error) when it already exists."""

    @abstractmethod
    def append(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
    ) -> AppendResult:
        """Append ``data`` and return once it is durable.

        ``expected_offset`` makes the append conditional (``ConditionalCheckFailed`` when the
        segment length differs). Raises ``SegmentNotFound``, ``SegmentSealed``,
        ``BackPressure`` (after ``timeout`` when both budgets are exhausted).
        """

    @abstractmethod
    def append_async(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
        previous_event_number: int | None = None,
    ) -> Future[AppendResult]:
        """Like :meth:`append` but returns at once; concurrent appends share one fsync.

        Appends queued by one thread are applied in the order it queued them (also when it
        mixes ``append_async`` and ``append``). Under back pressure (both budgets exhausted)
        the call itself blocks, and raises ``BackPressure`` after ``timeout`` seconds (default:
        the store's configured timeout; ``0`` raises at once instead of blocking, for callers
        such as an event loop that must not block). ``previous_event_number`` (with a writer id
        and event number, below it) is checked like :attr:`SegmentBatch.previous_event_number`:
        ``EventNumberGap`` while the store holds a lower number for the writer.
        """

    def append_many(
        self,
        segment: str,
        events: Sequence[bytes],
        *,
        writer_id: str | None = None,
        first_event_number: int | None = None,
        timeout: float | None = None,
    ) -> Future[list[AppendOutcome]]:
        """Append several events to one segment as one unit; one future for all of them.

        Event ``i`` carries event number ``first_event_number + i`` (with ``writer_id``), so the
        outcome of each event is exactly what ``append_async`` of the events one after the other
        would give: an :class:`AppendResult` (``duplicate=True`` for a number already stored,
        e.g. the stored prefix of a re-sent batch) or the error refusing that event
        (``EventTooLarge``, ``SegmentSealed``...), in event order. The future itself raises only
        when the batch as a whole could not be handed over (connection lost); the call raises
        like ``append_async`` (``BackPressure`` after ``timeout``, ``StoreClosed``).
        The same as :meth:`append_batches` with one batch.

        Example:
            >>> import tempfile
            >>> from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
            >>> with SegmentStore(SegmentStoreConfig(data_dir=tempfile.mkdtemp())) as store:
            ...     _ = store.create_segment("s")
            ...     first = store.append_many("s", [b"ab", b"cde"], writer_id="w", first_event_number=1).result()
            ...     again = store.append_many("s", [b"cde", b"f"], writer_id="w", first_event_number=2).result()
            >>> [(r.offset, r.length, r.duplicate) for r in first + again]
            [(0, 2, False), (2, 3, False), (2, 3, True), (5, 1, False)]
        """
        batch = SegmentBatch(segment, events, first_event_number)
        return self.append_batches([batch], writer_id=writer_id, timeout=timeout)[0]

    def append_batches(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[list[AppendOutcome]]]:
        """Several :meth:`append_many` of one writer at once, to one or more segments; a future per batch.

        Batches are applied in the order given (two batches to the same segment keep their
        order). Implementations hand them over together: the embedded store commits them in one
        group commit (one WAL record per segment), the remote store sends them in one
        APPEND_BATCH frame. ``timeout`` bounds the wait for back pressure as in
        :meth:`append_async` (``0``: raise ``BackPressure`` at once rather than block). This
        default queues their events one by one with ``append_async``.
        """
        check_batches(batches, writer_id)
        results: list[Future[list[AppendOutcome]]] = []
        queued = False
        refusal: BackPressure | None = None  # once one event is refused, the later ones are too (order)
        for batch in batches:
            futures: list[Future[AppendResult]] = []
            for i, data in enumerate(batch.events):
                number = None if batch.first_event_number is None else batch.first_event_number + i
                refused: Future[AppendResult] = Future()
                if refusal is not None:
                    refused.set_exception(refusal)
                    futures.append(refused)
                    continue
                try:
                    future = self.append_async(
                        batch.segment, data, writer_id=writer_id, event_number=number, timeout=timeout
                    )
                    futures.append(future)
                    queued = True
                except BackPressure as exc:
                    if not queued:
                        raise  # nothing was queued: the whole call is refused, as the embedded store does
                    refusal = exc
                    refused.set_exception(exc)
                    futures.append(refused)
                except Exception as exc:  # refused at once (too large): that event's outcome
                    refused.set_exception(exc)
                    futures.append(refused)
            results.append(gather_outcomes(futures))
        return results

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        """:meth:`append_batches` answered with one :class:`~.runs.RunOutcome` per batch.

        The same appends, order, durability and per-event outcomes; only the answer's form
        differs (offsets in a list, no object per event), which the embedded store, the
        stream server and the remote store produce without per-event Python objects. This
        default converts the answers of :meth:`append_batches`.
        """
        return runs_via_batches(self, batches, writer_id=writer_id, timeout=timeout)

    @abstractmethod
    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> ReadResult:
        """Read up to ``max_length`` bytes at ``offset`` from cache, local disk or LTS.

        At the tail, waits up to ``wait`` seconds for new data (empty ``data`` when none came).
        May return fewer bytes than available (one read is served from one tier): read again
        at ``offset + len(data)``. Raises ``SegmentTruncated`` below the start offset,
        ``InvalidOffset`` past the length, ``SegmentNotFound``.
        """

    @abstractmethod
    def info(self, segment: str) -> SegmentInfo:
        """Current start offset, length and sealed flag."""

    @abstractmethod
    def writer_event_number(self, segment: str, writer_id: str) -> int | None:
        """Last event number stored for ``writer_id`` on ``segment`` (None if never written)."""

    @abstractmethod
    def seal(self, segment: str) -> int:
        """Refuse further appends; returns the final length. Idempotent."""

    @abstractmethod
    def merge(self, target: str, source: str) -> int:
        """Atomically append all of sealed ``source`` to ``target`` and delete ``source``.

        Returns the target offset at which the source's bytes start. Idempotent for a source
        that was already merged into the target (after a crash and retry). An unsealed source
        is sealed by the merge itself (same atomic step); a truncated source is refused
        (``InvalidOffset``), a sealed target raises ``SegmentSealed``.
        """

    @abstractmethod
    def truncate(self, segment: str, offset: int) -> None:
        """Drop everything before ``offset`` (retention, stream-cut truncation).

        A no-op below the current start; ``InvalidOffset`` past the length.
        """

    @abstractmethod
    def delete(self, segment: str) -> None:
        """Delete a segment and its data in every tier."""

    @abstractmethod
    def list_segments(self, prefix: str = "") -> list[str]:
        """Names of existing segments starting with ``prefix``."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """Tiering backlog, budgets in use and whether LTS is reachable."""

    @abstractmethod
    def close(self) -> None:
        """Flush, stop background tiering and release the data directory lock."""


def check_batches(batches: Sequence[SegmentBatch], writer_id: str | None) -> None:
    """``InvalidOffset`` unless every batch has a first event number exactly when there is a writer id
    (and a previous event number, if any, below it)."""
    for batch in batches:
        if (writer_id is None) != (batch.first_event_number is None):
            raise InvalidOffset(f"segment {batch.segment!r}: writer_id and first_event_number must be given together")
        previous = batch.previous_event_number
        if previous is not None and (batch.first_event_number is None or not previous < batch.first_event_number):
            raise InvalidOffset(
                f"segment {batch.segment!r}: previous_event_number {previous} must be below"
                f" first_event_number {batch.first_event_number}"
            )


def when_all(futures: Sequence[Future[T]], combine: Callable[[Sequence[Future[T]]], R]) -> Future[R]:
    """A future resolving to ``combine(futures)`` once all are done (failing if ``combine`` raises).

    Example:
        >>> a: Future[int] = Future()
        >>> total = when_all([a], lambda done: sum(f.result() for f in done))
        >>> a.set_result(2)
        >>> total.result()
        2
    """
    combined: Future[R] = Future()
    left = [len(futures)]
    lock = threading.Lock()

    def finish() -> None:
        try:
            value = combine(futures)
        except Exception as exc:
            combined.set_exception(exc)
        else:
            combined.set_result(value)

    def one_done(_: Future[T]) -> None:
        with lock:
            left[0] -= 1
            if left[0]:
                return
        finish()

    if not futures:
        finish()
    for future in futures:
        future.add_done_callback(one_done)
    return combined


def runs_via_batches(
    store: SegmentStoreContract,
    batches: Sequence[SegmentBatch],
    *,
    writer_id: str | None = None,
    timeout: float | None = None,
) -> list[Future[RunOutcome]]:
    """``store.append_batches`` answered as :meth:`SegmentStoreContract.append_runs` answers.

    For stores and wrappers whose batches go through ``append_batches`` (fault injection in tests).
    """
    futures = store.append_batches(batches, writer_id=writer_id, timeout=timeout)
    out: list[Future[RunOutcome]] = []
    for batch, future in zip(batches, futures, strict=True):
        run = functools.partial(_run_of, batch.segment, [len(e) for e in batch.events])
        out.append(when_all([future], run))
    return out


def _run_of(segment: str, lengths: list[int], done: Sequence[Future[list[AppendOutcome]]]) -> RunOutcome:
    from xtremehub.streams.segmentstore.runs import RunOutcome

    return RunOutcome.of(segment, done[0].result(), lengths)


def gather_outcomes(futures: Sequence[Future[AppendResult]]) -> Future[list[AppendOutcome]]:
    """One future resolving, once all ``futures`` are done, to their results or errors in order.

    Example:
        >>> done: Future[AppendResult] = Future()
        >>> both = gather_outcomes([done])
        >>> done.set_result(AppendResult("s", 0, 1))
        >>> both.result()
        [AppendResult(segment='s', offset=0, length=1, duplicate=False)]
    """
    return when_all(futures, lambda done: [_outcome(f) for f in done])


def _outcome(future: Future[AppendResult]) -> AppendOutcome:
    exc = future.exception()
    if exc is None:
        return future.result()
    return exc if isinstance(exc, Exception) else RuntimeError(f"append interrupted: {exc!r}")
