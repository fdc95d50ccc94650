"""The tierer's view of untiered bytes is kept as appends land, not found by scanning extents."""

from __future__ import annotations

import threading
import types

from xtremehub.streams.segmentstore.state import Segment, StoreState
from xtremehub.streams.segmentstore.tierhost import StoreTieringHost


def _wal_bytes(seg: Segment) -> int:
    return sum(e.length for e in seg.extents if e.in_wal)


def _check(state: StoreState) -> None:
    for seg in state.segments.values():
        assert seg.wal_bytes == _wal_bytes(seg), seg.name
        first = seg.first_wal()
        assert all(not e.in_wal for e in seg.extents[:first])
        assert first == len(seg.extents) or seg.extents[first].in_wal
    assert state.untiered == sum(seg.wal_bytes for seg in state.segments.values())


def test_wal_bytes_follow_appends_tiering_truncation_merge_and_checkpoints() -> None:
    state = StoreState()
    state.apply_create("a", "c1")
    state.apply_create("b", "c2")
    for i in range(10):
        state.apply_append("a", i * 100, [("w", i, 100)], file_id=1, pos=i * 100)
        state.apply_extent("b", i * 50, 50, {"w": [i, i * 50]}, file_id=2, pos=i * 50)
    _check(state)
    assert state.get("a").wal_bytes == 1000
    assert state.get("b").wal_bytes == 500
    assert state.apply_tiered("a", "c1", 0, 300, "k0")[0]
    assert state.get("a").first_wal() == 1
    assert state.get("a").wal_bytes == 700
    _check(state)
    state.apply_truncate("a", 400)  # drops the LTS extent and the WAL extent 300-400
    assert state.get("a").wal_bytes == 600
    assert state.get("a").first_wal() == 0
    _check(state)
    assert state.apply_tiered("b", "c2", 0, 500, "k1")[0]
    assert state.get("b").wal_bytes == 0
    assert state.get("b").first_wal() == 1
    state.apply_extent("b", 500, 70, {}, file_id=3, pos=0)
    state.apply_seal("b")
    state.apply_merge("a", "b")  # a: WAL..., then b's LTS extent, then b's WAL extent
    a = state.get("a")
    assert a.wal_bytes == 670
    _check(state)
    restored = StoreState.from_checkpoint(state.checkpoint())
    assert restored.get("a").wal_bytes == 670
    _check(restored)
    state.apply_delete("a")
    assert state.untiered == 0


def test_tiering_host_heads_and_runs() -> None:
    state = StoreState()
    state.apply_create("a", "c1")
    state.apply_create("b", "c2")
    state.apply_create("empty", "c3")
    for i in range(4):
        state.apply_extent("a", i * 100, 100, {}, file_id=1, pos=i * 100)
        state.apply_extent("b", i * 10, 10, {}, file_id=2, pos=i * 10)
    state.apply_tiered("b", "c2", 0, 20, "k")
    state.apply_seal("b")
    state.apply_merge("a", "b")  # a: 4 WAL extents, b's LTS extent, b's 2 WAL extents
    core = types.SimpleNamespace(lock=threading.Lock(), state=state)
    host = StoreTieringHost(core, None, None)  # type: ignore[arg-type]
    assert [(seg.name, offset, size) for seg, offset, size in host.untiered_heads()] == [("a", 0, 420)]
    a = state.get("a")
    assert [e.offset for e in host.untiered_run(a, 1 << 20)] == [0, 100, 200, 300]  # stops at the LTS extent
    assert [e.offset for e in host.untiered_run(a, 250)] == [0, 100]  # and at max_bytes
    state.apply_tiered("a", "c1", 0, 400, "k2")
    assert [(seg.name, offset, size) for seg, offset, size in host.untiered_heads()] == [("a", 420, 20)]
    assert [e.offset for e in host.untiered_run(a, 1 << 20)] == [420, 430]
