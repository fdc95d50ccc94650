"""Reader groups and their readers.

A reader reads the segments the controller assigned to it, cuts events out of them and, at
each :meth:`EventStreamReader.read_next`, counts every event returned before as processed. It
reports those positions to the controller at least every ``sync_interval`` seconds (which is
also its heartbeat and where rebalancing happens). After a crash, the reader's segments are
read again from the last reported positions: at-least-once delivery. Each event carries its
:class:`EventPosition`, which an application can store with its results for exactly-once.

Checkpoints give one consistent cut across all readers of a group: after
:meth:`ReaderGroup.initiate_checkpoint`, each reader returns a *marker* from ``read_next``
(``event.is_checkpoint``, ``event.checkpoint_name``, no data) before any further event; an
application stores its state under that name, and :meth:`ReaderGroup.reset_to_checkpoint`
later repositions the group exactly after what that state holds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from xtremehub.errors import (
    CheckpointFailed,
    CheckpointNotFound,
    CheckpointTimeout,
    InvalidStreamArgument,
    ReaderGroupReset,
    SegmentNotFound,
    SegmentTruncated,
    StreamError,
)
from xtremehub.streams.client._framing import EventDecoder
from xtremehub.streams.controller._metadata import parse_segment_name
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import Checkpoint, ReaderGroupConfig, ReaderGroupState, StreamCut
from xtremehub.streams.segmentstore.contract import ReadResult, SegmentStoreContract

__all__ = [
    "CheckpointWait",
    "EventPosition",
    "EventRead",
    "EventStreamReader",
    "ReaderGroup",
    "SegmentSlice",
    "checkpoint_config",
]

log = logging.getLogger(__name__)

#: Bytes asked from the segment store per read at first, and at the tail.
READ_SIZE = 1 << 20
#: Largest read: a reader catching up (historical reads, often from LTS) doubles its read size
#: after every full read up to this, so that one request fetches many LTS parts concurrently.
MAX_READ_SIZE = 16 << 20
#: Reads fetched ahead (in the background) per reader, one per segment it is catching up on.
MAX_PREFETCH = 6
#: Longest single wait on one segment while others may have data.
POLL_WAIT = 0.05
#: Shortest and longest pause between two looks at a pending checkpoint (growing by half each time).
CHECKPOINT_POLL = (0.005, 0.05)
#: Default seconds every reader has to record a checkpoint.
CHECKPOINT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class EventPosition:
    """Where an event lies: its segment and the offsets of its frame."""

    segment: str
    offset: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class EventRead:
    """An event returned by a reader, or a checkpoint marker (``is_checkpoint``).

    A marker has no data, an empty ``stream`` and position, and the checkpoint's name in
    ``checkpoint_name``: every event the reader returned before it is before the checkpoint's
    cut, every later one after it.
    """

    data: bytes
    routing_key: str | None
    scope: str
    stream: str
    position: EventPosition
    checkpoint_name: str | None = None

    @property
    def is_checkpoint(self) -> bool:
        """True for a checkpoint marker (then there is no event)."""
        return self.checkpoint_name is not None


class _Cursor:
    def __init__(self, segment: str, offset: int) -> None:
        self.scope, self.stream, _ = parse_segment_name(segment)
        self.segment = segment
        self.decoder = EventDecoder(segment, offset)
        self.read_offset = offset
        self.read_size = READ_SIZE
        self.ended = False
        #: The next read ``(offset, size, future)``, started in the background while catching up.
        self.ahead: tuple[int, int, Future[ReadResult]] | None = None

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
        opener: Callable[[EventRead], EventRead] | None = None,
    ) -> None:
        if sync_interval <= 0:
            raise InvalidStreamArgument(f"reader sync_interval must be > 0, got {sync_interval}")
        self.scope, self.group, self.name = scope, group, name
        self._opener = opener  # decrypts events of encrypted streams (client/sealing.py)
        self._unopened: EventRead | None = None  # an event the opener failed on: given again next
        self.sync_interval = sync_interval
        self._controller, self._store = controller, store
        self._cursors: dict[str, _Cursor] = {}
        self._completed: dict[str, int] = {}  # read to their end, not yet reported: segment -> end offset
        self._next_sync = 0.0
        self._turn = 0
        self._offline = False
        self._generation: int | None = None
        self._checkpoint_due: str | None = None  # announced by the controller, marker not returned yet
        self._checkpoint_taken: str | None = None  # marker returned, not yet recorded
        self._prefetcher: ThreadPoolExecutor | None = None
        self._end_checked = -math.inf
        self._at_end = False
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
        Once the group has read every event of its streams and they are all sealed, it returns
        None at once instead of waiting (:meth:`ReaderGroup.is_fully_read` tells the two apart).
        While a checkpoint of the group is pending, it returns the checkpoint's marker
        (``is_checkpoint``) before any further event; the next call records the checkpoint.
        """
        if self._offline:
            raise StreamError(f"reader {self.name} of group {self.scope}/{self.group} is offline")
        if self._unopened is not None:  # the key release (or decryption) failed last time: retry it
            retry, self._unopened = self._unopened, None
            return self._open(retry)
        deadline = time.monotonic() + (timeout if timeout is not None else math.inf)
        while True:
            if time.monotonic() >= self._next_sync or self._completed or self._checkpoint_taken:
                self._sync()
            if self._checkpoint_due is not None:
                return self._marker()
            event = self._buffered_event() or self._fetch(wait=0.0)
            if event is not None:
                return event if self._opener is None else self._open(event)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            wait = min(remaining, max(self._next_sync - time.monotonic(), 0.001))
            if not self._cursors:
                if self._end_of_streams():
                    return None  # nothing will ever come: do not wait out the timeout
                time.sleep(wait)
                continue
            event = self._fetch(wait=wait if len(self._cursors) == 1 else min(wait, POLL_WAIT))
            if event is not None:
                return event if self._opener is None else self._open(event)

    def _open(self, event: EventRead) -> EventRead:
        """Decrypt ``event``; on failure keep it, so that the next ``read_next`` tries it again
        (a refused key release or a key service that is down loses no event)."""
        assert self._opener is not None
        try:
            return self._opener(event)
        except BaseException:
            self._unopened = event
            raise

    def _end_of_streams(self) -> bool:
        """The group has read every event of its streams, and they are all sealed (asked once per sync)."""
        now = time.monotonic()
        if now >= self._end_checked + self.sync_interval:
            self._end_checked = now
            self._at_end = fully_read(self._controller, self.scope, self.group)
        return self._at_end

    def get_segment_slice(self, timeout: float | None = None) -> SegmentSlice | None:
        """The next event and every event already received after it in the same segment."""
        first = self.read_next(timeout)
        if first is None:
            return None
        cursor = None if first.is_checkpoint else self._cursors.get(first.position.segment)
        return SegmentSlice(self, first, cursor)

    def reader_offline(self) -> None:
        """Leave the group: owned segments go back to the pool at the positions delivered so far."""
        if self._offline:
            return
        # segments read to their end but not yet reported go back at their end, not re-read
        positions = {**self._completed, **self.positions()}
        self._controller.reader_offline(self.scope, self.group, self.name, positions)
        self._cursors.clear()
        self._completed = {}
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
        completed, self._completed = self._completed, {}
        try:
            assignment = self._controller.sync_reader(
                self.scope,
                self.group,
                self.name,
                self.positions(),
                list(completed),
                self._checkpoint_taken,
                self._generation,
            )
        except ReaderGroupReset:
            self._cursors.clear()
            self._offline = True
            if self._prefetcher is not None:
                self._prefetcher.shutdown(wait=False, cancel_futures=True)
            raise
        except BaseException:
            self._completed = {**completed, **self._completed}  # report them again at the next sync
            raise
        self._generation = assignment.generation
        self._checkpoint_taken = None
        if assignment.checkpoint is not None:
            self._checkpoint_due = assignment.checkpoint
        for name in assignment.released:
            self._cursors.pop(name, None)
        for name, offset in assignment.acquired:
            self._cursors[name] = _Cursor(name, offset)
        for name in [n for n in self._cursors if n not in assignment.owned]:
            del self._cursors[name]
        self._next_sync = time.monotonic() + self.sync_interval

    def _marker(self) -> EventRead:
        """Return the due checkpoint's marker; its positions are recorded at the next sync."""
        name, self._checkpoint_due = self._checkpoint_due, None
        assert name is not None
        self._checkpoint_taken = name
        log.debug("reader %s of group %s/%s at checkpoint %s", self.name, self.scope, self.group, name)
        return EventRead(b"", None, self.scope, "", EventPosition("", 0, 0), name)

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
        """Read more bytes; with ``wait`` > 0 only from one segment, waiting at its tail.

        Without waiting at a tail, segments whose read started ahead has finished go first:
        a reader catching up on several segments takes whichever data came back first instead
        of waiting for one segment's read while another's is ready.
        """
        cursors = self._rotation()
        if wait == 0:
            cursors = self._ready_first(cursors)
        for cursor in cursors[:1] if wait > 0 else cursors:
            self._read_into(cursor, wait)
            event = self._event(cursor)
            if event is not None:
                return event
            if cursor.ended and cursor.decoder.buffered == 0:
                self._completed[cursor.segment] = cursor.delivered
                del self._cursors[cursor.segment]
        return None

    @staticmethod
    def _ready_first(cursors: list[_Cursor]) -> list[_Cursor]:
        """``cursors`` with those whose read ahead is done first (order kept otherwise); when
        every cursor has a read ahead and none is done, after the first of them is."""
        flights = [c.ahead[2] for c in cursors if c.ahead is not None]
        if not flights:
            return cursors
        if len(flights) == len(cursors) and not any(f.done() for f in flights):
            wait(flights, return_when=FIRST_COMPLETED)
        done = [c.ahead is not None and c.ahead[2].done() for c in cursors]
        if all(done) or not any(done):
            return cursors
        return [c for c, d in zip(cursors, done, strict=True) if d] + [
            c for c, d in zip(cursors, done, strict=True) if not d
        ]

    def _read_into(self, cursor: _Cursor, wait: float) -> None:
        ahead = self._read_ahead(cursor)
        try:
            if ahead is None:
                requested = cursor.read_size
                result = self._store.read(cursor.segment, cursor.read_offset, requested, wait=wait)
            else:
                result, requested = ahead
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
        got = len(result.data)
        cursor.decoder.feed(result.data)
        cursor.read_offset += got
        cursor.ended = result.end_of_segment
        # Behind the tail (a full read, or one of at least READ_SIZE: the store may serve a big
        # read from one LTS part): read more at once next time, and start that read now, in the
        # background, while the application works on these events. At the tail: small reads.
        if got >= requested:
            cursor.read_size = min(cursor.read_size * 2, MAX_READ_SIZE)
        elif got < READ_SIZE:  # at the tail (a read cut short by the store keeps its size)
            cursor.read_size = READ_SIZE
        if got >= min(requested, READ_SIZE) and not cursor.ended:
            self._prefetch(cursor)

    def _read_ahead(self, cursor: _Cursor) -> tuple[ReadResult, int] | None:
        """The read started ahead at the cursor's offset and its size, if it succeeded with data."""
        if cursor.ahead is None:
            return None
        at, size, future = cursor.ahead
        cursor.ahead = None
        if at != cursor.read_offset:  # the cursor moved (truncation): not needed
            future.cancel()
            return None
        try:
            result = future.result()
        except Exception:  # failed or stale (the segment changed): read it now
            return None
        if not result.data and not result.end_of_segment:
            return None  # nothing yet: read now, waiting at the tail as the caller asked
        return result, size

    def _prefetch(self, cursor: _Cursor) -> None:
        """Start the cursor's next read in the background (one per cursor, ``MAX_PREFETCH`` in all).

        One read ahead, at the offset where the last one ended, always lines up with what the
        store returns (it may return less than asked); a store that reads further ahead by
        itself (the segment store's LTS read-ahead) keeps more in flight.
        """
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(MAX_PREFETCH, thread_name_prefix=f"xhub-reader-{self.name}")
        if cursor.ahead is not None or sum(c.ahead is not None for c in self._cursors.values()) >= MAX_PREFETCH:
            return
        at, size = cursor.read_offset, cursor.read_size
        cursor.ahead = (at, size, self._prefetcher.submit(self._store.read, cursor.segment, at, size))


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


def checkpoint_config(checkpoint: Checkpoint, reader_timeout: float) -> ReaderGroupConfig:
    """A group configuration starting at a completed checkpoint's cuts (``CheckpointFailed`` if pending)."""
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidStreamArgument(f"not a checkpoint: {checkpoint!r:.80}")
    if not checkpoint.completed:
        raise CheckpointFailed(
            f"checkpoint {checkpoint.name!r} of group {checkpoint.scope}/{checkpoint.group} is not completed "
            f"(waiting for {', '.join(checkpoint.waiting)}); a group can start only at a completed one"
        )
    streams = tuple(f"{c.scope}/{c.stream}" for c in checkpoint.stream_cuts)
    return ReaderGroupConfig(streams, "cut", checkpoint.stream_cuts, reader_timeout)


class CheckpointWait:
    """One wait for a checkpoint to complete: when to look again and when to give up.

    Shared by the blocking :meth:`ReaderGroup.initiate_checkpoint` and its asyncio variant,
    which differ only in how they pause between two looks.
    """

    def __init__(self, controller: ControllerContract, scope: str, group: str, name: str, timeout: float) -> None:
        if not timeout > 0:
            raise InvalidStreamArgument(f"checkpoint {name!r}: timeout must be > 0 seconds, got {timeout}")
        self._controller = controller
        self.scope, self.group, self.name, self.timeout = scope, group, name, timeout
        self.deadline = time.monotonic() + timeout
        self._pause = CHECKPOINT_POLL[0]

    def start(self) -> Checkpoint | None:
        """Initiate the checkpoint; the checkpoint when already completed (no reader online)."""
        checkpoint = self._controller.initiate_checkpoint(self.scope, self.group, self.name, self.timeout)
        return checkpoint if checkpoint.completed else None

    def check(self) -> Checkpoint | None:
        """The completed checkpoint, or None while pending; past the deadline cancel it and raise
        :class:`~xtremehub.errors.CheckpointTimeout`."""
        try:
            checkpoint = self._controller.get_checkpoint(self.scope, self.group, self.name)
        except CheckpointNotFound as exc:
            if time.monotonic() >= self.deadline:
                raise self._timeout(()) from exc
            raise CheckpointFailed(
                f"checkpoint {self.name!r} of group {self.scope}/{self.group} was cancelled before it completed "
                "(the group was reset, or the checkpoint deleted or expired)"
            ) from exc
        if checkpoint.completed:
            return checkpoint
        if time.monotonic() < self.deadline:
            return None
        if not self._controller.cancel_checkpoint(self.scope, self.group, self.name):
            try:  # completed (or dropped) between the two calls
                late = self._controller.get_checkpoint(self.scope, self.group, self.name)
            except CheckpointNotFound:
                late = checkpoint
            if late.completed:
                return late
        raise self._timeout(checkpoint.waiting)

    def pause(self) -> float:
        """Seconds to wait before the next :meth:`check` (growing, never past the deadline)."""
        pause = min(self._pause, max(self.deadline - time.monotonic(), 0.0))
        self._pause = min(self._pause * 1.5, CHECKPOINT_POLL[1])
        return pause

    def _timeout(self, waiting: tuple[str, ...]) -> CheckpointTimeout:
        who = f"readers {', '.join(waiting)} did not" if waiting else "not every reader did"
        return CheckpointTimeout(
            f"checkpoint {self.name!r} of group {self.scope}/{self.group}: {who} record it within "
            f"{self.timeout:g} s; it was cancelled"
        )


def fully_read(controller: ControllerContract, scope: str, group: str) -> bool:
    """Whether reader group ``scope/group`` has read every event of its streams, all sealed."""
    state = controller.get_reader_group(scope, group)
    if any(seg.state != "completed" for seg in state.segments):
        return False
    for qualified in state.config.streams:
        s_scope, s_stream = qualified.split("/", 1)
        if not controller.get_stream(s_scope, s_stream).sealed:
            return False
    # Sealed, and every segment the group knows is completed: a completed segment's successors
    # join the group in the same controller transaction, so none is left out.
    return True


class ReaderGroup:
    """A named group of readers sharing the segments of one or more streams."""

    def __init__(
        self,
        controller: ControllerContract,
        store: SegmentStoreContract,
        scope: str,
        name: str,
        *,
        opener: Callable[[EventRead], EventRead] | None = None,
    ) -> None:
        self.scope, self.name = scope, name
        self._controller, self._store, self._opener = controller, store, opener
        controller.get_reader_group(scope, name)  # raises ReaderGroupNotFound

    def create_reader(self, name: str, *, sync_interval: float = 0.5) -> EventStreamReader:
        """Join the group as ``name``; a reader restarted with its old name resumes its segments."""
        return EventStreamReader(
            self._controller, self._store, self.scope, self.name, name, sync_interval=sync_interval, opener=self._opener
        )

    def reader_offline(self, name: str) -> None:
        """Declare a (possibly crashed) reader gone; its segments resume at its last reported positions."""
        self._controller.reader_offline(self.scope, self.name, name, None)

    def state(self) -> ReaderGroupState:
        """Readers, segment owners and positions."""
        return self._controller.get_reader_group(self.scope, self.name)

    def is_fully_read(self) -> bool:
        """True once every event of the group's streams was read and all of them are sealed.

        Readers of such a group get None from ``read_next`` at once. A stream that is not sealed
        can always get more events, so its group is never fully read.
        """
        return fully_read(self._controller, self.scope, self.name)

    def stream_cuts(self) -> list[StreamCut]:
        """The group's last reported positions: one stream cut per stream (no consistency across readers)."""
        return self._controller.get_reader_group_cuts(self.scope, self.name)

    # -- checkpoints ----------------------------------------------------------------------
    def initiate_checkpoint(self, name: str, timeout: float = CHECKPOINT_TIMEOUT) -> Checkpoint:
        """Take a checkpoint and wait until every reader of the group has recorded it.

        Each online reader returns a marker (``event.is_checkpoint``) from its next
        ``read_next``; the checkpoint completes once each one has called ``read_next`` again
        (or gone offline). Call this from another thread than the readers'. Raises
        ``CheckpointTimeout`` (and cancels the checkpoint) when a reader does not read within
        ``timeout`` seconds, ``CheckpointFailed`` while another checkpoint is in flight, and
        ``AlreadyExists`` when the group has a checkpoint named ``name``.
        """
        wait = self.checkpoint_wait(name, timeout)
        checkpoint = wait.start()
        while checkpoint is None:
            time.sleep(wait.pause())
            checkpoint = wait.check()
        return checkpoint

    def checkpoint_wait(self, name: str, timeout: float = CHECKPOINT_TIMEOUT) -> CheckpointWait:
        """The steps of :meth:`initiate_checkpoint` (start, check, pause), for callers that wait their own way."""
        return CheckpointWait(self._controller, self.scope, self.name, name, timeout)

    def get_checkpoint(self, name: str) -> Checkpoint:
        """A checkpoint of this group (``CheckpointNotFound`` when unknown)."""
        return self._controller.get_checkpoint(self.scope, self.name, name)

    def list_checkpoints(self) -> list[Checkpoint]:
        """This group's checkpoints, oldest first (durable: they survive restarts)."""
        return self._controller.list_checkpoints(self.scope, self.name)

    def delete_checkpoint(self, name: str) -> bool:
        """Forget a checkpoint; False when there was none."""
        return self._controller.delete_checkpoint(self.scope, self.name, name)

    def reset_to_checkpoint(self, checkpoint: Checkpoint | str) -> None:
        """Reposition the group exactly at a completed checkpoint (a ``Checkpoint`` or its name here).

        Every reader is dropped (readers created before get ``ReaderGroupReset``): create new
        ones to read on from the checkpoint's cut.
        """
        if isinstance(checkpoint, str):
            checkpoint = self.get_checkpoint(checkpoint)
        config = checkpoint_config(checkpoint, self.state().config.reader_timeout)
        self._controller.reset_reader_group(self.scope, self.name, config)

    def delete(self) -> None:
        """Delete the group, its state and its checkpoints."""
        self._controller.delete_reader_group(self.scope, self.name)
