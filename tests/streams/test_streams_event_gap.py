"""The segment store refuses a writer's batch that would overtake an earlier one not stored.

A writer may have several batches to one segment in flight. If the first is refused (back
pressure: nothing written) and the second is stored, the first's re-send counts as a
duplicate (its numbers are below the writer's last stored one): acknowledged, never stored.
A batch naming the writer's previous event number on the segment (``previous_event_number``)
is refused instead (``EventNumberGap``, nothing written) while the store holds a lower number;
the check uses the writer numbers the store keeps with the data, so it holds across
connections and restarts. The writer names it for every batch it pipelines.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_streams_writer_resend import HeldStore

from xtremehub.errors import BackPressure, EventNumberGap, EventTooLarge, InvalidOffset
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.writer import EventStreamWriter, WriterConfig
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.streams.segmentstore.contract import SegmentBatch


def _store(path: Path, **kw: int) -> SegmentStore:
    return SegmentStore(SegmentStoreConfig(data_dir=path, **kw))  # type: ignore[arg-type]


def test_a_batch_after_an_event_not_stored_is_refused_whole(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.create_segment("s")
        (gap,) = store.append_runs([SegmentBatch("s", [b"b2", b"b3"], 2, 1)], writer_id="w")
        run = gap.result(10)
        assert sorted(run.errors) == [0, 1]
        assert all(isinstance(e, EventNumberGap) for e in run.errors.values())
        assert isinstance(run.errors[0], BackPressure), "a retriable refusal: the writer re-sends in order"
        assert "event 2 after event 1" in str(run.errors[0])
        assert store.info("s").length == 0
        assert store.writer_event_number("s", "w") is None
        # Another writer, and an unchecked batch, are not concerned.
        assert store.append_runs([SegmentBatch("s", [b"v5"], 5, 3)], writer_id="v")[0].result(10).errors
        assert store.append_runs([SegmentBatch("s", [b"x"])])[0].result(10).ok
        # In order (the earlier batch first, in the same call or before), the batch is stored.
        first, second = store.append_runs(
            [SegmentBatch("s", [b"a0", b"a1"], 0), SegmentBatch("s", [b"b2", b"b3"], 2, 1)], writer_id="w"
        )
        assert first.result(10).ok
        assert second.result(10).ok
        # Numbers of other segments lie between a writer's numbers on one segment: no gap there.
        assert store.append_runs([SegmentBatch("s", [b"c9"], 9, 3)], writer_id="w")[0].result(10).ok
        # A re-sent batch (all duplicates) still names its previous event: acknowledged as before.
        again = store.append_runs([SegmentBatch("s", [b"b2", b"b3"], 2, 1)], writer_id="w")[0].result(10)
        assert again.ok
        assert set(again.duplicates) == {0, 1}
        assert store.read("s", 0, 100).data == b"xa0a1b2b3c9"


def test_a_lone_append_after_an_event_not_stored_is_refused(tmp_path: Path) -> None:
    """``append_async(previous_event_number=)``: the same check for one event, without a batch."""
    with _store(tmp_path) as store:
        store.create_segment("s")
        gap = store.append_async("s", b"e2", writer_id="w", event_number=2, previous_event_number=1)
        with pytest.raises(EventNumberGap, match="event 2 after event 1"):
            gap.result(10)
        assert store.info("s").length == 0
        assert store.writer_event_number("s", "w") is None
        assert not store.append_async("s", b"e1", writer_id="w", event_number=1).result(10).duplicate
        stored = store.append_async("s", b"e2", writer_id="w", event_number=2, previous_event_number=1).result(10)
        assert not stored.duplicate
        again = store.append_async("s", b"e2", writer_id="w", event_number=2, previous_event_number=1).result(10)
        assert again.duplicate, "a re-sent event naming its previous one is acknowledged as before"
        # In one group commit, an event naming the one queued just before it follows it.
        third = store.append_async("s", b"e3", writer_id="w", event_number=3)
        fourth = store.append_async("s", b"e4", writer_id="w", event_number=4, previous_event_number=3)
        assert not third.result(10).duplicate
        assert not fourth.result(10).duplicate
        with pytest.raises(InvalidOffset):
            store.append_async("s", b"e5", writer_id="w", event_number=5, previous_event_number=5)
        assert store.read("s", 0, 100).data == b"e1e2e3e4"


def test_the_check_survives_a_restart(tmp_path: Path) -> None:
    """The writer's numbers come back from the WAL: a gap is still a gap after a restart."""
    with _store(tmp_path) as store:
        store.create_segment("s")
        assert store.append_runs([SegmentBatch("s", [b"a0"], 0)], writer_id="w")[0].result(10).ok
    with _store(tmp_path) as store:
        assert store.writer_event_number("s", "w") == 0
        assert store.append_runs([SegmentBatch("s", [b"b1"], 1, 0)], writer_id="w")[0].result(10).ok
        gap = store.append_runs([SegmentBatch("s", [b"d3"], 3, 2)], writer_id="w")[0].result(10)
        assert isinstance(gap.errors[0], EventNumberGap)
        assert store.read("s", 0, 100).data == b"a0b1"


def test_an_oversize_event_inside_a_checked_batch_leaves_no_gap_for_the_rest(tmp_path: Path) -> None:
    with _store(tmp_path, max_append_size=4) as store:
        store.create_segment("s")
        assert store.append_runs([SegmentBatch("s", [b"a0"], 0)], writer_id="w")[0].result(10).ok
        run = store.append_runs([SegmentBatch("s", [b"b1", b"too large", b"d3"], 1, 0)], writer_id="w")[0].result(10)
        assert list(run.errors) == [1]
        assert isinstance(run.errors[1], EventTooLarge)
        assert store.read("s", 0, 100).data == b"a0b1d3"


def test_runs_after_an_oversize_event_are_checked_too(tmp_path: Path) -> None:
    """Events 2-3 not stored: a batch [4, too large, 6] naming 3 stores nothing, 6 included (else
    the re-send of 2-3 would be acknowledged as duplicates and never stored)."""
    with _store(tmp_path, max_append_size=4) as store:
        store.create_segment("s")
        assert store.append_runs([SegmentBatch("s", [b"a0", b"a1"], 0)], writer_id="w")[0].result(10).ok
        run = store.append_runs([SegmentBatch("s", [b"b4", b"too large", b"b6"], 4, 3)], writer_id="w")[0].result(10)
        assert isinstance(run.errors[0], EventNumberGap)
        assert isinstance(run.errors[1], EventTooLarge)
        assert isinstance(run.errors[2], EventNumberGap)
        lead = store.append_runs([SegmentBatch("s", [b"too large", b"c8"], 7, 6)], writer_id="w")[0].result(10)
        assert isinstance(lead.errors[1], EventNumberGap)  # a batch starting with a large event: checked
        assert store.writer_event_number("s", "w") == 1
        resent = store.append_runs([SegmentBatch("s", [b"a2", b"a3"], 2, 1)], writer_id="w")[0].result(10)
        assert resent.ok
        assert not resent.duplicates
        assert store.read("s", 0, 100).data == b"a0a1a2a3"


def test_a_previous_number_must_be_below_the_first(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.create_segment("s")
        with pytest.raises(InvalidOffset, match="previous_event_number 2 must be below"):
            store.append_runs([SegmentBatch("s", [b"b2"], 2, 2)], writer_id="w")
        with pytest.raises(InvalidOffset):
            store.append_runs([SegmentBatch("s", [b"b2"], None, 1)])


def test_a_writer_batch_sent_while_a_refused_one_was_in_flight_is_not_lost(tmp_path: Path) -> None:
    """The writer pipelines x2 behind x1; x1 is refused (back pressure), x2 reaches the store after.

    Stored, x2 would make x1's re-send a duplicate: x1 acknowledged, never stored. x2 names x1's
    number, so the store refuses it and the writer re-sends both, in order.
    """
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(1))
        store = HeldStore(manager.store)
        config = WriterConfig(max_in_flight=16, batch_events=1)  # a full lane sends while its batch is in flight
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=config)
        futures = [writer.write_event(b"x1", routing_key="k"), writer.write_event(b"x2", routing_key="k")]
        store.wait_held(2)
        assert store.held[1][0].previous_event_number == store.held[0][0].first_event_number
        store.held[0][2].set_exception(BackPressure("test: budgets exhausted"))  # x1 refused, nothing written
        time.sleep(0.1)  # the writer's re-send waits for x2's answer
        store.release(1)  # x2 reaches the store after x1's refusal
        writer.close()
        pointers = [f.result(timeout=10) for f in futures]
        reader = manager.create_reader_group("g", "lab", ["s"]).create_reader("r")
        got = []
        while (event := reader.read_next(timeout=0.5)) is not None:
            got.append(event.data)
        reader.reader_offline()
        assert got == [b"x1", b"x2"], "an acknowledged event was lost, stored twice or reordered"
        assert pointers[0].offset < pointers[1].offset
