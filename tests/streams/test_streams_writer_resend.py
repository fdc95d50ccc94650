"""A writer with events in flight re-sends refused events in event-number order; keyless events batch on one lane.

Lanes (one per segment) number their batches when they leave, so write order across lanes is
not number order. After a scale seals the segments, the refused events are re-sent to the
successor, where the store drops an event whose number is not above the last one it holds for
the writer: re-sent in write order, an event would follow one with a higher number and be
acknowledged as a duplicate without being stored (an event lost, seen under load in the
processing tests). A store wrapper holds the batches to build that order deterministically.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from xtremehub.errors import BackPressure, StreamError
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client._framing import key_point
from xtremehub.streams.client.writer import EventStreamWriter, WriterConfig
from xtremehub.streams.segmentstore.contract import AppendOutcome, SegmentBatch, runs_via_batches
from xtremehub.streams.segmentstore.runs import RunOutcome


class HeldStore:
    """The real store, except that batches wait in ``held`` until :meth:`release`."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.held: list[tuple[SegmentBatch, str | None, Future[list[AppendOutcome]]]] = []
        self.arrived = threading.Condition()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append_batches(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[list[AppendOutcome]]]:
        futures: list[Future[list[AppendOutcome]]] = []
        with self.arrived:
            for batch in batches:
                future: Future[list[AppendOutcome]] = Future()
                self.held.append((batch, writer_id, future))
                futures.append(future)
            self.arrived.notify_all()
        return futures

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        return runs_via_batches(self, batches, writer_id=writer_id, timeout=timeout)  # type: ignore[arg-type]

    def wait_held(self, n: int) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.held) >= n, timeout=10), self.held

    def release(self, index: int) -> None:
        batch, writer_id, future = self.held[index]
        (real,) = self._store.append_batches([batch], writer_id=writer_id)
        real.add_done_callback(lambda done: future.set_result(done.result()))


def test_refused_events_are_resent_in_number_order(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(2))
        low, high = sorted(manager.get_stream("lab", "s").active_segments, key=lambda s: s.key_low)
        keys = [f"key-{i}" for i in range(100)]
        x = next(k for k in keys if low.owns(key_point(k)))
        y = next(k for k in keys if high.owns(key_point(k)))
        store = HeldStore(manager.store)
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=16))
        writer.write_event(b"x1", routing_key=x)  # sent at once as number 0, held
        writer.write_event(b"x2", routing_key=x)  # queued behind x1's batch
        writer.write_event(b"y1", routing_key=y)  # sent at once as number 1, held
        store.wait_held(2)
        store.release(0)  # x1 stored; then x2 leaves as number 2 (written before y1, numbered after)
        store.wait_held(3)
        manager.controller.scale_stream("lab", "s", [low.name, high.name], [(0.0, 1.0)])
        store.release(1)  # y1 refused: segment sealed
        store.release(2)  # x2 refused: segment sealed
        time.sleep(0.1)
        writer.close()  # re-sends x2 and y1 to the merged segment
        reader = manager.create_reader_group("g", "lab", ["s"]).create_reader("r")
        got = []
        while (event := reader.read_next(timeout=0.5)) is not None:
            got.append(event.data)
        reader.reader_offline()
        assert sorted(got) == [b"x1", b"x2", b"y1"], got
        assert got.index(b"x1") < got.index(b"x2")


def test_back_pressure_on_one_batch_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A batch refused with BackPressure behind a stored one: the stored event is settled once
    (and not re-sent), the refused one and the event queued behind it are re-sent, each stored once."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(2))
        low, high = sorted(manager.get_stream("lab", "s").active_segments, key=lambda s: s.key_low)
        keys = [f"key-{i}" for i in range(100)]
        x = next(k for k in keys if low.owns(key_point(k)))
        y = next(k for k in keys if high.owns(key_point(k)))
        store = HeldStore(manager.store)
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=16))
        futures = [
            writer.write_event(b"y1", routing_key=y),  # sent at once, held (index 0)
            writer.write_event(b"x1", routing_key=x),  # sent at once, held (index 1)
            writer.write_event(b"x2", routing_key=x),  # queued behind x1's batch
        ]
        store.wait_held(2)
        store.release(0)  # y1 stored: its future settles from the answer
        futures[0].result(timeout=10)
        store.held[1][2].set_exception(BackPressure("test: budgets exhausted"))  # x1 refused
        writer.close()  # y1 is settled already; x1 and x2 are re-sent, in order
        pointers = [f.result(timeout=10) for f in futures]
        assert [p.segment for p in pointers] == [high.name, low.name, low.name]
        reader = manager.create_reader_group("g", "lab", ["s"]).create_reader("r")
        got = []
        while (event := reader.read_next(timeout=0.5)) is not None:
            got.append(event.data)
        reader.reader_offline()
        assert sorted(got) == [b"x1", b"x2", b"y1"], got  # each exactly once
        assert got.index(b"x1") < got.index(b"x2")


def test_events_without_a_key_queue_on_one_lane_behind_the_batch_in_flight(tmp_path: Path) -> None:
    """Keyless events stick to one lane: while the batch that left before is in flight they wait
    (up to half the window) and then leave together, as one batch to one segment; each is stored once."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(4))
        store = HeldStore(manager.store)
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=16))
        futures = [writer.write_event(b"e0")]  # nothing in flight: sent at once, alone (held)
        store.wait_held(1)
        futures += [writer.write_event(b"e%d" % i) for i in range(1, 6)]  # wait behind e0's batch
        time.sleep(0.1)
        assert len(store.held) == 1, [len(b.events) for b, _, _ in store.held]
        store.release(0)  # e0's answer: the background sender sends the five together
        store.wait_held(2)
        assert [len(store.held[1][0].events)] == [5]
        futures += [writer.write_event(b"e%d" % i) for i in range(6, 14)]  # half the window: leave at 8
        store.wait_held(3)
        assert [len(b.events) for b, _, _ in store.held] == [1, 5, 8]
        store.release(1)
        store.release(2)
        writer.close()
        pointers = [f.result(timeout=10) for f in futures]
        assert len({p.segment for p in pointers[1:6]}) == 1
        assert len({p.segment for p in pointers[6:14]}) == 1
        reader = manager.create_reader_group("g", "lab", ["s"]).create_reader("r")
        got = []
        while (event := reader.read_next(timeout=0.5)) is not None:
            got.append(event.data)
        reader.reader_offline()
        assert sorted(got) == sorted(b"e%d" % i for i in range(14)), got  # each exactly once


def test_events_without_a_key_still_spread_over_every_segment(tmp_path: Path) -> None:
    """The sticky lane changes after each batch, picked at random: a writer's keyless events reach every segment."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(4))
        with manager.create_writer("lab", "s", max_in_flight=8) as writer:
            futures = [writer.write_event(b"x" * 100) for _ in range(2000)]
        segments = [f.result().segment for f in futures]
        active = {s.name for s in manager.get_stream("lab", "s").active_segments}
        assert set(segments) == active
        assert min(segments.count(name) for name in active) > 100, {n: segments.count(n) for n in active}


def _read_all(manager: StreamManager) -> list[bytes]:
    reader = manager.create_reader_group("g", "lab", ["s"]).create_reader("r")
    got = []
    while (event := reader.read_next(timeout=0.3)) is not None:
        got.append(event.data)
    reader.reader_offline()
    return got


def test_a_keyless_event_re_sent_after_back_pressure_is_stored(tmp_path: Path) -> None:
    """k0 (number 0) refused on segment X, k1 (number 1) stored on segment Y: the re-send of k0 goes
    to X again, never to Y, where the store would drop it as a duplicate (0 < 1) while its future
    said stored (before the fix the re-send of a keyless event picked a segment at random)."""
    crossed = 0
    for trial in range(12):  # k1 lands on the other segment in about half of the trials
        with StreamManager.embedded(tmp_path / f"data{trial}") as manager:
            manager.create_scope("lab")
            manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(2))
            store = HeldStore(manager.store)
            writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=2))
            f0 = writer.write_event(b"k0")
            store.wait_held(1)
            f1 = writer.write_event(b"k1")  # half the window of 2: sent at once, wherever it goes
            store.wait_held(2)
            if store.held[0][0].segment == store.held[1][0].segment:  # behind k0: not the case tested
                store.release(0)
                store.release(1)
                writer.close()
                continue
            crossed += 1
            store.release(1)
            f1.result(timeout=10)
            store.held[0][2].set_exception(BackPressure("test: budgets exhausted"))
            writer.close()
            f0.result(timeout=10)
            assert sorted(_read_all(manager)) == [b"k0", b"k1"], f"trial {trial}: k0 acknowledged, not stored"
    assert crossed  # the case happened (all 12 on one segment: one chance in 2,048)


class _LostAckStore:
    """The real store; the first append of each event number is stored, then its answer is lost."""

    def __init__(self, store: Any) -> None:
        self._store, self._seen = store, set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append(self, segment: str, data: bytes, **kw: Any) -> Any:
        result = self._store.append(segment, data, **kw)
        if kw["event_number"] not in self._seen:
            self._seen.add(kw["event_number"])
            raise ConnectionError("test: the acknowledgement was lost")
        return result


def test_a_keyless_append_retried_after_a_lost_ack_is_stored_once(tmp_path: Path) -> None:
    """max_in_flight=0: the retry must go to the segment of the first attempt (the store drops it there)."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(4))
        writer = EventStreamWriter(manager.controller, _LostAckStore(manager.store), "lab", "s")
        for i in range(20):
            writer.write_event(b"e%d" % i)
        writer.close()
        got = _read_all(manager)
        assert sorted(got) == sorted(b"e%d" % i for i in range(20)), Counter(got).most_common(3)


def test_an_event_handed_to_the_writer_cannot_be_cancelled(tmp_path: Path) -> None:
    """``Future.cancel()`` on an event still queued (what ``asyncio.wrap_future`` does when the
    awaiting task is cancelled) does nothing: the event is sent whole and stored (before, the writer
    dropped the "done" event's bytes and its lane sent an empty append in its place)."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(1))
        store = HeldStore(manager.store)
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=16))
        writer.write_event(b"k0", routing_key="k")
        store.wait_held(1)
        f1 = writer.write_event(b"k1", routing_key="k")  # queued behind k0's batch
        writer.write_event(b"k2", routing_key="k")
        assert not f1.cancel()
        assert not f1.cancelled()
        store.release(0)
        store.wait_held(2)
        assert b"" not in store.held[1][0].events
        store.release(1)
        assert f1.result(timeout=10) is not None
        writer.close()
        assert _read_all(manager) == [b"k0", b"k1", b"k2"]


def test_keyless_events_follow_the_key_space_shares(tmp_path: Path) -> None:
    """Segments of 1/4, 1/4 and 1/2 of the key space get about 1/4, 1/4 and 1/2 of the keyless events."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(2))
        low = min(manager.get_stream("lab", "s").active_segments, key=lambda s: s.key_low)
        manager.controller.scale_stream("lab", "s", [low.name], [(0.0, 0.25), (0.25, 0.5)])
        with manager.create_writer("lab", "s", max_in_flight=8) as writer:
            futures = [writer.write_event(b"x" * 100) for _ in range(6000)]
        counts = Counter(f.result().segment for f in futures)
        ranges = {s.name: s.key_high - s.key_low for s in manager.get_stream("lab", "s").active_segments}
        shares = {name: round(counts[name] / 6000, 3) for name in ranges}
        assert all(abs(shares[n] - ranges[n]) < 0.05 for n in ranges), (shares, ranges)


def test_big_keyless_events_leave_at_once_while_a_sticky_batch_is_in_flight(tmp_path: Path) -> None:
    """A queue of 64 KiB or more leaves at once, also on a sticky lane waiting for the batch before it:
    ten keyless events of 100 KB are ten batches in flight, not one round trip each."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(4))
        store = HeldStore(manager.store)
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=32))
        futures = [writer.write_event(bytes([i]) * 100_000) for i in range(10)]
        store.wait_held(10)  # none answered yet: all ten were sent anyway
        for i in range(10):
            store.release(i)
        writer.close()
        assert all(f.result(timeout=10) is not None for f in futures)


def test_a_refusal_handled_does_not_make_every_later_write_wait(tmp_path: Path) -> None:
    """An event refused for good (not for back pressure) is settled with its error; after that the
    writer is back to pipelining: a later write does not wait for the answers of earlier ones
    (before, the refusal flag stayed up and every write drained the whole window first)."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(1))
        store = HeldStore(manager.store)
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=16))
        refused = writer.write_event(b"e1", routing_key="k")
        store.wait_held(1)
        store.held[0][2].set_exception(StreamError("test: refused for good"))
        assert isinstance(refused.exception(timeout=10), StreamError)
        writer.write_event(b"e2", routing_key="k")  # handles the refusal first, then sent: held
        store.wait_held(2)
        done = threading.Event()
        threading.Thread(target=lambda: (writer.write_event(b"e3", routing_key="k"), done.set()), daemon=True).start()
        assert done.wait(5), "a write waited for the answer of an earlier batch"
        store.release(1)
        with pytest.raises(StreamError, match="refused for good"):  # the refusal, reported once
            writer.close()
