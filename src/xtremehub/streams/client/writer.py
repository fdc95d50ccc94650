"""Event writers: routing by key, exactly-once appends, re-routing when scaling seals a segment.

A writer has an id and numbers its events; each append carries both, and the segment store
drops an append whose number is not above the last one it stored for that writer on that
segment. So a retry after a lost acknowledgement is harmless, and a writer restarted with the
same ``writer_id`` continues after the last number the store holds.

Per-key order: all events of a key go to the one active segment owning the key's hash. When a
write finds that segment sealed (the stream scaled), the writer waits for every event in flight,
asks the controller for the new active segments and re-sends, in event-number order, exactly
the events that were refused; readers read a successor only after its predecessors, so the
order of each key is kept.

Batching (with events in flight, ``max_in_flight`` > 0): an event for a segment with no batch
in flight is sent at once, alone, so a lone writer waits for nothing. Events arriving while a
segment's batch is in flight queue up for it and leave as soon as that batch is acknowledged,
together with the other segments' ready queues, in one ``append_batches`` call (one
APPEND_BATCH frame, one group commit, one WAL record per segment). A queue of 64 KiB or more
leaves at once (large events gain little from waiting), and a batch holds at most
``batch_bytes`` and ``batch_events``. Event numbers are given when a batch leaves, so the
events of a batch carry consecutive numbers and every segment sees increasing ones. Each event
keeps its own future and its own outcome (the future is the writer's record of the event too:
one object per event). Events without a routing key have no order to keep: they all go to one
lane picked at random (the *sticky* lane) until a batch of them leaves it, then to one picked
again, so they queue up into one batch instead of spreading one by one over every
segment (per batch, the client, the server and the WAL each pay more than per event). Each
batch also names the number of the lane's previous event (``SegmentBatch.previous_event_number``):
the store refuses it (``EventNumberGap``) while that event is not stored, so a batch never
overtakes an earlier one refused for back pressure, whatever the connection; refused events are
re-sent in number order.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, InvalidStateError, wait
from dataclasses import dataclass

from xtremehub.errors import BackPressure, InvalidStreamArgument, SegmentNotFound, SegmentSealed, StreamError
from xtremehub.streams.client._framing import encode_event, key_point
from xtremehub.streams.client.eventfuture import EventFuture, EventPointer, settle_run
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import SegmentRange
from xtremehub.streams.segmentstore.contract import AppendResult, SegmentBatch, SegmentStoreContract
from xtremehub.streams.segmentstore.runs import RunOutcome

__all__ = ["EventPointer", "EventStreamWriter", "Router", "WriterConfig"]

log = logging.getLogger(__name__)

#: Errors after which the same append is sent again (same event number, so at most once stored).
RETRYABLE = (ConnectionError, BackPressure)
#: Errors after which a batch's events are re-sent (re-routed first when their segment is gone).
_RESEND = (SegmentSealed, SegmentNotFound, *RETRYABLE)
#: Batches of one segment in flight before further events for it queue up to be coalesced.
_BATCHES_IN_FLIGHT = 1
#: Queued bytes at which a lane sends even while its batch is in flight: past this, coalescing
#: saves little per byte and keeping the wire busy matters more (large events go one by one).
_SEND_AT = 64 * 1024
#: Seconds the background sender waits for work before it ends (started again when needed).
_SENDER_IDLE = 1.0
#: The key point of an event without a routing key until it is queued (it goes to the sticky lane and
#: gets a point of that lane's segment, so that a re-send goes there or to its successor).
_KEYLESS = -1.0


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """How a writer behaves.

    ``max_in_flight`` = 0 makes :meth:`EventStreamWriter.write_event` return only once the event is
    durable; above 0 it returns at once and blocks only when that many events await acknowledgement.
    ``retry_timeout`` bounds retries of connection errors and back pressure. Events waiting
    for a segment's batch in flight leave together in batches of up to ``batch_bytes`` bytes
    and ``batch_events`` events (1 disables batching: one append per event).
    """

    max_in_flight: int = 0
    retry_timeout: float = 60.0
    report_interval: float = 0.5
    batch_bytes: int = 1 << 20
    batch_events: int = 4096

    def __post_init__(self) -> None:
        if self.max_in_flight < 0 or self.retry_timeout < 0 or self.report_interval <= 0:
            raise InvalidStreamArgument(f"writer config: bad values {self}")
        if self.batch_bytes < 1 or self.batch_events < 1:
            raise InvalidStreamArgument(f"writer config: batch_bytes and batch_events must be >= 1, not {self}")


def _settle(future: Future[EventPointer], result: AppendResult) -> None:
    """Resolve a writer's future once (the acknowledgement callback and the drain may race)."""
    if future.done():  # the common case for the drain: cheaper than the InvalidStateError path
        return
    with contextlib.suppress(InvalidStateError):
        future.set_result(EventPointer(result.segment, result.offset, result.length))


class Router:
    """Maps a key point in ``[0, 1)`` to the active segment owning it.

    >>> r = Router([SegmentRange("a", 0, 0, 0.0, 0.5), SegmentRange("b", 1, 0, 0.5, 1.0)])
    >>> r.pick(0.2).name, r.pick(0.5).name, r.pick(0.99).name
    ('a', 'b', 'b')
    """

    def __init__(self, segments: list[SegmentRange]) -> None:
        self.segments = sorted(segments, key=lambda s: s.key_low)
        self._lows = [s.key_low for s in self.segments]

    def pick(self, point: float) -> SegmentRange:
        """The segment whose range holds ``point``."""
        return self.segments[max(0, bisect.bisect_right(self._lows, point) - 1)]


class _Pending(EventFuture):
    """One event: the future returned for it and what the writer keeps about it until it is settled.

    One object per event (the future is the writer's record too); :meth:`_release` drops the
    event's bytes once the writer is done with it, so an application keeping futures keeps no frames.
    """

    __slots__ = ("frame", "number", "point", "segment", "sent")

    def __init__(self, condition: threading.Condition, frame: bytes, point: float, number: int = -1) -> None:
        super().__init__(condition)
        self.frame = frame
        self.point = point
        #: Event number, given when the event is sent (-1 before).
        self.number = number
        self.segment = ""
        #: The batch that carries this event (None while queued); the event's place in it is ``_index``.
        self.sent: Future[RunOutcome] | None = None

    def _refusal(self) -> BaseException | None:
        """Why the sent event was refused (None when stored); call once ``sent`` is done."""
        assert self.sent is not None
        exc = self.sent.exception()
        if exc is not None:
            return exc
        return self.sent.result().error(self._index)

    def _stored(self) -> AppendResult:
        """Wait for the event's acknowledgement; raises why it was refused."""
        assert self.sent is not None
        outcome = self.sent.result().outcome(self._index)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def cancel(self) -> bool:
        """An event handed to the writer cannot be taken back: always False (as for a running call)."""
        return False

    def _release(self) -> None:
        """The writer is done with the event (settled and dropped from its pending list)."""
        self.frame, self.sent = b"", None


class _Lane:
    """One segment's events waiting to be sent, and its batches in flight (guarded by the writer lock)."""

    __slots__ = ("blocked", "flights", "last", "queued", "queued_bytes", "segment")

    def __init__(self, segment: str) -> None:
        self.segment = segment
        self.queued: list[_Pending] = []
        self.queued_bytes = 0
        self.flights: list[_Flight] = []
        #: A batch was refused in a way that re-sends it: later events wait for that re-send (order).
        self.blocked = False
        #: The number of the last event sent in a batch of this lane since the last re-send (None:
        #: none): the next batch names it, so the store refuses that batch while the event is not
        #: stored (refused, or overtaken after a reconnect) rather than let it overtake.
        self.last: int | None = None

    def busy(self) -> bool:
        """True while ``_BATCHES_IN_FLIGHT`` batches are unanswered or a refused batch awaits its re-send."""
        flights = self.flights
        while flights and flights[0].answered:
            del flights[0]
        return self.blocked or len(flights) >= _BATCHES_IN_FLIGHT


class _Flight:
    """One batch sent; ``answered`` is set by its callback once its events are settled or marked refused."""

    __slots__ = ("answered", "events", "lane")

    def __init__(self, lane: _Lane, events: list[_Pending]) -> None:
        self.lane, self.events = lane, events
        self.answered = False


class EventStreamWriter:
    """Writes events to one stream. Thread-safe; create one per producer for the best throughput.

    Example (see :class:`~xtremehub.streams.StreamManager` for the full set-up)::

        writer = manager.create_writer("scope", "stream")
        writer.write_event(b"payload", routing_key="sensor-7")   # durable on return
        writer.close()
    """

    def __init__(
        self,
        controller: ControllerContract,
        store: SegmentStoreContract,
        scope: str,
        stream: str,
        *,
        writer_id: str | None = None,
        config: WriterConfig | None = None,
    ) -> None:
        self.scope, self.stream = scope, stream
        self.config = config or WriterConfig()
        self.writer_id = writer_id or uuid.uuid4().hex
        self._controller, self._store = controller, store
        self._lock = threading.RLock()
        self._pending: list[_Pending] = []
        self._lanes: dict[str, _Lane] = {}
        #: The lane of events without a key, until a batch of them leaves it (None: pick one at random).
        self._sticky: _Lane | None = None
        #: The key range of the sticky lane's segment (its events get points in it).
        self._sticky_range = (0.0, 1.0)
        #: The sticky lane whose batch left last: while it is in flight, the next sticky lane waits for it.
        self._left: _Lane | None = None
        #: Events without a key queued at which the sticky lane leaves although the previous one is in flight.
        self._half = max(1, self.config.max_in_flight // 2)
        #: Queued bytes at which a lane sends even while its batch is in flight.
        self._send_at = min(_SEND_AT, self.config.batch_bytes)
        self._closed = False
        #: Set (without the lock) when a batch was refused: the next call settles it first.
        self._failure = False
        #: The first refusal settled on an event's future since the last flush: the next flush raises
        #: it, also when the events were settled before it (by a later write or the re-send thread).
        self._unreported: BaseException | None = None
        self._queued = 0  # events in lanes, not sent yet
        # Answers arrive on the store's (or connection's) thread, which never takes the writer lock:
        # it sets _ready and wakes the caller waiting in _drain, or, when no call of the application
        # is running (_callers == 0), the background sender, which sends what queued up meanwhile.
        #: Shared by the futures of this writer's events (one condition, not one per event).
        self._settled = threading.Condition()
        self._signal = threading.Lock()
        self._answer_cond = threading.Condition(self._signal)
        self._idle_cond = threading.Condition(self._signal)
        self._ready = False
        self._callers = 0
        self._unanswered = 0  # batches sent whose callback has not finished
        self._awaited: Future[RunOutcome] | None = None  # the batch a caller waits for
        self._sender: threading.Thread | None = None
        self._stop_sender = False
        self._recovering = threading.Event()
        self._traffic: dict[str, list[int]] = {}
        self._last_report = time.monotonic()
        self._router = Router(controller.get_active_segments(scope, stream))
        if not self._router.segments:
            raise SegmentSealed(f"stream {scope}/{stream} is sealed; it has no active segments")
        names = {s.name for s in self._router.segments}
        if writer_id is not None:
            # A writer restarted with its id: its last events may be in segments sealed by a
            # scale since; numbering must go on after those too, or a re-sent event is new.
            names.update(n for n in store.list_segments(f"{scope}/{stream}/") if "#txn." not in n)
        last = [store.writer_event_number(name, self.writer_id) for name in sorted(names)]
        self._next_number = max((n for n in last if n is not None), default=-1) + 1

    @property
    def next_event_number(self) -> int:
        """The number the next event sent will carry (resumes after a restart with the same writer id).

        Numbers are given when events leave the writer, so events still queued for a batch
        (``max_in_flight`` > 0) take the next ones.
        """
        return self._next_number

    def write_event(self, data: bytes, routing_key: str | None = None) -> Future[EventPointer]:
        """Write one event; the returned future resolves once it is durable.

        With ``max_in_flight`` = 0 (the default) the event is durable on return and a refusal is
        raised here; otherwise it is set on the future. Raises ``EventTooLarge`` past 8 MiB,
        ``SegmentSealed`` when the stream is sealed.
        """
        frame = encode_event(data, routing_key)
        point = key_point(routing_key) if routing_key is not None else _KEYLESS
        if not self.config.max_in_flight:
            return self._write_now(frame, random.random() if routing_key is None else point)
        with self._lock:
            # ``_calling`` written out, and without ``_signal``: only holders of the writer lock
            # change ``_callers`` (see ``_left_call``); this is the per-event path
            self._callers += 1
            try:
                if self._closed:
                    raise StreamError(f"writer {self.writer_id} on {self.scope}/{self.stream} is closed")
                if self._failure:
                    self._drain()
                if self._ready:
                    self._pump()
                pending = _Pending(self._settled, frame, point)
                self._pending.append(pending)
                self._queue(pending)
                if time.monotonic() - self._last_report >= self.config.report_interval:
                    self._report()
                if len(self._pending) > self.config.max_in_flight:
                    self._drain(keep=self.config.max_in_flight)
            finally:
                self._left_call()
        return pending

    def _write_now(self, frame: bytes, point: float) -> Future[EventPointer]:
        """The synchronous path: one durable append (re-routed and retried as needed), then return."""
        with self._lock:
            if self._closed:
                raise StreamError(f"writer {self.writer_id} on {self.scope}/{self.stream} is closed")
            pending = _Pending(self._settled, frame, point, self._next_number)
            self._next_number += 1
            result = self._append_with_retries(pending, time.monotonic() + self.config.retry_timeout)
            counts = self._traffic.setdefault(result.segment, [0, 0])
            counts[0] += 1
            counts[1] += len(frame)
            self._maybe_report()
        pending._release()
        _settle(pending, result)
        return pending

    def flush(self) -> None:
        """Block until every event written so far is durable; raises the first refusal among them."""
        with self._lock, self._calling():
            futures: list[Future[EventPointer]] = list(self._pending)
            self._drain()
            self._report()
            refusal, self._unreported = self._unreported, None
        if refusal is not None:
            raise refusal
        for future in futures:
            future.result()

    def close(self) -> None:
        """Flush and stop accepting events."""
        with self._lock:
            if not self._closed:
                try:
                    self.flush()
                finally:
                    self._closed = True
        with self._signal:
            self._stop_sender = True
            self._idle_cond.notify()
            sender = self._sender
        if sender is not None and sender is not threading.current_thread():
            sender.join()

    def __enter__(self) -> EventStreamWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _calling(self) -> Iterator[None]:
        """Mark a call of the application (under the writer lock): answers wake it, not the sender."""
        self._callers += 1
        try:
            yield
        finally:
            self._left_call()

    def _left_call(self) -> None:
        """End of a call of the application (under the writer lock): hand queued events to the sender.

        ``_callers`` changes only under the writer lock, so it needs no ``_signal`` here. An answer
        sets ``_ready`` and then reads ``_callers`` (under ``_signal``); this writes ``_callers`` and
        then reads ``_ready``: one of the two sees the other's write, so either the answer wakes
        the sender or this does. With a sender running and no answer ready (the common case of a
        call leaving events queued) there is nothing to do and no lock to take.
        """
        self._callers -= 1
        if self._callers or not self._queued or (self._sender is not None and not self._ready):
            return
        with self._signal:
            if not self._callers and self._queued:
                self._wake_sender()

    def _wake_sender(self) -> None:
        """Under ``_signal``, with events queued and no call running: notify the sender, or start it.

        The sender ends after ``_SENDER_IDLE`` seconds without queued events, reading ``_queued``
        without the writer lock, so it may end just as a call leaves events queued without
        taking ``_signal`` (see ``_left_call``): the next answer then starts a new one here.
        """
        if self._sender is None:
            if not self._stop_sender:
                self._sender = threading.Thread(
                    target=self._send_loop, name=f"xhub-writer-{self.writer_id}-send", daemon=True
                )
                self._sender.start()
        elif self._ready:
            self._idle_cond.notify()

    def _queue(self, pending: _Pending) -> None:
        """Route an event to its segment's lane; send the lane now unless a batch of it is in flight.

        The sticky lane of events without a key, when it is not the last one, also waits while
        the batch that last left a sticky lane is in flight, until half the writer's window queued
        up: sent at once, alone, an event would take a round trip and a group commit of its own,
        and the window would alternate batches of one event and of all the others; batches of up
        to half the window, leaving in turn, keep it full. The answer's pump sends the lane.
        """
        if pending.point == _KEYLESS:
            lane = self._sticky
            if lane is None:
                lane = self._sticky = self._pick_sticky()
            # a point of the lane's segment: a re-send goes there (or to its successor), never to a
            # segment that may hold higher numbers of this writer (the store would drop it as a duplicate)
            low, high = self._sticky_range
            pending.point = low + random.random() * (high - low)
        else:
            lane = self._lane(self._router.pick(pending.point).name)
        pending.segment = lane.segment
        queued = lane.queued
        queued.append(pending)
        lane.queued_bytes += len(pending.frame)
        self._queued += 1
        if lane.busy():
            full = (
                lane.queued_bytes >= self._send_at
                or len(queued) >= self.config.batch_events
                or (lane is self._sticky and len(queued) >= self._half)
            )
            if full and not lane.blocked:
                self._send_lanes([lane])
        elif not self._holds(lane):
            self._send_lanes([lane])

    def _holds(self, lane: _Lane) -> bool:
        """Whether ``lane`` (not busy) waits for the batch that left the sticky lane before it (see ``_queue``)."""
        left = self._left
        return (
            lane is self._sticky
            and left is not None
            and left is not lane
            and len(lane.queued) < min(self._half, self.config.batch_events)
            and lane.queued_bytes < self._send_at
            and left.busy()
        )

    def _pick_sticky(self) -> _Lane:
        """A lane for the next events without a key: a segment at random, weighted by its share of
        the key space (as a random key would pick it; the shares drive auto-scaling). The one whose
        batch just left may come again: its events then leave at half the window (see ``_queue``)."""
        segments = self._router.segments
        (segment,) = random.choices(segments, weights=[s.key_high - s.key_low for s in segments])
        self._sticky_range = (segment.key_low, segment.key_high)
        return self._lane(segment.name)

    def _lane(self, segment: str) -> _Lane:
        """The lane of ``segment`` (made on first use)."""
        lane = self._lanes.get(segment)
        if lane is None:
            lane = self._lanes[segment] = _Lane(segment)
        return lane

    def _pump(self) -> None:
        """Send the queued events of every lane whose batches were answered (under the lock)."""
        # Cleared before the lanes are looked at, so no lock: an answer sets ``_ready`` after
        # marking its flight answered, and a flight marked before this is seen below.
        self._ready = False
        if self._queued:
            self._send_lanes(
                [lane for lane in self._lanes.values() if lane.queued and not lane.busy() and not self._holds(lane)]
            )

    def _send_lanes(self, lanes: list[_Lane]) -> None:
        """Send the queued events of ``lanes`` in one store call, as batches numbered now, consecutively."""
        batches: list[SegmentBatch] = []
        flights: list[_Flight] = []
        for lane in lanes:
            while lane.queued:
                if lane.queued_bytes <= self.config.batch_bytes and len(lane.queued) <= self.config.batch_events:
                    events, lane.queued, size, count = lane.queued, [], lane.queued_bytes, len(lane.queued)
                else:
                    size, count, most = 0, 0, self.config.batch_events
                    for p in lane.queued:
                        if count and (size + len(p.frame) > self.config.batch_bytes or count >= most):
                            break
                        size += len(p.frame)
                        count += 1
                    events, lane.queued = lane.queued[:count], lane.queued[count:]
                counts = self._traffic.setdefault(lane.segment, [0, 0])
                counts[0] += count
                counts[1] += size
                if lane is self._sticky:  # the next events without a key go to a lane picked again
                    self._sticky, self._left = None, lane
                lane.queued_bytes -= size
                self._queued -= count
                first = self._next_number
                self._next_number += count
                for i, p in enumerate(events):
                    p.number, p._index = first + i, i
                flight = _Flight(lane, events)
                lane.flights.append(flight)
                flights.append(flight)
                batches.append(SegmentBatch(lane.segment, [p.frame for p in events], first, lane.last))
                lane.last = first + count - 1
        if not batches:
            return
        with self._signal:
            self._unanswered += len(flights)
        try:
            answers = self._store.append_runs(batches, writer_id=self.writer_id)
        except Exception as exc:  # refused at once (back pressure, closed store): settled like refused batches
            answers = []
            for _ in flights:
                refused: Future[RunOutcome] = Future()
                refused.set_exception(exc)
                answers.append(refused)
        for flight, sent in zip(flights, answers, strict=True):
            for p in flight.events:
                p.sent = sent
            sent.add_done_callback(functools.partial(self._answered, flight))

    def _answered(self, flight: _Flight, sent: Future[RunOutcome]) -> None:
        """Store callback (on the store's or connection's thread: never block, never take the writer lock)."""
        exc = sent.exception()
        refused: list[BaseException] = [] if exc is None else [exc]
        if exc is None:
            run = sent.result()
            events = flight.events
            if len(run) != len(events):
                refused.append(StreamError(f"store answered {len(run)} outcomes for a batch of {len(events)} events"))
            elif run.ok:
                settle_run(self._settled, events, run, range(len(events)))
            else:
                refused.extend(run.errors.values())
                stored = [i for i in range(len(events)) if i not in run.errors]
                settle_run(self._settled, events, run, stored)
        if any(isinstance(e, _RESEND) for e in refused):
            flight.lane.blocked = True  # before ``answered``: the lane sends nothing more until the re-send
        flight.answered = True
        if refused:
            self._failure = True
            if not self._recovering.is_set():
                self._recovering.set()
                threading.Thread(target=self._recover, name=f"xhub-writer-{self.writer_id}-resend", daemon=True).start()
        with self._signal:
            self._unanswered -= 1
            self._ready = True
            if self._callers:
                # Wake a waiting caller only when it has something to do: its awaited batch is
                # answered, queued events may leave, or everything is answered (_resend_all).
                if sent is self._awaited or self._queued or not self._unanswered:
                    self._answer_cond.notify_all()
            elif self._queued:
                self._wake_sender()

    def _send_loop(self) -> None:
        """Send queued events when batches are answered while the application is not calling the writer.

        An application that writes and then only waits on its futures still gets every event
        sent; one that keeps writing sends them itself (``write_event`` pumps first). Ends after
        ``_SENDER_IDLE`` seconds without work (started again when needed).
        """
        while True:
            with self._signal:
                while not self._stop_sender and not (self._ready and not self._callers):
                    if not self._idle_cond.wait(_SENDER_IDLE) and not self._queued:
                        self._sender = None
                        return
                if self._stop_sender:
                    self._sender = None
                    return
            with self._lock, self._calling():
                if self._ready:
                    self._pump()

    def _wait_answer(self, head: _Pending) -> None:
        """Wait until ``head``'s batch is answered, sending what other answers let go meanwhile."""
        assert head.sent is not None
        while not head.sent.done():
            with self._signal:
                self._awaited = head.sent
                while not (self._ready and self._queued) and not head.sent.done():
                    self._answer_cond.wait()
                self._awaited = None
            if self._ready:
                self._pump()

    def _recover(self) -> None:
        """Re-send refused events even when the application only waits on its futures.

        A refusal answered after the drain let go of the writer lock but before ``_recovering``
        is cleared starts no thread of its own (it saw this one): this one looks again after
        clearing (``_answered`` sets ``_failure`` before it reads ``_recovering``, this clears
        ``_recovering`` before it reads ``_failure``, so one of the two sees the other).
        """
        while True:
            try:
                with self._lock, self._calling():
                    self._drain()
            except Exception:  # the futures carry the failures; keep the thread quiet (and do not retry)
                log.debug("writer %s: background re-send failed", self.writer_id, exc_info=True)
                self._recovering.clear()
                return
            self._recovering.clear()
            if not self._failure or self._recovering.is_set():
                return
            self._recovering.set()

    def _drain(self, keep: int = 0) -> None:
        """Settle the oldest pending events until at most ``keep`` remain, re-sending refused ones in order."""
        while len(self._pending) > keep:  # (``_resend_all`` replaces the list)
            head = self._pending[0]
            if head.done():  # settled by its batch's answer (refusals are settled only below)
                del self._pending[0]
                head._release()
                continue
            if head.sent is None:  # still queued: everything sent before it in its lane was answered
                self._pump()
                if head.sent is None:
                    self._send_lanes([self._lanes[head.segment]])
            self._wait_answer(head)
            try:
                result = head._stored()
            except _RESEND as exc:
                self._resend_all(exc)
                continue
            except StreamError as exc:
                self._pending.pop(0)
                self._refuse(head, exc)
                continue
            self._pending.pop(0)
            head._release()
            _settle(head, result)
        if not self._pending:  # everything answered and handled: no refusal waits any more
            self._failure = False

    def _refuse(self, p: _Pending, exc: BaseException) -> None:
        """Settle ``p`` as refused; the next :meth:`flush` raises the first such refusal."""
        p._release()
        p.set_exception(exc)
        if self._unreported is None:
            self._unreported = exc

    def _resend_all(self, cause: BaseException) -> None:
        """Wait for everything in flight, then re-send every refused or queued event synchronously, in order."""
        self._failure = False
        wait({p.sent for p in self._pending if p.sent is not None})
        with self._signal:  # let every callback finish: none may mark a lane after the reset below
            while self._unanswered:
                self._answer_cond.wait()
        for lane in self._lanes.values():
            # The re-send below goes one event at a time (nothing can overtake), unchecked: an event
            # given up for good leaves a gap on purpose. The next batch of a segment names the last
            # event the re-send stored there (never one given up: that would be a spurious gap).
            lane.queued, lane.queued_bytes, lane.blocked, lane.flights, lane.last = [], 0, False, [], None
        self._queued = 0
        self._sticky = self._left = None
        deadline = time.monotonic() + self.config.retry_timeout
        log.info("writer %s: re-sending refused events after %s", self.writer_id, type(cause).__name__)
        remaining: list[_Pending] = []
        # Sent events in the order of their numbers (lanes number their batches when they leave,
        # so write order across lanes is not number order): the store drops an event whose number
        # is not above the last one of this writer on its new segment, so a re-sent event must
        # never follow one with a higher number there. Each key's events are in one lane, numbered
        # in write order, and queued events (numbered now) come after the sent ones of their lane.
        sent = sorted((p for p in self._pending if p.sent is not None), key=lambda p: p.number)
        for p in sent + [p for p in self._pending if p.sent is None]:
            if p.sent is not None:
                error = p._refusal()
                if error is None:
                    remaining.append(p)
                    continue
                if not isinstance(error, _RESEND):
                    self._refuse(p, error)
                    continue
            else:
                p.number = self._next_number
                self._next_number += 1
            try:
                result = self._append_with_retries(p, deadline)
            except (StreamError, ConnectionError) as exc:
                self._refuse(p, exc)
                continue
            if p.sent is None:  # never sent in a batch: not counted yet
                counts = self._traffic.setdefault(result.segment, [0, 0])
                counts[0] += 1
                counts[1] += len(p.frame)
            p._release()
            _settle(p, result)
            into = self._lanes.get(result.segment)
            if into is None:
                into = self._lanes[result.segment] = _Lane(result.segment)
            into.last = p.number if into.last is None else max(into.last, p.number)
        kept = {id(p) for p in remaining}
        self._pending = [p for p in self._pending if id(p) in kept]  # stored ones, in write order

    def _append_with_retries(self, p: _Pending, deadline: float) -> AppendResult:
        delay = 0.01
        while True:
            segment = self._router.pick(p.point).name
            try:
                return self._store.append(segment, p.frame, writer_id=self.writer_id, event_number=p.number)
            except (SegmentSealed, SegmentNotFound):
                if time.monotonic() > deadline:
                    raise
                self._refresh_routing(segment)
            except RETRYABLE:
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _refresh_routing(self, sealed: str) -> None:
        active = self._controller.get_active_segments(self.scope, self.stream)
        if not active or self._controller.get_stream(self.scope, self.stream).sealed:
            raise SegmentSealed(f"stream {self.scope}/{self.stream} is sealed")
        if [s.name for s in active] == [s.name for s in self._router.segments]:
            time.sleep(0.01)  # the scale is between sealing and publishing its successors
        self._router = Router(active)
        self._sticky = self._left = None
        log.debug("writer %s: %s sealed, now routing over %s", self.writer_id, sealed, [s.name for s in active])

    def _maybe_report(self) -> None:
        if time.monotonic() - self._last_report >= self.config.report_interval:
            self._report()

    def _report(self) -> None:
        self._last_report = time.monotonic()
        if not self._traffic:
            return
        traffic = {seg: (c[0], c[1]) for seg, c in self._traffic.items()}
        self._traffic = {}
        try:
            self._controller.report_traffic(self.scope, self.stream, traffic)
        except (StreamError, ConnectionError) as exc:  # traffic reports only steer auto-scaling
            log.debug("writer %s: traffic report failed: %s", self.writer_id, exc)
