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
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import random
import threading
import time
import uuid
from concurrent.futures import Future, InvalidStateError, wait
from dataclasses import dataclass, field

from xtremehub.errors import BackPressure, InvalidStreamArgument, SegmentNotFound, SegmentSealed, StreamError
from xtremehub.streams.client._framing import encode_event, key_point
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import SegmentRange
from xtremehub.streams.segmentstore.contract import AppendResult, SegmentStoreContract

__all__ = ["EventPointer", "EventStreamWriter", "Router", "WriterConfig"]

log = logging.getLogger(__name__)

#: Errors after which the same append is sent again (same event number, so at most once stored).
RETRYABLE = (ConnectionError, BackPressure)


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """How a writer behaves.

    ``max_in_flight`` = 0 makes :meth:`EventStreamWriter.write_event` return only once the event is
    durable; above 0 it returns at once and blocks only when that many events await acknowledgement.
    ``retry_timeout`` bounds retries of connection errors and back pressure.
    """

    max_in_flight: int = 0
    retry_timeout: float = 60.0
    report_interval: float = 0.5

    def __post_init__(self) -> None:
        if self.max_in_flight < 0 or self.retry_timeout < 0 or self.report_interval <= 0:
            raise InvalidStreamArgument(f"writer config: bad values {self}")


@dataclass(frozen=True, slots=True)
class EventPointer:
    """Where a written event is stored."""

    segment: str
    offset: int
    length: int


def _settle(future: Future[EventPointer], result: AppendResult) -> None:
    """Resolve a writer's future once (the acknowledgement callback and the drain may race)."""
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


@dataclass(slots=True)
class _Pending:
    number: int
    frame: bytes
    point: float
    future: Future[EventPointer]
    segment: str = ""
    sent: Future[AppendResult] | None = field(default=None, repr=False)


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
        self._closed = False
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
        """The number the next event will carry (resumes after a restart with the same writer id)."""
        return self._next_number

    def write_event(self, data: bytes, routing_key: str | None = None) -> Future[EventPointer]:
        """Write one event; the returned future resolves once it is durable.

        With ``max_in_flight`` = 0 (the default) the event is durable on return and a refusal is
        raised here; otherwise it is set on the future. Raises ``EventTooLarge`` past 8 MiB,
        ``SegmentSealed`` when the stream is sealed.
        """
        frame = encode_event(data, routing_key)
        point = key_point(routing_key) if routing_key is not None else random.random()
        if not self.config.max_in_flight:
            return self._write_now(frame, point)
        with self._lock:
            if self._closed:
                raise StreamError(f"writer {self.writer_id} on {self.scope}/{self.stream} is closed")
            if any(p.sent is not None and p.sent.done() and p.sent.exception() is not None for p in self._pending):
                self._drain()
            pending = _Pending(self._next_number, frame, point, Future())
            self._next_number += 1
            self._send(pending)
            self._pending.append(pending)
            self._maybe_report()
            if len(self._pending) > self.config.max_in_flight:
                self._drain(keep=self.config.max_in_flight)
        return pending.future

    def _write_now(self, frame: bytes, point: float) -> Future[EventPointer]:
        """The synchronous path: one durable append (re-routed and retried as needed), then return."""
        with self._lock:
            if self._closed:
                raise StreamError(f"writer {self.writer_id} on {self.scope}/{self.stream} is closed")
            pending = _Pending(self._next_number, frame, point, Future())
            self._next_number += 1
            result = self._append_with_retries(pending, time.monotonic() + self.config.retry_timeout)
            counts = self._traffic.setdefault(result.segment, [0, 0])
            counts[0] += 1
            counts[1] += len(frame)
            self._maybe_report()
        _settle(pending.future, result)
        return pending.future

    def flush(self) -> None:
        """Block until every event written so far is durable; raises the first refusal among them."""
        with self._lock:
            futures = [p.future for p in self._pending]
            self._drain()
            self._report()
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

    def __enter__(self) -> EventStreamWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------
    def _send(self, pending: _Pending) -> None:
        segment = self._router.pick(pending.point).name
        pending.segment = segment
        pending.sent = self._store.append_async(
            segment, pending.frame, writer_id=self.writer_id, event_number=pending.number
        )
        if self.config.max_in_flight:  # without events in flight the caller settles its own future
            pending.sent.add_done_callback(lambda sent: self._acknowledged(pending, sent))
        counts = self._traffic.setdefault(segment, [0, 0])
        counts[0] += 1
        counts[1] += len(pending.frame)

    def _acknowledged(self, pending: _Pending, sent: Future[AppendResult]) -> None:
        """Store callback (on the store's thread: never block here): resolve, or start a re-send."""
        if not sent.cancelled() and sent.exception() is None:
            _settle(pending.future, sent.result())
        elif not self._recovering.is_set():
            self._recovering.set()
            threading.Thread(target=self._recover, name=f"xhub-writer-{self.writer_id}-resend", daemon=True).start()

    def _recover(self) -> None:
        """Re-send refused events even when the application only waits on its futures."""
        try:
            with self._lock:
                self._drain()
        except Exception:  # the futures carry the failures; keep the thread quiet
            log.debug("writer %s: background re-send failed", self.writer_id, exc_info=True)
        finally:
            self._recovering.clear()

    def _drain(self, keep: int = 0) -> None:
        """Settle the oldest pending events until at most ``keep`` remain, re-sending refused ones in order."""
        while len(self._pending) > keep:
            head = self._pending[0]
            assert head.sent is not None
            try:
                result = head.sent.result()
            except (SegmentSealed, SegmentNotFound, *RETRYABLE) as exc:
                self._resend_all(exc)
                continue
            except StreamError as exc:
                self._pending.pop(0)
                head.future.set_exception(exc)
                continue
            self._pending.pop(0)
            _settle(head.future, result)

    def _resend_all(self, cause: BaseException) -> None:
        """Wait for everything in flight, then re-send every refused event synchronously, in order."""
        wait([p.sent for p in self._pending if p.sent is not None])
        deadline = time.monotonic() + self.config.retry_timeout
        log.info("writer %s: re-sending refused events after %s", self.writer_id, type(cause).__name__)
        remaining: list[_Pending] = []
        for p in self._pending:
            assert p.sent is not None
            error = p.sent.exception()
            if error is None:
                remaining.append(p)
                continue
            if not isinstance(error, (SegmentSealed, SegmentNotFound, *RETRYABLE)):
                p.future.set_exception(error)
                continue
            try:
                result = self._append_with_retries(p, deadline)
            except (StreamError, ConnectionError) as exc:
                p.future.set_exception(exc)
                continue
            _settle(p.future, result)
        self._pending = remaining

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
