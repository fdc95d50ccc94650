"""Stream-level conformance suite: every way of running the stream store passes it unchanged.

Subclass :class:`StreamStoreTests` and provide a ``manager`` fixture (a fresh, empty
:class:`~xtremehub.streams.StreamManager`, embedded or connected to a server)::

    class TestEmbedded(StreamStoreTests):
        @pytest.fixture
        def manager(self, tmp_path):
            with StreamManager.embedded(tmp_path / "data") as m:
                yield m

The tests drive background duties (auto-scaling, retention, timeouts) by calling
``manager.controller.run_maintenance()`` themselves, so they do not depend on its timer.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TypeVar

import pytest

from xtremehub.errors import (
    EventTooLarge,
    InvalidStreamArgument,
    ReaderGroupNotFound,
    ScopeNotFound,
    SegmentSealed,
    SegmentTruncated,
    StreamNotFound,
    TransactionFailed,
)
from xtremehub.streams import (
    MAX_EVENT_SIZE,
    EventRead,
    EventStreamWriter,
    ReaderGroup,
    RetentionPolicy,
    ScalingPolicy,
    StreamCut,
    StreamManager,
)
from xtremehub.streams.client.writer import WriterConfig
from xtremehub.streams.segmentstore.contract import AppendOutcome, AppendResult, SegmentBatch, SegmentStoreContract

__all__ = ["FlakyAcks", "HeldAcks", "StreamStoreTests", "read_events"]

T = TypeVar("T")


def read_events(group: ReaderGroup, count: int, *, reader: str = "r", timeout: float = 20.0) -> list[EventRead]:
    """Read ``count`` events with one reader (fails the test if they do not come within ``timeout``)."""
    rd = group.create_reader(reader, sync_interval=0.05)
    out: list[EventRead] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        event = rd.read_next(timeout=0.2)
        if event is not None:
            out.append(event)
    rd.reader_offline()
    assert len(out) == count, f"read {len(out)} of {count} events"
    return out


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


def _names() -> tuple[str, str]:
    return f"sc{uuid.uuid4().hex[:8]}", f"st{uuid.uuid4().hex[:8]}"


class StreamStoreTests:
    """Pravega semantics through :class:`~xtremehub.streams.StreamManager`."""

    @pytest.fixture
    def manager(self) -> StreamManager:
        raise NotImplementedError("subclasses provide a fresh StreamManager")

    def _stream(self, manager: StreamManager, policy: ScalingPolicy | None = None, **kw: object) -> tuple[str, str]:
        scope, stream = _names()
        manager.create_scope(scope)
        manager.create_stream(scope, stream, scaling_policy=policy, **kw)  # type: ignore[arg-type]
        return scope, stream

    # -- scopes and streams ---------------------------------------------------------------
    def test_scope_and_stream_lifecycle(self, manager: StreamManager) -> None:
        scope, stream = _names()
        assert manager.create_scope(scope) is True
        assert manager.create_scope(scope) is False
        assert scope in manager.list_scopes()
        assert manager.create_stream(scope, stream, scaling_policy=ScalingPolicy.fixed(3)) is True
        assert manager.create_stream(scope, stream) is False
        assert manager.list_streams(scope) == [stream]
        info = manager.get_stream(scope, stream)
        assert len(info.active_segments) == 3
        assert info.active_segments[0].key_low == 0.0
        assert info.active_segments[-1].key_high == 1.0
        with pytest.raises(InvalidStreamArgument):
            manager.delete_scope(scope)
        manager.delete_stream(scope, stream)
        assert manager.list_streams(scope) == []
        assert manager.delete_scope(scope) is True

    def test_unknown_scope_stream_group_and_bad_names(self, manager: StreamManager) -> None:
        scope, stream = _names()
        with pytest.raises(ScopeNotFound):
            manager.create_stream(scope, stream)
        manager.create_scope(scope)
        with pytest.raises(StreamNotFound):
            manager.create_writer(scope, "missing")
        with pytest.raises(StreamNotFound):
            manager.create_reader_group("g", scope, ["missing"])
        with pytest.raises(ReaderGroupNotFound):
            manager.get_reader_group("nogroup", scope)
        with pytest.raises(InvalidStreamArgument, match="stream name"):
            manager.create_stream(scope, "a/b")
        with pytest.raises(InvalidStreamArgument, match="min_segments"):
            ScalingPolicy.fixed(0)

    def test_oversize_event_is_refused(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager)
        writer = manager.create_writer(scope, stream)
        with pytest.raises(EventTooLarge, match="8388609 bytes"):
            writer.write_event(b"x" * (MAX_EVENT_SIZE + 1))
        writer.write_event(b"y" * MAX_EVENT_SIZE)
        writer.close()
        group = manager.create_reader_group("g", scope, [stream])
        (event,) = read_events(group, 1)
        assert len(event.data) == MAX_EVENT_SIZE

    # -- writing and reading --------------------------------------------------------------
    def test_events_round_trip_with_keys_and_positions(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(3))
        with manager.create_writer(scope, stream, max_in_flight=16) as writer:
            futures = [writer.write_event(f"e{i}".encode(), routing_key=f"k{i % 5}") for i in range(60)]
            writer.write_event(b"no key")
        pointers = [f.result() for f in futures]
        group = manager.create_reader_group("g", scope, [stream])
        events = read_events(group, 61)
        assert sorted(e.data for e in events) == sorted([f"e{i}".encode() for i in range(60)] + [b"no key"])
        by_data = {e.data: e for e in events}
        for i, pointer in enumerate(pointers):
            event = by_data[f"e{i}".encode()]
            assert event.routing_key == f"k{i % 5}"
            assert (event.position.segment, event.position.offset) == (pointer.segment, pointer.offset)
        assert by_data[b"no key"].routing_key is None

    def test_read_next_polls_or_waits_for_the_live_tail(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager)
        group = manager.create_reader_group("g", scope, [stream], start="tail")
        reader = group.create_reader("r", sync_interval=0.05)
        assert reader.read_next(timeout=0) is None
        writer = manager.create_writer(scope, stream)
        late = threading.Timer(0.3, lambda: writer.write_event(b"live"))
        late.start()
        event = reader.read_next()  # no timeout: waits as long as it takes
        late.join()
        assert event is not None
        assert event.data == b"live"
        reader.reader_offline()
        writer.close()

    def test_order_per_key_with_concurrent_writers_across_manual_scaling(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        writers, per_writer, keys = 4, 150, 6

        def produce(w: int) -> None:
            with manager.create_writer(scope, stream, max_in_flight=8) as writer:
                for i in range(per_writer):
                    writer.write_event(f"{w}:{i}".encode(), routing_key=f"key{(w * 7 + i) % keys}")

        threads = [threading.Thread(target=produce, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        first, _ = manager.get_stream(scope, stream).active_segments
        manager.controller.scale_stream(scope, stream, [first.name], [(0.0, 0.25), (0.25, 0.5)])
        segs = manager.get_stream(scope, stream).active_segments
        manager.controller.scale_stream(scope, stream, [segs[1].name, segs[2].name], [(0.25, 1.0)])
        for t in threads:
            t.join()
        info = manager.get_stream(scope, stream)
        assert info.epoch == 2
        assert [(s.key_low, s.key_high) for s in info.active_segments] == [(0.0, 0.25), (0.25, 1.0)]
        group = manager.create_reader_group("g", scope, [stream])
        events = read_events(group, writers * per_writer)
        self._assert_per_key_order(events, writers, per_writer)

    @staticmethod
    def _assert_per_key_order(events: list[EventRead], writers: int, per_writer: int) -> None:
        payloads = [e.data.decode() for e in events]
        assert len(set(payloads)) == len(payloads) == writers * per_writer, "lost or duplicated events"
        last: dict[tuple[str | None, int], int] = defaultdict(lambda: -1)
        for event in events:
            w, i = map(int, event.data.decode().split(":"))
            assert i > last[(event.routing_key, w)], f"event {w}:{i} of {event.routing_key} out of order"
            last[(event.routing_key, w)] = i

    def test_auto_scaling_by_event_rate_keeps_key_order(self, manager: StreamManager) -> None:
        policy = ScalingPolicy.by_event_rate(20, scale_factor=2, min_segments=1, cooldown=0.3, window=0.3)
        scope, stream = self._stream(manager, policy)
        stop = threading.Event()
        counts = [0, 0]

        def produce(w: int) -> None:
            with manager.create_writer(scope, stream, max_in_flight=4) as writer:
                while not stop.is_set() or counts[w] < 50:
                    writer.write_event(f"{w}:{counts[w]}".encode(), routing_key=f"key{counts[w] % 7}")
                    counts[w] += 1

        threads = [threading.Thread(target=produce, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while manager.get_stream(scope, stream).epoch < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            manager.controller.run_maintenance()
        stop.set()
        for t in threads:
            t.join()
        info = manager.get_stream(scope, stream)
        assert info.epoch >= 2, "the hot stream never split"
        assert len(info.active_segments) >= 2
        group = manager.create_reader_group("g", scope, [stream])
        events = read_events(group, sum(counts), timeout=60)
        last: dict[tuple[str | None, int], int] = defaultdict(lambda: -1)
        for event in events:
            w, i = map(int, event.data.decode().split(":"))
            assert i > last[(event.routing_key, w)]
            last[(event.routing_key, w)] = i
        deadline = time.monotonic() + 30  # traffic stopped: after a window the cold segments merge back
        while len(manager.get_stream(scope, stream).active_segments) >= len(info.active_segments):
            assert time.monotonic() < deadline, "cold segments never merged"
            time.sleep(0.35)
            manager.controller.run_maintenance()

    # -- exactly-once ---------------------------------------------------------------------
    @pytest.mark.parametrize("in_flight", [0, 8])
    def test_lost_acknowledgements_are_retried_without_duplicates(self, manager: StreamManager, in_flight: int) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        flaky = FlakyAcks(manager.store, every=3)
        config = WriterConfig(max_in_flight=in_flight)
        writer = EventStreamWriter(manager.controller, flaky, scope, stream, writer_id="w-flaky", config=config)  # type: ignore[arg-type]
        for i in range(30):
            writer.write_event(str(i).encode(), routing_key=str(i % 4))
        writer.close()
        assert flaky.lost >= 10
        group = manager.create_reader_group("g", scope, [stream])
        events = read_events(group, 30)
        assert sorted(int(e.data) for e in events) == list(range(30))
        assert read_events_or_none(group) is None

    # -- batching -------------------------------------------------------------------------
    def test_events_queued_behind_a_batch_in_flight_leave_together(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(1))
        held = HeldAcks(manager.store)
        config = WriterConfig(max_in_flight=100)
        writer = EventStreamWriter(manager.controller, held, scope, stream, writer_id="w-held", config=config)  # type: ignore[arg-type]
        futures = [writer.write_event(b"e0", routing_key="k")]
        assert held.batches == [1]  # nothing in flight: the first event leaves at once, alone
        futures += [writer.write_event(b"e%d" % i, routing_key="k") for i in range(1, 10)]
        assert held.batches == [1]  # queued behind the unanswered batch
        held.release()
        # No flush: the answer alone makes the queued events leave, as one batch.
        pointers = [f.result(timeout=30) for f in futures]
        assert held.batches == [1, 9]
        assert [p.offset for p in pointers] == sorted(p.offset for p in pointers)
        assert len({p.offset for p in pointers}) == 10
        writer.close()
        events = read_events(manager.create_reader_group("g", scope, [stream]), 10)
        assert [e.data for e in events] == [b"e%d" % i for i in range(10)]

    def test_batch_refused_by_a_sealed_segment_is_rerouted_in_order(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(1))
        held = HeldAcks(manager.store)
        config = WriterConfig(max_in_flight=100, batch_events=4)
        writer = EventStreamWriter(manager.controller, held, scope, stream, writer_id="w-seal", config=config)  # type: ignore[arg-type]
        keys = [f"key{i % 3}" for i in range(20)]
        futures = [writer.write_event(b"0:%d" % i, routing_key=keys[i]) for i in range(20)]
        assert held.batches == [1, 4, 4, 4, 4]  # full batches leave at once; 3 events wait behind them
        (old,) = manager.get_stream(scope, stream).active_segments
        manager.controller.scale_stream(scope, stream, [old.name], [(0.0, 0.5), (0.5, 1.0)])
        held.release()  # the queued events now go to the sealed segment, are refused, re-routed
        futures += [writer.write_event(b"0:%d" % i, routing_key=f"key{i % 3}") for i in range(20, 30)]
        pointers = [f.result(timeout=30) for f in futures]
        writer.close()
        assert pointers[0].segment == old.name
        successors = {s.name for s in manager.get_stream(scope, stream).active_segments}
        assert {p.segment for p in pointers[:17]} == {old.name}  # stored before the seal
        assert {p.segment for p in pointers[17:]} <= successors  # refused by the sealed segment, re-routed
        events = read_events(manager.create_reader_group("g", scope, [stream]), 30)
        self._assert_per_key_order(events, 1, 30)

    def test_restarted_writer_resumes_numbering_and_resends_are_dropped(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager)
        with manager.create_writer(scope, stream, writer_id="stable") as first:
            for i in range(10):
                first.write_event(str(i).encode())
        second = manager.create_writer(scope, stream, writer_id="stable")
        assert second.next_event_number == 10
        segment = manager.get_stream(scope, stream).active_segments[0].name
        from xtremehub.streams.client._framing import encode_event

        again = manager.store.append(segment, encode_event(b"5", None), writer_id="stable", event_number=5)
        assert again.duplicate is True
        second.write_event(b"10")
        second.close()
        events = read_events(manager.create_reader_group("g", scope, [stream]), 11)
        assert [int(e.data) for e in events] == list(range(11))

    def test_resends_and_restarts_stay_exactly_once_across_a_scale(self, manager: StreamManager) -> None:
        from xtremehub.streams.client._framing import encode_event

        scope, stream = self._stream(manager, ScalingPolicy.fixed(1))
        with manager.create_writer(scope, stream, writer_id="stable") as first:
            for i in range(5):
                first.write_event(str(i).encode())
        old = manager.get_stream(scope, stream).active_segments[0]
        manager.controller.scale_stream(scope, stream, [old.name], [(0.0, 0.5), (0.5, 1.0)])
        # A re-sent event that the now sealed segment holds is a duplicate, not "sealed" (which
        # would make the writer re-route it to a successor: stored twice).
        again = manager.store.append(old.name, encode_event(b"4", None), writer_id="stable", event_number=4)
        assert again.duplicate is True
        # A writer restarted with the same id numbers on after its events in the sealed segment.
        second = manager.create_writer(scope, stream, writer_id="stable")
        assert second.next_event_number == 5
        second.write_event(b"5")
        second.close()
        events = read_events(manager.create_reader_group("g", scope, [stream]), 6)
        assert [int(e.data) for e in events] == list(range(6))

    # -- transactions ---------------------------------------------------------------------
    def test_transaction_commit_is_atomic_and_invisible_before(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        group = manager.create_reader_group("g", scope, [stream], start="head")
        txn = manager.create_transaction_writer(scope, stream).begin_txn(lease=30)
        for i in range(20):
            txn.write_event(f"t{i}".encode(), routing_key=f"k{i % 3}")
        txn.flush()
        reader = group.create_reader("r", sync_interval=0.05)
        assert reader.read_next(timeout=0.5) is None, "a transaction's events are visible before commit"
        txn.commit()
        assert txn.state() == "committed"
        got: list[EventRead] = []
        deadline = time.monotonic() + 10
        while len(got) < 20 and time.monotonic() < deadline:
            event = reader.read_next(timeout=0.2)
            if event is not None:
                got.append(event)
        assert sorted(e.data for e in got) == sorted(f"t{i}".encode() for i in range(20))
        order = [int(e.data[1:]) for e in got if e.routing_key == "k1"]
        assert order == sorted(order)
        reader.reader_offline()

    def test_transaction_abort_and_timeout(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager)
        writer = manager.create_transaction_writer(scope, stream)
        aborted = writer.begin_txn()
        aborted.write_event(b"never")
        aborted.abort()
        assert aborted.state() == "aborted"
        with pytest.raises(TransactionFailed):
            aborted.commit()
        expiring = writer.begin_txn(lease=0.2)
        expiring.write_event(b"too late")
        time.sleep(0.4)
        manager.controller.run_maintenance()
        assert expiring.state() == "aborted"
        with pytest.raises(TransactionFailed):
            expiring.commit()
        with manager.create_writer(scope, stream) as plain:
            plain.write_event(b"visible")
        events = read_events(manager.create_reader_group("g", scope, [stream]), 1)
        assert events[0].data == b"visible"
        with pytest.raises(TransactionFailed):
            writer.get_txn("0" * 32)

    # -- reader groups --------------------------------------------------------------------
    def test_reader_group_rebalances_when_readers_join_and_leave(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(4))
        group = manager.create_reader_group("g", scope, [stream])
        a = group.create_reader("a", sync_interval=0.01)
        assert len(a.segments) == 4
        b = group.create_reader("b", sync_interval=0.01)
        for _ in range(5):
            a.read_next(timeout=0.02)
            b.read_next(timeout=0.02)
        assert len(a.segments) == 2
        assert len(b.segments) == 2
        assert set(a.segments).isdisjoint(b.segments)
        owners = {s.segment: s.owner for s in group.state().segments}
        assert sorted(str(o) for o in owners.values()) == ["a", "a", "b", "b"]
        a.reader_offline()
        b.read_next(timeout=0.05)
        assert len(b.segments) == 4
        assert group.state().readers == ("b",)
        assert manager.list_reader_groups(scope) == ["g"]
        manager.delete_reader_group("g", scope)
        with pytest.raises(ReaderGroupNotFound):
            group.state()

    def test_reader_resumes_from_last_position_after_crash(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        with manager.create_writer(scope, stream) as writer:
            for i in range(40):
                writer.write_event(str(i).encode(), routing_key=str(i % 2))
        group = manager.create_reader_group("g", scope, [stream])
        crashed = group.create_reader("worker", sync_interval=0.01)
        seen = [crashed.read_next(timeout=2.0) for _ in range(15)]
        time.sleep(0.02)
        crashed.read_next(timeout=0.5)  # reports positions; then the process "dies" (no reader_offline)
        del crashed
        restarted = group.create_reader("worker", sync_interval=0.01)
        again = []
        while (event := restarted.read_next(timeout=0.5)) is not None:
            again.append(event)
        first = {int(e.data) for e in seen if e is not None}
        second = {int(e.data) for e in again}
        assert first | second == set(range(40)), "events lost after the crash"
        assert len(first & second) <= 1, "more than the unprocessed event was delivered twice"
        cuts = group.stream_cuts()
        assert len(cuts) == 1
        assert cuts[0].stream == stream

    def test_group_over_two_streams_and_segment_slices(self, manager: StreamManager) -> None:
        scope, first = self._stream(manager, ScalingPolicy.fixed(2))
        other_scope, second = _names()
        manager.create_scope(other_scope)
        manager.create_stream(other_scope, second)
        with manager.create_writer(scope, first) as w1, manager.create_writer(other_scope, second) as w2:
            for i in range(10):
                w1.write_event(f"a{i}".encode(), routing_key="same")
                w2.write_event(f"b{i}".encode())
        group = manager.create_reader_group("g", scope, [first, f"{other_scope}/{second}"])
        reader = group.create_reader("r", sync_interval=0.05)
        got: list[EventRead] = []
        deadline = time.monotonic() + 10
        while len(got) < 20 and time.monotonic() < deadline:
            piece = reader.get_segment_slice(timeout=0.2)
            if piece is not None:
                events = list(piece)
                assert {e.position.segment for e in events} == {piece.segment}
                got += events
        reader.reader_offline()
        assert sorted(e.data for e in got) == sorted(
            [f"a{i}".encode() for i in range(10)] + [f"b{i}".encode() for i in range(10)]
        )
        assert [e.data for e in got if e.stream == first] == [f"a{i}".encode() for i in range(10)]
        assert {e.scope for e in got if e.stream == second} == {other_scope}
        assert len(group.stream_cuts()) == 2

    def test_silent_reader_times_out_and_its_segments_move(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        group = manager.create_reader_group("g", scope, [stream], reader_timeout=0.2)
        silent = group.create_reader("silent", sync_interval=0.01)
        assert len(silent.segments) == 2
        time.sleep(0.4)
        manager.controller.run_maintenance()
        assert group.state().readers == ()
        other = group.create_reader("other", sync_interval=0.01)
        assert len(other.segments) == 2

    def test_start_at_head_tail_and_cut(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        with manager.create_writer(scope, stream) as writer:
            for i in range(10):
                writer.write_event(str(i).encode(), routing_key=str(i))
            cut = manager.get_tail_cut(scope, stream)
            for i in range(10, 15):
                writer.write_event(str(i).encode(), routing_key=str(i))
        tail = manager.create_reader_group("tail", scope, [stream], start="tail")
        at_cut = manager.create_reader_group("cut", scope, [stream], start=cut)
        head = manager.create_reader_group("head", scope, [stream], start="head")
        with manager.create_writer(scope, stream) as writer:
            writer.write_event(b"15", routing_key="15")
        assert sorted(int(e.data) for e in read_events(head, 16)) == list(range(16))
        assert sorted(int(e.data) for e in read_events(at_cut, 6)) == list(range(10, 16))
        assert [int(e.data) for e in read_events(tail, 1)] == [15]
        assert StreamCut.from_json(cut.to_json()) == cut

    # -- cuts, truncation, retention, seal, delete ----------------------------------------
    def test_truncate_at_cut_across_a_scale(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(1))
        with manager.create_writer(scope, stream) as writer:
            for i in range(10):
                writer.write_event(str(i).encode(), routing_key=str(i))
            old = manager.get_stream(scope, stream).active_segments[0]
            manager.controller.scale_stream(scope, stream, [old.name], [(0.0, 0.5), (0.5, 1.0)])
            for i in range(10, 20):
                writer.write_event(str(i).encode(), routing_key=str(i))
            cut = manager.get_tail_cut(scope, stream)
            for i in range(20, 25):
                writer.write_event(str(i).encode(), routing_key=str(i))
        early = manager.create_reader_group("early", scope, [stream])  # positioned before the cut
        manager.truncate_stream(scope, stream, cut)
        assert manager.get_head_cut(scope, stream) == cut
        assert sorted(int(e.data) for e in read_events(early, 5)) == list(range(20, 25))
        assert old.name not in manager.store.list_segments(f"{scope}/{stream}/")
        events = read_events(manager.create_reader_group("g", scope, [stream]), 5)
        assert sorted(int(e.data) for e in events) == list(range(20, 25))
        with pytest.raises(InvalidStreamArgument):
            manager.truncate_stream(scope, stream, StreamCut(scope, stream, (cut.positions[0],)))

    def test_retention_by_size_keeps_at_least_the_limit(self, manager: StreamManager) -> None:
        retention = RetentionPolicy.by_size(4000, cut_interval=0.01)
        scope, stream = self._stream(manager, retention_policy=retention)
        segment = manager.get_stream(scope, stream).active_segments[0].name
        with manager.create_writer(scope, stream) as writer:
            for round_ in range(8):
                for i in range(10):
                    writer.write_event(bytes(100), routing_key=f"{round_}-{i}")
                time.sleep(0.02)
                manager.controller.run_maintenance()
        info = manager.store.info(segment)
        assert info.start_offset > 0, "retention never truncated"
        assert info.length - info.start_offset >= 4000

    def test_retention_by_time(self, manager: StreamManager) -> None:
        retention = RetentionPolicy.by_time(0.3, cut_interval=0.05)
        scope, stream = self._stream(manager, retention_policy=retention)
        with manager.create_writer(scope, stream) as writer:
            writer.write_event(b"old")
            manager.controller.run_maintenance()
            time.sleep(0.1)
            writer.write_event(b"also old")
            manager.controller.run_maintenance()
            time.sleep(0.4)
            writer.write_event(b"new")
            manager.controller.run_maintenance()
        events = read_events(manager.create_reader_group("g", scope, [stream]), 1)
        assert events[0].data == b"new"

    def test_seal_and_delete(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        writer = manager.create_writer(scope, stream)
        pipelined = manager.create_writer(scope, stream, max_in_flight=4)
        writer.write_event(b"before", routing_key="k")
        manager.seal_stream(scope, stream)
        assert manager.get_stream(scope, stream).sealed
        with pytest.raises(SegmentSealed):
            writer.write_event(b"after", routing_key="k")  # a synchronous writer raises the refusal
        future = pipelined.write_event(b"after", routing_key="k")  # one in flight: the future carries it
        with pytest.raises(SegmentSealed):
            pipelined.flush()
        assert isinstance(future.exception(timeout=10), SegmentSealed)
        with pytest.raises(SegmentSealed):
            manager.create_writer(scope, stream)
        events = read_events(manager.create_reader_group("g", scope, [stream]), 1)
        assert events[0].data == b"before"
        manager.delete_stream(scope, stream)
        with pytest.raises(StreamNotFound):
            manager.get_stream(scope, stream)
        assert manager.store.list_segments(f"{scope}/{stream}/") == []

    def test_a_group_that_read_sealed_streams_to_the_end_returns_at_once(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        with manager.create_writer(scope, stream) as writer:
            for i in range(6):
                writer.write_event(str(i).encode(), routing_key=str(i % 3))
        old = manager.get_stream(scope, stream).active_segments[0]
        manager.controller.scale_stream(scope, stream, [old.name], [(old.key_low, 0.25), (0.25, old.key_high)])
        with manager.create_writer(scope, stream) as writer:
            writer.write_event(b"6", routing_key="0")
        group = manager.create_reader_group("g", scope, [stream])
        reader = group.create_reader("r", sync_interval=0.05)
        got = [reader.read_next(timeout=5.0) for _ in range(7)]
        assert sorted(int(e.data) for e in got if e is not None) == list(range(7))
        started = time.monotonic()
        assert reader.read_next(timeout=0.5) is None  # not sealed: waits out the timeout
        assert time.monotonic() - started >= 0.4
        assert not group.is_fully_read()
        manager.seal_stream(scope, stream)
        started = time.monotonic()
        assert reader.read_next(timeout=30.0) is None  # sealed and read to the end: at once
        assert time.monotonic() - started < 15.0
        assert group.is_fully_read()
        reader.reader_offline()
        # a new group from the head is not fully read until it has read everything again
        again = manager.create_reader_group("g2", scope, [stream])
        assert not again.is_fully_read()
        second = again.create_reader("r", sync_interval=0.05)
        events = []
        while (event := second.read_next(timeout=30.0)) is not None:
            events.append(event)
        assert len(events) == 7
        assert again.is_fully_read()
        second.reader_offline()

    # -- byte streams ---------------------------------------------------------------------
    def test_byte_stream_write_seek_read_tail_truncate(self, manager: StreamManager) -> None:
        scope, _ = self._stream(manager)
        bs = manager.create_byte_stream(scope, "bytes")
        payload = random.Random(7).randbytes(300_000)
        bs.write(payload[:1000])
        assert bs.read(10) == b"", "unflushed bytes are visible"
        bs.write(payload[1000:])
        bs.flush()
        assert bs.tail_offset() == len(payload)
        assert bs.read(100) == payload[:100]
        bs.seek(250_000)
        assert bs.read() == payload[250_000:]

        def append_later() -> None:
            bs.write(b"live")
            bs.flush()

        late = threading.Timer(0.2, append_later)
        late.start()
        assert bs.read(4, wait=5.0) == b"live"
        late.join()
        bs.truncate(1000)
        assert bs.head_offset() == 1000
        bs.seek(0)
        with pytest.raises(SegmentTruncated):
            bs.read(10)
        bs.seek(1000)
        assert bs.read(5) == payload[1000:1005]
        with pytest.raises(InvalidStreamArgument):
            bs.truncate(10**9)
        bs.close()


def read_events_or_none(group: ReaderGroup) -> EventRead | None:
    """One more event from a fresh reader after everything was read (None when there is none)."""
    reader = group.create_reader(f"extra-{uuid.uuid4().hex[:6]}", sync_interval=0.05)
    try:
        return reader.read_next(timeout=0.3)
    finally:
        reader.reader_offline()
