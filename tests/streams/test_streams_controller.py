"""The controller's decisions with a controlled clock: scaling, leases, retention, successor order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.errors import CheckpointNotFound, InvalidStreamArgument, ReaderGroupReset, TransactionFailed
from xtremehub.streams.controller import (
    Controller,
    ReaderGroupConfig,
    RetentionPolicy,
    ScalingPolicy,
    StreamConfig,
)
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.testing.streams import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def parts(tmp_path: Path, clock: ManualClock) -> Iterator[tuple[Controller, SegmentStore]]:
    store = SegmentStore(SegmentStoreConfig(data_dir=tmp_path / "segments"))
    controller = Controller(store, tmp_path / "controller.db", clock=clock)
    controller.create_scope("s")
    yield controller, store
    controller.close()
    store.close()


def test_byte_rate_split_respects_cooldown_then_cold_segments_merge(
    parts: tuple[Controller, SegmentStore], clock: ManualClock
) -> None:
    ctl, _ = parts
    policy = ScalingPolicy.by_byte_rate(1000, scale_factor=3, min_segments=1, cooldown=10, window=5)
    ctl.create_stream("s", "st", StreamConfig(policy))
    (seg,) = ctl.get_active_segments("s", "st")
    ctl.report_traffic("s", "st", {seg.name: (10, 50_000)})
    ctl.run_maintenance()
    assert ctl.get_stream("s", "st").epoch == 0, "split before the cooldown"
    clock.advance(11)
    ctl.report_traffic("s", "st", {seg.name: (10, 50_000)})
    ctl.run_maintenance()
    info = ctl.get_stream("s", "st")
    assert info.epoch == 1
    assert [(round(s.key_low, 4), round(s.key_high, 4)) for s in info.active_segments] == [
        (0.0, 0.3333),
        (0.3333, 0.6667),
        (0.6667, 1.0),
    ]
    successors = ctl.get_successors("s", "st", seg.name)
    assert [s.predecessors for s in successors] == [(seg.name,)] * 3
    clock.advance(1)
    for new in info.active_segments:
        ctl.report_traffic("s", "st", {new.name: (1, 900_000)})
    ctl.run_maintenance()
    assert ctl.get_stream("s", "st").epoch == 1, "new segments scaled inside their cooldown"
    for _ in range(5):  # no traffic: neighbours merge, one pair per round and cooldown, down to min_segments
        clock.advance(20)
        ctl.run_maintenance()
    final = ctl.get_stream("s", "st")
    assert len(final.active_segments) == 1
    assert (final.active_segments[0].key_low, final.active_segments[0].key_high) == (0.0, 1.0)


def test_successor_of_a_merge_waits_for_all_predecessors(parts: tuple[Controller, SegmentStore]) -> None:
    ctl, store = parts
    ctl.create_stream("s", "st", StreamConfig(ScalingPolicy.fixed(2)))
    a, b = ctl.get_active_segments("s", "st")
    store.append(a.name, b"xx")
    (merged,) = ctl.scale_stream("s", "st", [a.name, b.name], [(0.0, 1.0)])
    ctl.create_reader_group("s", "g", ReaderGroupConfig(("s/st",)))
    first = ctl.sync_reader("s", "g", "r", {}, [])
    assert sorted(first.owned) == sorted([a.name, b.name])
    after_a = ctl.sync_reader("s", "g", "r", {a.name: 2, b.name: 0}, [a.name])
    assert merged.name not in after_a.owned
    cuts = ctl.get_reader_group_cuts("s", "g")
    assert cuts[0].offsets == {a.name: 2, b.name: 0}, "a read-out predecessor stays in the checkpoint"
    after_b = ctl.sync_reader("s", "g", "r", {b.name: 0}, [b.name])
    assert after_b.owned == (merged.name,)
    assert after_b.acquired == ((merged.name, 0),)
    assert ctl.get_reader_group_cuts("s", "g")[0].offsets == {merged.name: 0}


def test_scale_validation_and_open_transactions(parts: tuple[Controller, SegmentStore], clock: ManualClock) -> None:
    ctl, _ = parts
    ctl.create_stream("s", "st", StreamConfig(ScalingPolicy.fixed(2)))
    a, _ = ctl.get_active_segments("s", "st")
    with pytest.raises(InvalidStreamArgument, match="do not cover"):
        ctl.scale_stream("s", "st", [a.name], [(0.0, 0.2)])
    with pytest.raises(InvalidStreamArgument, match="not all active"):
        ctl.scale_stream("s", "st", ["s/st/9.#epoch.0"], [(0.0, 0.5)])
    txn = ctl.begin_transaction("s", "st", lease=5)
    with pytest.raises(InvalidStreamArgument, match="open transactions"):
        ctl.scale_stream("s", "st", [a.name], [(0.0, 0.25), (0.25, 0.5)])
    clock.advance(3)
    ctl.ping_transaction(txn.txn_id, lease=5)
    clock.advance(3)
    ctl.run_maintenance()
    assert ctl.get_transaction(txn.txn_id).state == "open", "ping did not extend the lease"
    clock.advance(3)
    ctl.run_maintenance()
    assert ctl.get_transaction(txn.txn_id).state == "aborted"
    with pytest.raises(TransactionFailed, match="aborted"):
        ctl.commit_transaction(txn.txn_id)
    assert len(ctl.scale_stream("s", "st", [a.name], [(0.0, 0.25), (0.25, 0.5)])) == 2


def test_retention_by_time_truncates_at_the_newest_old_enough_cut(
    parts: tuple[Controller, SegmentStore], clock: ManualClock
) -> None:
    ctl, store = parts
    ctl.create_stream("s", "st", StreamConfig(retention=RetentionPolicy.by_time(60, cut_interval=10)))
    (seg,) = ctl.get_active_segments("s", "st")
    for _ in range(10):  # 100 bytes every 10 s
        store.append(seg.name, b"x" * 100)
        ctl.run_maintenance()
        clock.advance(10)
    # cuts at t=0..90 hold 100..1000 bytes; now = 100: the newest cut older than 60 s is t=40 (500 bytes)
    ctl.run_maintenance()
    assert store.info(seg.name).start_offset == 500
    assert ctl.get_head_cut("s", "st").offsets == {seg.name: 500}


def test_bad_policies_and_cuts_are_refused(parts: tuple[Controller, SegmentStore]) -> None:
    ctl, _ = parts
    with pytest.raises(InvalidStreamArgument, match="target_rate"):
        ScalingPolicy("event_rate")
    with pytest.raises(InvalidStreamArgument, match="bytes"):
        RetentionPolicy.by_size(0)
    with pytest.raises(InvalidStreamArgument, match="start"):
        ReaderGroupConfig(("s/st",), "middle")  # type: ignore[arg-type]
    ctl.create_stream("s", "st", StreamConfig(ScalingPolicy.fixed(2)))
    tail = ctl.get_tail_cut("s", "st")
    with pytest.raises(InvalidStreamArgument, match="key space"):
        ctl.truncate_stream("s", "st", type(tail)("s", "st", tail.positions[:1]))
    with pytest.raises(InvalidStreamArgument, match="not a stream cut"):
        type(tail).from_json("{}")


def test_checkpoint_through_a_merge_expiry_and_a_restart(
    parts: tuple[Controller, SegmentStore], clock: ManualClock, tmp_path: Path
) -> None:
    ctl, store = parts
    ctl.create_stream("s", "st", StreamConfig(ScalingPolicy.fixed(2)))
    a, b = ctl.get_active_segments("s", "st")
    store.append(a.name, b"aaaa")
    store.append(b.name, b"bbbbbb")
    ctl.create_reader_group("s", "g", ReaderGroupConfig(("s/st",)))
    assert sorted(ctl.sync_reader("s", "g", "r1", {}, []).owned) == sorted([a.name, b.name])
    ctl.sync_reader("s", "g", "r1", {a.name: 2, b.name: 3}, [])
    ctl.initiate_checkpoint("s", "g", "cp", 10.0)
    (merged,) = ctl.scale_stream("s", "st", [a.name, b.name], [(0.0, 1.0)])
    # r1 reads a to its end before its marker: a counts at its final length, b where r1 is
    told = ctl.sync_reader("s", "g", "r1", {b.name: 5}, [a.name])
    assert told.checkpoint == "cp"
    assert told.owned == (b.name,)
    ctl.close()  # a pending checkpoint survives a restart
    ctl = Controller(store, tmp_path / "controller.db", clock=clock)
    assert ctl.get_checkpoint("s", "g", "cp").waiting == ("r1",)
    done = ctl.sync_reader("s", "g", "r1", {b.name: 5}, [], "cp")
    assert done.checkpoint is None
    checkpoint = ctl.get_checkpoint("s", "g", "cp")
    assert checkpoint.completed
    assert checkpoint.stream_cuts[0].offsets == {a.name: 4, b.name: 5}
    ctl.sync_reader("s", "g", "r1", {b.name: 6}, [b.name])  # after the cut: the merged segment comes next
    assert ctl.get_checkpoint("s", "g", "cp").stream_cuts[0].offsets == {a.name: 4, b.name: 5}

    ctl.initiate_checkpoint("s", "g", "late", 5.0)  # r1 never reads again
    clock.advance(6)
    ctl.run_maintenance()
    with pytest.raises(CheckpointNotFound):
        ctl.get_checkpoint("s", "g", "late")
    generation = ctl.sync_reader("s", "g", "r1", {merged.name: 0}, []).generation
    ctl.reset_reader_group("s", "g", ReaderGroupConfig(("s/st",), "cut", checkpoint.stream_cuts))
    with pytest.raises(ReaderGroupReset):
        ctl.sync_reader("s", "g", "r1", {merged.name: 0}, [], None, generation)
    fresh = ctl.sync_reader("s", "g", "r2", {}, [])
    assert fresh.generation == generation + 1
    assert dict(fresh.acquired) == {a.name: 4, b.name: 5}
    ctl.delete_reader_group("s", "g")
    ctl.create_reader_group("s", "g", ReaderGroupConfig(("s/st",)))
    assert ctl.list_checkpoints("s", "g") == []
    ctl.close()
