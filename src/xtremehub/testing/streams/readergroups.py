"""Reader groups: rebalancing, crash and resume, slices, reader timeouts, start positions."""

from __future__ import annotations

import time

import pytest

from xtremehub.errors import (
    ReaderGroupNotFound,
)
from xtremehub.streams import (
    EventRead,
    ScalingPolicy,
    StreamCut,
    StreamManager,
)
from xtremehub.testing.streams.base import StreamSuiteBase, names
from xtremehub.testing.streams.clock import ManualClock
from xtremehub.testing.streams.reading import read_events

__all__ = ["ReaderGroupTests"]


class ReaderGroupTests(StreamSuiteBase):
    """Reader groups: rebalancing, crash and resume, slices, reader timeouts, start positions."""

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
        other_scope, second = names()
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

    def test_silent_reader_times_out_and_its_segments_move(self, manager: StreamManager, clock: ManualClock) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        group = manager.create_reader_group("g", scope, [stream], reader_timeout=0.2)
        silent = group.create_reader("silent", sync_interval=0.01)
        assert len(silent.segments) == 2
        clock.advance(0.1)
        manager.controller.run_maintenance()
        assert group.state().readers == ("silent",), "timed out before its timeout"
        clock.advance(0.3)  # past the reader timeout
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
