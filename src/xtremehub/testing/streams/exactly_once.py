"""Exactly-once writing: lost acknowledgements, batches in flight, resends and restarted writers."""

from __future__ import annotations

import pytest

from xtremehub.streams import (
    EventStreamWriter,
    ScalingPolicy,
    StreamManager,
)
from xtremehub.streams.client.writer import WriterConfig
from xtremehub.testing.streams.base import StreamSuiteBase
from xtremehub.testing.streams.faults import FlakyAcks, HeldAcks
from xtremehub.testing.streams.reading import read_events, read_events_or_none

__all__ = ["ExactlyOnceTests"]


class ExactlyOnceTests(StreamSuiteBase):
    """Exactly-once writing: lost acknowledgements, batches in flight, resends and restarted writers."""

    @pytest.mark.parametrize("in_flight", [0, 8])
    def test_lost_acknowledgements_are_retried_without_duplicates(self, manager: StreamManager, in_flight: int) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        flaky = FlakyAcks(manager.store, every=3)
        config = WriterConfig(max_in_flight=in_flight)
        writer = EventStreamWriter(manager.controller, flaky, scope, stream, writer_id="w-flaky", config=config)  # type: ignore[arg-type]
        for i in range(30):
            writer.write_event(str(i).encode(), routing_key=str(i % 4))
        writer.close()
        # Every third append call loses its acknowledgement: exact for a synchronous writer (one
        # call per event); with events in flight the batches (so the calls) depend on timing.
        assert flaky.lost >= (10 if in_flight == 0 else 1)
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
