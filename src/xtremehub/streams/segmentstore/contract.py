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

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass

__all__ = ["AppendResult", "ReadResult", "SegmentInfo", "SegmentStoreContract", "StoreStats"]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed: ``offset`` is the segment offset of its first byte."""

    segment: str
    offset: int
    length: int
    #: True when the append was recognised as a retry of an already stored event number;
    #: ``offset`` is then the offset of that writer's last stored event (nothing was written).
    duplicate: bool = False


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
    ) -> Future[AppendResult]:
        """Like :meth:`append` but returns at once; concurrent appends share one fsync.

        Appends queued by one thread are applied in the order it queued them (also when it
        mixes ``append_async`` and ``append``). Under back pressure (both budgets exhausted)
        the call itself blocks, and raises ``BackPressure`` after ``timeout`` seconds (default:
        the store's configured timeout; ``0`` raises at once instead of blocking, for callers
        such as an event loop that must not block).
        """

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
