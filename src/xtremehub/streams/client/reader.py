"""Reader groups and their readers.

A reader reads the segments the controller assigned to it, cuts events out of them and, at
each :meth:`EventStreamReader.read_next`, counts every event returned before as processed. It
reports those positions to the controller at least every ``sync_interval`` seconds (which is
also its heartbeat and where rebalancing happens). After a crash, the reader's segments are
read again from the last reported positions: at-least-once delivery. Each event carries its
:class:`EventPosition`, which an application can store with its results for exactly-once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from xtremehub.errors import InvalidStreamArgument, SegmentNotFound, SegmentTruncated, StreamError
from xtremehub.streams.client._framing import EventDecoder
from xtremehub.streams.controller._metadata import parse_segment_name
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import ReaderGroupState, StreamCut
from xtremehub.streams.segmentstore.contract import ReadResult, SegmentStoreContract

__all__ = ["EventPosition", "EventRead", "EventStreamReader", "ReaderGroup", "SegmentSlice"]

log = logging.getLogger(__name__)

#: Bytes asked from the segment store per read at first, and at the tail.
READ_SIZE = 1 << 20
#: Largest read: a reader catching up (historical reads, often from LTS) doubles its read size
#: after every full read up to this, so that one request fetches many LTS parts concurrently.
MAX_READ_SIZE = 16 << 20
#: Reads fetched ahead (in the background) per reader, for segments it is catching up on.
MAX_PREFETCH = 2
#: Longest single wait on one segment while others may have data.
POLL_WAIT = 0.05


@dataclass(frozen=True, slots=True)
class EventPosition:
    """Where an event lies: its segment and the offsets of its frame."""

    segment: str
    offset: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class EventRead:
    """An event returned by a reader."""

    data: bytes
    routing_key: str | None
    scope: str
    stream: str
    position: EventPosition


class _Cursor:
    def __init__(self, segment: str, offset: int) -> None:
        self.scope, self.stream, _ = parse_segment_name(segment)
        self.segment = segment
        self.decoder = EventDecoder(segment, offset)
        self.read_offset = offset
        self.read_size = READ_SIZE
        self.ended = False
        #: A read of ``(read_offset, read_size)`` started in the background, while catching up.
        self.prefetch: Future[ReadResult] | None = None

    @property
    def delivered(self) -> int:
        return self.decoder.offset


class EventStreamReader:
    """One member of a reader group; not thread-safe (one reader per thread)."""

    def __init__(
        self,
        controller: ControllerContract,
        store: SegmentStoreContract,
        scope: str,
        group: str,
        name: str,
        *,
        sync_interval: float = 0.5,
    ) -> None:
        if sync_interval <= 0:
            raise InvalidStreamArgument(f"reader sync_interval must be > 0, got {sync_interval}")
        self.scope, self.group, self.name = scope, group, name
        self.sync_interval = sync_interval
        self._controller, self._store = controller, store
        self._cursors: dict[str, _Cursor] = {}
        self._completed: list[str] = []
        self._next_sync = 0.0
        self._turn = 0
        self._offline = False
        self._prefetcher: ThreadPoolExecutor | None = None
        self._sync()

    @property
    def segments(self) -> list[str]:
        """Segments this reader owns now."""
        return sorted(self._cursors)

    def positions(self) -> dict[str, int]:
        """Offset of the next event to deliver, per owned segment."""
        return {name: c.delivered for name, c in self._cursors.items()}

    def read_next(self, timeout: float | None = None) -> EventRead | None:
        """The next event of any owned segment, or None when none came within ``timeout`` seconds
        (``None``: wait as long as it takes; 0: only what is available now).

        Calling it marks every event returned before as processed (reported at the next sync).
        """
        if self._offline:
            raise StreamError(f"reader {self.name} of group {self.scope}/{self.group} is offline")
        deadline = time.monotonic() + (timeout if timeout is not None else math.inf)
        while True:
            if time.monotonic() >= self._next_sync or self._completed:
                self._sync()
            event = self._buffered_event() or self._fetch(wait=0.0)
            if event is not None:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            wait = min(remaining, max(self._next_sync - time.monotonic(), 0.001))
            if not self._cursors:
                time.sleep(wait)
                continue
            event = self._fetch(wait=wait if len(self._cursors) == 1 else min(wait, POLL_WAIT))
            if event is not None:
                return event

    def get_segment_slice(self, timeout: float | None = None) -> SegmentSlice | None:
        """The next event and every event already received after it in the same segment."""
        first = self.read_next(timeout)
        if first is None:
            return None
        cursor = self._cursors.get(first.position.segment)
        return SegmentSlice(self, first, cursor)

    def reader_offline(self) -> None:
        """Leave the group: owned segments go back to the pool at the positions delivered so far."""
        if self._offline:
            return
        self._controller.reader_offline(self.scope, self.group, self.name, self.positions())
        self._cursors.clear()
        self._offline = True
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Same as :meth:`reader_offline`."""
        self.reader_offline()

    def __enter__(self) -> EventStreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader_offline()

    # -- internals ------------------------------------------------------------------------
    def _sync(self) -> None:
        completed, self._completed = self._completed, []
        assignment = self._controller.sync_reader(self.scope, self.group, self.name, self.positions(), completed)
        for name in assignment.released:
            self._cursors.pop(name, None)
        for name, offset in assignment.acquired:
            self._cursors[name] = _Cursor(name, offset)
        for name in [n for n in self._cursors if n not in assignment.owned]:
            del self._cursors[name]
        self._next_sync = time.monotonic() + self.sync_interval

    def _event(self, cursor: _Cursor) -> EventRead | None:
        item = cursor.decoder.next_event()
        if item is None:
            return None
        start, end, key, payload = item
        return EventRead(payload, key, cursor.scope, cursor.stream, EventPosition(cursor.segment, start, end))

    def _buffered_event(self) -> EventRead | None:
        for cursor in self._rotation():
            event = self._event(cursor)
            if event is not None:
                return event
        return None

    def _rotation(self) -> list[_Cursor]:
        cursors = list(self._cursors.values())
        if not cursors:
            return []
        self._turn = (self._turn + 1) % len(cursors)
        return cursors[self._turn :] + cursors[: self._turn]

    def _fetch(self, wait: float) -> EventRead | None:
        """Read more bytes; with ``wait`` > 0 only from one segment, waiting at its tail."""
        cursors = self._rotation()
        for cursor in cursors[:1] if wait > 0 else cursors:
            self._read_into(cursor, wait)
            event = self._event(cursor)
            if event is not None:
                return event
            if cursor.ended and cursor.decoder.buffered == 0:
                self._completed.append(cursor.segment)
                del self._cursors[cursor.segment]
        return None

    def _read_into(self, cursor: _Cursor, wait: float) -> None:
        pending, cursor.prefetch = cursor.prefetch, None
        try:
            if pending is not None:
                result = pending.result()
            else:
                result = self._store.read(cursor.segment, cursor.read_offset, cursor.read_size, wait=wait)
        except SegmentTruncated:
            start = self._store.info(cursor.segment).start_offset
            log.warning(
                "reader %s: %s truncated below %d; skipping to %d", self.name, cursor.segment, cursor.read_offset, start
            )
            cursor.decoder = EventDecoder(cursor.segment, start)
            cursor.read_offset = start
            return
        except SegmentNotFound:  # deleted by truncation: nothing left to read in it
            cursor.ended = True
            return
        cursor.decoder.feed(result.data)
        cursor.read_offset += len(result.data)
        cursor.ended = result.end_of_segment
        # Behind the tail (a full read): read more at once next time, and start that read now,
        # in the background, while the application works on these events. At the tail: small reads.
        full = len(result.data) >= cursor.read_size
        cursor.read_size = min(cursor.read_size * 2, MAX_READ_SIZE) if full else READ_SIZE
        if full and not cursor.ended:
            self._prefetch(cursor)

    def _prefetch(self, cursor: _Cursor) -> None:
        if sum(c.prefetch is not None for c in self._cursors.values()) >= MAX_PREFETCH:
            return
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(MAX_PREFETCH, thread_name_prefix=f"xhub-reader-{self.name}")
        read = self._store.read
        cursor.prefetch = self._prefetcher.submit(read, cursor.segment, cursor.read_offset, cursor.read_size)


class SegmentSlice:
    """Events of one segment that are already in memory; iterate to consume them."""

    def __init__(self, reader: EventStreamReader, first: EventRead, cursor: _Cursor | None) -> None:
        self.segment = first.position.segment
        self._reader, self._first, self._cursor = reader, first, cursor

    def __iter__(self) -> Iterator[EventRead]:
        yield self._first
        while self._cursor is not None and self._reader._cursors.get(self.segment) is self._cursor:
            event = self._reader._event(self._cursor)
            if event is None:
                return
            yield event


class ReaderGroup:
    """A named group of readers sharing the segments of one or more streams."""

    def __init__(self, controller: ControllerContract, store: SegmentStoreContract, scope: str, name: str) -> None:
        self.scope, self.name = scope, name
        self._controller, self._store = controller, store
        controller.get_reader_group(scope, name)  # raises ReaderGroupNotFound

    def create_reader(self, name: str, *, sync_interval: float = 0.5) -> EventStreamReader:
        """Join the group as ``name``; a reader restarted with its old name resumes its segments."""
        return EventStreamReader(
            self._controller, self._store, self.scope, self.name, name, sync_interval=sync_interval
        )

    def reader_offline(self, name: str) -> None:
        """Declare a (possibly crashed) reader gone; its segments resume at its last reported positions."""
        self._controller.reader_offline(self.scope, self.name, name, None)

    def state(self) -> ReaderGroupState:
        """Readers, segment owners and positions."""
        return self._controller.get_reader_group(self.scope, self.name)

    def stream_cuts(self) -> list[StreamCut]:
        """The group's last reported positions: one stream cut per stream (a checkpoint)."""
        return self._controller.get_reader_group_cuts(self.scope, self.name)

    def delete(self) -> None:
        """Delete the group and its state."""
        self._controller.delete_reader_group(self.scope, self.name)
