"""Writing and reading events: keys, positions, the live tail, order across manual and automatic scaling."""

from __future__ import annotations

import threading

from xtremehub.streams import (
    ScalingPolicy,
    StreamManager,
)
from xtremehub.testing.streams.base import StreamSuiteBase
from xtremehub.testing.streams.clock import ManualClock
from xtremehub.testing.streams.reading import read_events

__all__ = ["EventTests"]


class EventTests(StreamSuiteBase):
    """Writing and reading events: keys, positions, the live tail, order across scaling."""

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
        underway = threading.Semaphore(0)

        def produce(w: int) -> None:
            with manager.create_writer(scope, stream, max_in_flight=8) as writer:
                for i in range(per_writer):
                    writer.write_event(f"{w}:{i}".encode(), routing_key=f"key{(w * 7 + i) % keys}")
                    if i == per_writer // 4:
                        underway.release()

        threads = [threading.Thread(target=produce, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for _ in range(writers):  # scale while every writer is busy (not after a guessed sleep)
            assert underway.acquire(timeout=60), "a writer did not start"
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

    def test_auto_scaling_by_event_rate_keeps_key_order(self, manager: StreamManager, clock: ManualClock) -> None:
        # Event-driven: the writers write fixed bursts and the test moves the controller's clock,
        # so how many events make a stream "hot" does not depend on how fast the machine is.
        policy = ScalingPolicy.by_event_rate(20, scale_factor=2, min_segments=1, cooldown=0.3, window=0.3)
        scope, stream = self._stream(manager, policy)
        writers = [manager.create_writer(scope, stream, max_in_flight=4) for _ in range(2)]
        sent = [0, 0]

        def burst(count: int) -> None:
            """Both writers write ``count`` events concurrently; their flush reports the traffic."""

            def produce(w: int) -> None:
                for _ in range(count):
                    writers[w].write_event(f"{w}:{sent[w]}".encode(), routing_key=f"key{sent[w] % 7}")
                    sent[w] += 1
                writers[w].flush()

            threads = [threading.Thread(target=produce, args=(w,)) for w in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        settle = 1.0  # segments are judged once older than the window, the cooldown and 1 s of traffic
        for epoch in (1, 2):
            clock.advance(settle)
            burst(60)  # 120 events reported within the last second: far above 20 events/s
            manager.controller.run_maintenance()
            assert manager.get_stream(scope, stream).epoch == epoch, "the hot stream did not split"
        burst(30)  # the writers route over the new segments (the old ones refuse: sealed)
        for writer in writers:
            writer.close()
        info = manager.get_stream(scope, stream)
        assert len(info.active_segments) == 3
        group = manager.create_reader_group("g", scope, [stream])
        events = read_events(group, sum(sent), timeout=60)
        assert sum(sent) == 2 * 150
        self._assert_per_key_order(events, 2, 150)
        clock.advance(2 * settle)  # no traffic for a whole window: a cold pair merges back
        manager.controller.run_maintenance()
        assert len(manager.get_stream(scope, stream).active_segments) == 2, "cold segments never merged"
