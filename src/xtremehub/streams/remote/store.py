"""The segment store of a stream server, behind the same contract as the embedded one."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from xtremehub.errors import EventTooLarge, ProtocolError
from xtremehub.streams.remote.connection import ClientConfig, Connection, Decoder, connect
from xtremehub.streams.segmentstore.contract import (
    AppendOutcome,
    AppendResult,
    ReadResult,
    SegmentBatch,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
    check_batches,
    when_all,
)
from xtremehub.streams.segmentstore.runs import RunOutcome
from xtremehub.streams.sharedfuture import SharedConditionFuture
from xtremehub.streams.wire import (
    DEFAULT_MAX_FRAME,
    MAX_BATCH_EVENTS,
    PREVIOUS_NUMBER_VERSION,
    STORE_TARGET,
    MessageType,
    decode_error,
)

__all__ = ["STORE_RETRIABLE", "RemoteSegmentStore", "remote_call"]

#: Store methods a reconnecting client may safely send again (idempotent or read-only).
STORE_RETRIABLE = frozenset({"info", "writer_event_number", "seal", "merge", "truncate", "list_segments", "stats"})


#: Room for the frame header and the other APPEND fields (segment names are short).
APPEND_OVERHEAD = 64 * 1024
#: MessagePack framing of one event inside an APPEND_BATCH (bin 32 header).
_BATCH_EVENT_OVERHEAD = 5
#: The duplicates of a one-event run whose event was already stored.
_DUPLICATE = (0,)


def remote_call(conn: Connection, target: str, method: str, args: list[Any], *, retriable: bool) -> Any:
    """Call ``target.method(*args)`` on the server and wait for its result."""
    payload = conn.codec.encode([target, method, args, {}])
    return conn.call(MessageType.CALL, payload, _decode_result(conn), retriable=retriable)


def _decode_result(conn: Connection) -> Any:
    def decode(msg_type: MessageType | int, payload: bytes) -> Any:
        if msg_type != MessageType.RESULT:
            raise ProtocolError(f"expected RESULT, got message type {int(msg_type)}")
        return conn.codec.decode(payload)

    return decode


class RemoteSegmentStore(SegmentStoreContract):
    """A :class:`SegmentStoreContract` proxy over TCP (``tcp://host:port``).

    Appends and reads use the protocol's compact APPEND/READ messages and are pipelined: many
    ``append_async`` calls from many threads are in flight on one connection, and the server
    batches them into shared fsyncs. ``close`` closes the connection, not the server's store.

    Example (see ``tests/streams/server`` for a running server)::

        store = RemoteSegmentStore("tcp://127.0.0.1:9090")
        store.create_segment("s/st/0.#epoch.0")
        store.append("s/st/0.#epoch.0", b"event", writer_id="w1", event_number=1)
    """

    def __init__(
        self, url: str | Connection, config: ClientConfig | None = None, *, own_connection: bool | None = None
    ) -> None:
        self.connection, self._owns = connect(url, config, own_connection)
        #: Shared by the futures of :meth:`append_runs` (requests and their batches' parts): a writer
        #: settles them from callbacks and never blocks on them, so one condition serves them all.
        self._runs = threading.Condition()

    def _call(self, method: str, *args: Any) -> Any:
        return remote_call(self.connection, STORE_TARGET, method, list(args), retriable=method in STORE_RETRIABLE)

    def create_segment(self, name: str) -> bool:
        return bool(self._call("create_segment", name))

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
        future = self.append_async(
            segment, data, writer_id=writer_id, event_number=event_number, expected_offset=expected_offset
        )
        return future.result(timeout)

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
        # ``timeout`` has nothing to bound here: the call never blocks, the server applies back
        # pressure and answers BackPressure after its own timeout.
        def decode(msg_type: MessageType | int, payload: bytes) -> AppendResult:
            if msg_type != MessageType.APPENDED:
                raise ProtocolError(f"expected APPENDED, got message type {int(msg_type)}")
            offset, length, duplicate = self.connection.codec.decode(payload)
            return AppendResult(segment, offset, length, duplicate)

        if len(data) > self._append_limit():
            failed: Future[AppendResult] = Future()
            failed.set_exception(self._too_large(segment, len(data)))
            return failed
        return self._send_append(
            segment, data, writer_id, event_number, expected_offset, decode, previous=previous_event_number
        )

    def _append_limit(self) -> int:
        """The largest event one frame carries."""
        return int(self.connection.server_info.get("max_frame", DEFAULT_MAX_FRAME)) - APPEND_OVERHEAD

    def _send_append(
        self,
        segment: str,
        data: bytes,
        writer_id: str | None,
        event_number: int | None,
        expected_offset: int | None,
        decode: Decoder,
        refuse: Callable[[Exception], Any] | None = None,
        previous: int | None = None,
        condition: threading.Condition | None = None,
    ) -> Future[Any]:
        """Send one APPEND; its future resolves with ``decode(answer)`` (or ``refuse(the server's refusal)``).

        With ``previous`` (the writer's previous event number on the segment, protocol version 3)
        the server refuses it with ``EventNumberGap`` while the store holds a lower number.
        """
        event = data if type(data) is bytes else bytes(data)
        fields = [segment, event, writer_id, event_number, expected_offset]
        checked = self._previous_numbers()  # the store checks this writer's order on its own
        if previous is not None and checked:
            fields.append(previous)
        payload = self.connection.codec.encode(fields)
        # A re-sent append is exactly-once only when the store can recognise it (writer id + number).
        retriable = writer_id is not None and event_number is not None
        lanes = [] if writer_id is None or event_number is None else [(writer_id, segment, event_number)]
        return self.connection.request(
            MessageType.APPEND,
            payload,
            decode,
            retriable=retriable,
            lanes=lanes,
            refuse=refuse,
            checked=checked,
            condition=condition,
        )

    def _append_run(self, batch: SegmentBatch, writer_id: str | None) -> Future[RunOutcome]:
        """A batch of one event as a plain APPEND whose answer decodes straight into the run (one future)."""
        segment, data = batch.segment, batch.events[0]
        lengths = [len(data)]
        if lengths[0] > self._append_limit():
            refused: Future[RunOutcome] = Future()
            refused.set_result(RunOutcome.refused(segment, lengths, self._too_large(segment, lengths[0])))
            return refused
        codec = self.connection.codec

        def decode(msg_type: MessageType | int, payload: bytes) -> RunOutcome:
            if msg_type != MessageType.APPENDED:
                raise ProtocolError(f"expected APPENDED, got message type {int(msg_type)}")
            offset, _, duplicate = codec.decode(payload)
            return RunOutcome(segment, [offset], lengths, _DUPLICATE if duplicate else ())

        def refuse(error: Exception) -> RunOutcome:  # the server refused the event: its outcome, as in a batch
            return RunOutcome.refused(segment, lengths, error)

        number, previous = batch.first_event_number, batch.previous_event_number
        return self._send_append(segment, data, writer_id, number, None, decode, refuse, previous, self._runs)

    def append_batches(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[list[AppendOutcome]]]:
        """One APPEND_BATCH frame for all batches (more when they exceed a frame), answered per event.

        A server speaking only protocol version 1 gets one APPEND per event instead. An event
        over the frame limit is refused alone (``EventTooLarge``), the others still go.
        ``timeout`` has nothing to bound here (the call never blocks; the server applies back
        pressure and answers ``BackPressure`` after its own timeout).
        """
        runs = self.append_runs(batches, writer_id=writer_id, timeout=timeout)
        return [when_all([run], lambda done: done[0].result().outcomes()) for run in runs]

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        """:meth:`append_batches` answered with one :class:`~..segmentstore.runs.RunOutcome` per batch.

        The answer's offsets, duplicates and errors become the run as decoded: no object per event.
        """
        check_batches(batches, writer_id)
        if len(batches) == 1 and len(batches[0].events) == 1:  # a lone event: the plain APPEND
            return [self._append_run(batches[0], writer_id)]
        if int(self.connection.server_info.get("version", 1)) < 2:
            per_event = SegmentStoreContract.append_batches(self, batches, writer_id=writer_id)
            return [
                when_all([f], functools.partial(_run_of, b.segment, [len(e) for e in b.events]))
                for f, b in zip(per_event, batches, strict=True)
            ]
        limit = self._append_limit()
        pieces: list[list[Future[RunOutcome]]] = [[] for _ in batches]
        frame: list[tuple[int, list[Any]]] = []  # (batch index, [segment, first number, events(, previous)])
        size = count = 0
        numbers_previous = self._previous_numbers()

        def send() -> None:
            nonlocal size, count
            if frame:
                if len(frame) == 1:  # the request's own future is the batch's (no future chained to it)
                    pieces[frame[0][0]].append(
                        self._send_batches(writer_id, [frame[0][1]], single=True, checked=numbers_previous)
                    )
                else:
                    request = self._send_batches(writer_id, [part for _, part in frame], checked=numbers_previous)
                    for (index, _), piece in zip(frame, _split(request, len(frame), self._runs), strict=True):
                        pieces[index].append(piece)
            frame.clear()
            size = count = 0

        for index, batch in enumerate(batches):
            events = batch.events
            if not events:
                empty: Future[RunOutcome] = Future()
                empty.set_result(RunOutcome(batch.segment, [], []))
                pieces[index].append(empty)
                continue
            if size + sum(map(len, events)) + len(events) * _BATCH_EVENT_OVERHEAD + 64 <= limit and (
                count + len(events) <= MAX_BATCH_EVENTS
            ):  # the common case: the whole batch fits in this frame
                plain = list(events) if all(type(e) is bytes for e in events) else [bytes(e) for e in events]
                if batch.previous_event_number is not None and numbers_previous:
                    frame.append((index, [batch.segment, batch.first_event_number, plain, batch.previous_event_number]))
                else:
                    frame.append((index, [batch.segment, batch.first_event_number, plain]))
                size += sum(map(len, events)) + len(events) * _BATCH_EVENT_OVERHEAD + len(batch.segment) + 5
                count += len(events)
                continue
            part: list[Any] | None = None
            # Each part names the number of the batch's last event sent before it (a split batch's
            # parts go in separate frames); an event refused here for its size is not one of them.
            previous = batch.previous_event_number if numbers_previous else None
            for i, data in enumerate(events):
                if len(data) > limit:
                    send()  # the refusal must come after the events before it
                    part = None
                    refused: Future[RunOutcome] = Future()
                    refused.set_result(
                        RunOutcome.refused(batch.segment, [len(data)], self._too_large(batch.segment, len(data)))
                    )
                    pieces[index].append(refused)
                    continue
                if size + len(data) + _BATCH_EVENT_OVERHEAD > limit or count >= MAX_BATCH_EVENTS:
                    send()
                    part = None
                if part is None:
                    first = None if batch.first_event_number is None else batch.first_event_number + i
                    part = [batch.segment, first, []] if previous is None else [batch.segment, first, [], previous]
                    frame.append((index, part))
                    size += len(batch.segment) + _BATCH_EVENT_OVERHEAD
                if previous is not None:
                    previous = part[1] + len(part[2])
                part[2].append(bytes(data))
                size += len(data) + _BATCH_EVENT_OVERHEAD
                count += 1
        send()
        return [p[0] if len(p) == 1 else when_all(p, _concatenate) for p in pieces]

    def _previous_numbers(self) -> bool:
        """Whether the server takes the writer's previous event number with an append (protocol version 3)."""
        return int(self.connection.server_info.get("version", 1)) >= PREVIOUS_NUMBER_VERSION

    def _send_batches(
        self, writer_id: str | None, parts: list[list[Any]], *, single: bool = False, checked: bool = False
    ) -> Future[Any]:
        """Send one APPEND_BATCH of ``[segment, first event number, events(, previous event number)]`` parts.

        The future resolves with the list of the parts' runs, or with the one run when ``single``.
        ``checked``: encoded for a server of protocol 3, whose store checks each writer's order.
        """
        codec = self.connection.codec

        def decode(msg_type: MessageType | int, payload: bytes) -> RunOutcome | list[RunOutcome]:
            if msg_type != MessageType.APPENDED_BATCH:
                raise ProtocolError(f"expected APPENDED_BATCH, got message type {int(msg_type)}")
            answer = codec.decode(payload)
            if not isinstance(answer, list) or len(answer) != len(parts):
                raise ProtocolError(f"APPENDED_BATCH does not answer the {len(parts)} batches sent")
            out: list[RunOutcome] = []
            for (segment, _, events, *_), (offsets, duplicates, errors) in zip(parts, answer, strict=True):
                if len(offsets) != len(events):
                    raise ProtocolError(f"APPENDED_BATCH with {len(offsets)} outcomes for {len(events)} events")
                failed = {int(i): decode_error(e) for i, e in errors.items()} if errors else {}
                dup = frozenset(duplicates) if duplicates else ()
                out.append(RunOutcome(segment, offsets, list(map(len, events)), dup, failed))
            return out[0] if single else out

        payload = codec.encode([writer_id, parts])
        # Re-sent after a reconnect only when the store can recognise it (writer id + numbers).
        lanes = [] if writer_id is None else [(writer_id, part[0], part[1]) for part in parts]
        return self.connection.request(
            MessageType.APPEND_BATCH,
            payload,
            decode,
            retriable=writer_id is not None,
            lanes=lanes,
            checked=checked,
            condition=self._runs,
        )

    @staticmethod
    def _too_large(segment: str, size: int) -> EventTooLarge:
        return EventTooLarge(f"segment {segment!r}: append of {size} bytes exceeds the server's frame limit")

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> ReadResult:
        def decode(msg_type: MessageType | int, payload: bytes) -> ReadResult:
            if msg_type != MessageType.DATA:
                raise ProtocolError(f"expected DATA, got message type {int(msg_type)}")
            at, data, end = self.connection.codec.decode(payload)
            return ReadResult(segment, at, data, end)

        payload = self.connection.codec.encode([segment, offset, max_length, wait])
        result: ReadResult = self.connection.call(MessageType.READ, payload, decode, retriable=True)
        return result

    def info(self, segment: str) -> SegmentInfo:
        result: SegmentInfo = self._call("info", segment)
        return result

    def writer_event_number(self, segment: str, writer_id: str) -> int | None:
        result: int | None = self._call("writer_event_number", segment, writer_id)
        return result

    def seal(self, segment: str) -> int:
        return int(self._call("seal", segment))

    def merge(self, target: str, source: str) -> int:
        return int(self._call("merge", target, source))

    def truncate(self, segment: str, offset: int) -> None:
        self._call("truncate", segment, offset)

    def delete(self, segment: str) -> None:
        self._call("delete", segment)

    def list_segments(self, prefix: str = "") -> list[str]:
        return list(self._call("list_segments", prefix))

    def stats(self) -> StoreStats:
        result: StoreStats = self._call("stats")
        return result

    def close(self) -> None:
        """Close the connection (when this proxy opened it); the server's store stays open."""
        if self._owns:
            self.connection.close()


def _split(request: Future[list[RunOutcome]], count: int, condition: threading.Condition) -> list[Future[RunOutcome]]:
    """One future per batch of a request answered with ``count`` batches' runs (sharing ``condition``)."""
    parts: list[Future[RunOutcome]] = [SharedConditionFuture(condition) for _ in range(count)]

    def answered(done: Future[list[RunOutcome]]) -> None:
        exc = done.exception()
        for k, part in enumerate(parts):
            if exc is not None:
                part.set_exception(exc)
            else:
                part.set_result(done.result()[k])

    request.add_done_callback(answered)
    return parts


def _concatenate(parts: Sequence[Future[RunOutcome]]) -> RunOutcome:
    """The run of several partial batches, in order; raises as the first part that failed."""
    return RunOutcome.concat([part.result() for part in parts])


def _run_of(segment: str, lengths: list[int], done: Sequence[Future[list[AppendOutcome]]]) -> RunOutcome:
    return RunOutcome.of(segment, done[0].result(), lengths)
