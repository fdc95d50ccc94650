"""Stream cuts, truncation, retention by size and time, seal and delete."""

from __future__ import annotations

import time

import pytest

from xtremehub.errors import (
    InvalidStreamArgument,
    SegmentSealed,
    StreamNotFound,
)
from xtremehub.streams import (
    RetentionPolicy,
    ScalingPolicy,
    StreamCut,
    StreamManager,
)
from xtremehub.testing.streams.base import StreamSuiteBase
from xtremehub.testing.streams.clock import ManualClock
from xtremehub.testing.streams.reading import read_events

__all__ = ["RetentionTests"]


class RetentionTests(StreamSuiteBase):
    """Stream cuts, truncation, retention by size and time, seal and delete."""

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

    def test_retention_by_size_keeps_at_least_the_limit(self, manager: StreamManager, clock: ManualClock) -> None:
        retention = RetentionPolicy.by_size(4000, cut_interval=0.01)
        scope, stream = self._stream(manager, retention_policy=retention)
        segment = manager.get_stream(scope, stream).active_segments[0].name
        with manager.create_writer(scope, stream) as writer:
            for round_ in range(8):
                for i in range(10):
                    writer.write_event(bytes(100), routing_key=f"{round_}-{i}")
                clock.advance(0.02)  # past the cut interval: every round records a retention cut
                manager.controller.run_maintenance()
        info = manager.store.info(segment)
        assert info.start_offset > 0, "retention never truncated"
        assert info.length - info.start_offset >= 4000

    def test_retention_by_time(self, manager: StreamManager, clock: ManualClock) -> None:
        retention = RetentionPolicy.by_time(0.3, cut_interval=0.05)
        scope, stream = self._stream(manager, retention_policy=retention)
        with manager.create_writer(scope, stream) as writer:
            writer.write_event(b"old")
            manager.controller.run_maintenance()
            clock.advance(0.1)
            writer.write_event(b"also old")
            manager.controller.run_maintenance()
            clock.advance(0.1)
            manager.controller.run_maintenance()
            assert manager.get_head_cut(scope, stream).positions[0][1] == 0, "truncated before 0.3 s"
            clock.advance(0.3)
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
