"""Streams as data: a stream's history between cuts as slices read from LTS by batch jobs."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings
from xtremehub.errors import ChecksumMismatch, CorruptData, InvalidStreamArgument
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.history import HistoryEvent, StreamHistory, StreamSlice

KEYS = [f"sensor-{i}" for i in range(7)]


def write(manager: StreamManager, stream: str, start: int, count: int) -> None:
    with manager.create_writer("lab", stream, max_in_flight=64) as writer:
        for n in range(start, start + count):
            key = KEYS[n % len(KEYS)]
            writer.write_event(json.dumps({"key": key, "n": n, "v": n * 0.5}).encode() + b" " * 200, key)


@pytest.fixture
def scaled(tmp_path: Path) -> Iterator[tuple[StreamManager, str]]:
    """A stream with 1,500 events over 3 epochs (2 segments, one split, then merged), small LTS chunks."""
    lts = f"{tmp_path / 'lts'}/"
    with StreamManager.embedded(tmp_path / "data", lts, lts_chunk_size=16 << 10, lts_flush_delay=0.0) as m:
        m.create_scope("lab")
        m.create_stream("lab", "sensors", scaling_policy=ScalingPolicy.fixed(2))
        write(m, "sensors", 0, 500)
        (_, high) = m.controller.get_active_segments("lab", "sensors")
        m.controller.scale_stream("lab", "sensors", [high.name], [(0.5, 0.75), (0.75, 1.0)])
        write(m, "sensors", 500, 500)
        active = [s for s in m.controller.get_active_segments("lab", "sensors") if s.key_low >= 0.5]
        m.controller.scale_stream("lab", "sensors", [s.name for s in active], [(0.5, 1.0)])
        write(m, "sensors", 1000, 500)
        m.seal_stream("lab", "sensors")
        yield m, lts


def _read(piece: StreamSlice) -> list[tuple[str | None, int]]:
    return [(e.routing_key, json.loads(e.data)["n"]) for e in piece.events()]


def test_slices_hold_every_event_once_in_key_order_and_read_in_workers(scaled: tuple[StreamManager, str]) -> None:
    manager, lts = scaled
    history = StreamHistory(manager, "lab", "sensors", lts, wait=30)
    assert len(history.ranges) == 5  # 2 + 2 successors of the split + 1 of the merge
    slices = history.partition(bytes_per_slice=40 << 10)
    assert len(slices) > len(history.ranges)  # segments are cut into several slices
    assert sum(s.nbytes for s in slices) == history.nbytes
    with FunctionExecutor(workers=2) as fexec:
        parts = fexec.get_result(fexec.map(_read, slices))
    events = [e for part in parts for e in part]
    assert sorted(n for _, n in events) == list(range(1500))  # exactly once
    per_key: dict[str | None, list[int]] = defaultdict(list)
    for key, n in events:  # slices come predecessors first: a key's order holds across them too
        per_key[key].append(n)
    assert all(ns == sorted(ns) for ns in per_key.values())
    for part in parts:  # and within each slice
        for key in KEYS:
            ns = [n for k, n in part if k == key]
            assert ns == sorted(ns)


def test_history_between_two_cuts(tmp_path: Path) -> None:
    lts = f"{tmp_path / 'lts'}/"
    with StreamManager.embedded(tmp_path / "data", lts, lts_flush_delay=0.0) as m:
        m.create_scope("lab")
        m.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(3))
        write(m, "s", 0, 100)
        cut1 = m.get_tail_cut("lab", "s")
        write(m, "s", 100, 100)
        cut2 = m.get_tail_cut("lab", "s")
        write(m, "s", 200, 100)
        history = StreamHistory(m, "lab", "s", lts, start=cut1, end=cut2, wait=30)
        got = sorted(json.loads(e.data)["n"] for s in history.partition() for e in s.events())
        assert got == list(range(100, 200))
        table = history.to_arrow(decoder=json.loads)
        assert table.num_rows == 100
        assert table.column_names == ["routing_key", "segment", "offset", "payload", "key", "n", "v"]
        frame = table.to_pandas()
        assert (frame["routing_key"] == frame["key"]).all()
        assert frame.groupby("routing_key")["n"].count().to_dict() == {
            k: sum(1 for n in range(100, 200) if KEYS[n % 7] == k) for k in KEYS
        }


def test_bytes_not_yet_in_lts_are_refused_with_the_reason(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "data", f"{tmp_path / 'lts'}/", lts_flush_delay=3600) as m:
        m.create_scope("lab")
        m.create_stream("lab", "s")
        write(m, "s", 0, 10)
        with pytest.raises(InvalidStreamArgument, match="not all in LTS yet"):
            StreamHistory(m, "lab", "s", f"{tmp_path / 'lts'}/")


def test_a_damaged_chunk_is_a_clear_error(scaled: tuple[StreamManager, str]) -> None:
    manager, lts = scaled
    slices = StreamHistory(manager, "lab", "sensors", lts, wait=30).partition()
    key = slices[0].pieces[0][0]
    path = Path("/", key)  # the local LTS store's keys are paths below /
    path.write_bytes(path.read_bytes()[:-3])  # a chunk object cut short
    with pytest.raises(ChecksumMismatch, match=r"LTS chunk holds .* truncated") as info:
        slices[0].get()
    assert info.value.segment == slices[0].segment


def test_history_on_s3_lts_read_by_workers(tmp_path: Path, s3_root: str, s3_default: Settings) -> None:
    with StreamManager.embedded(tmp_path / "data", s3_root, lts_flush_delay=0.0, lts_chunk_size=32 << 10) as m:
        m.create_scope("lab")
        m.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(2))
        write(m, "s", 0, 400)
        m.seal_stream("lab", "s")
        slices = StreamHistory(m, "lab", "s", s3_root, settings=s3_default, wait=30).partition(64 << 10)
    assert any(storage.list(s3_root))  # the chunks are objects in S3
    with FunctionExecutor(workers=2, settings=s3_default) as fexec:
        parts = fexec.get_result(fexec.map(_read, slices))
    assert sorted(n for part in parts for _, n in part) == list(range(400))
    assert isinstance(StreamSlice.get(slices[0])[0], HistoryEvent)


def test_metadata_that_is_not_lts_metadata_is_a_clear_error(scaled: tuple[StreamManager, str]) -> None:
    manager, lts = scaled
    history = StreamHistory(manager, "lab", "sensors", lts, wait=30)
    (metadata,) = [p for p in Path(lts).rglob("metadata.json") if "0.%23epoch.0" in str(p)]
    metadata.write_bytes(b"\x00encrypted or damaged")
    with pytest.raises(CorruptData, match="not LTS segment metadata"):
        history.partition()
