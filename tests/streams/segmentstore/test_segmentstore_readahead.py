"""LTS read-ahead of in-order readers: part-sized reads, bounded memory, and typed errors (a chunk
cut short in a prefetched range, a damaged chunk under a reader, LTS unreachable in the middle of
a read)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from xtremehub.errors import ChecksumMismatch, StorageUnavailable
from xtremehub.storage._s3 import S3Store
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client._framing import HEADER
from xtremehub.streams.client.reader import EventRead, EventStreamReader
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.streams.segmentstore.lts import ChunkStore
from xtremehub.streams.segmentstore.readahead import Part, ReadAhead
from xtremehub.testing.seaweedfs import SeaweedFS
from xtremehub.testing.segmentstore import wait_until

PART = 16 * 1024
SMALL = {
    "tiering_interval": 0.05,
    "lts_flush_delay": 0.0,
    "lts_chunk_size": 64 * 1024,
    "wal_file_size": 256 * 1024,
    "lts_read_part_size": PART,
    "lts_read_ahead": 4,
    "lts_read_ahead_budget": 6 * PART,
}


def _event(i: int, size: int = 10_000) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


def _read_from(store: SegmentStore, data: bytearray) -> None:
    """Read segment ``s`` from ``len(data)`` to its end into ``data`` (100 kB asked per read)."""
    while chunk := store.read("s", len(data), 100_000).data:
        data += chunk


def _read_events(reader: EventStreamReader, into: list[EventRead], count: int) -> None:
    for _ in range(count):
        event = reader.read_next(timeout=5)
        assert event is not None
        into.append(event)


def _tiered_store(tmp_path: Path, n: int = 60) -> tuple[SegmentStore, bytes]:
    store = SegmentStore(SegmentStoreConfig(data_dir=tmp_path / "data", **SMALL))  # type: ignore[arg-type]
    store.create_segment("s")
    for i in range(n):
        store.append("s", _event(i))
    store.seal("s")
    wait_until(lambda: store.info("s").tiered_length == store.info("s").length, what="tiered")
    return store, b"".join(_event(i) for i in range(n))


def test_reads_in_order_come_in_parts_within_the_budget_and_hold_nothing_at_the_end(tmp_path: Path) -> None:
    store, expected = _tiered_store(tmp_path)
    with store:
        ahead = store._ahead
        sizes, data, held = [], b"", []
        while not (result := store.read("s", len(data), 100_000)).end_of_segment or result.data:
            sizes.append(len(result.data))
            data += result.data
            held.append(ahead.held)
            if result.end_of_segment:
                break
        assert data == expected
        assert sizes[0] == 100_000  # the first read is not in order yet: all it asked for
        assert len(sizes) > 10
        assert max(sizes[1:]) <= PART  # then one part per read
        assert max(held) <= SMALL["lts_read_ahead_budget"]
        assert max(held) > 0  # parts were fetched ahead
        assert ahead.held == 0  # every part fetched ahead was read, none left behind


def test_parts_kept_after_short_reads_stay_within_the_budget() -> None:
    """Many in-order readers that each stop inside a part: what stays held keeps to the budget
    (a reviewer saw 50 such reads hold 200 bytes with a budget of 16); the data stays right."""
    lts = ChunkStore("mem://xhub-test-ahead-budget/p/", part_size=4)
    try:
        lts.put_chunk("p/c", [bytes(range(200))])
        ahead = ReadAhead(lts, depth=2, budget=16)
        for k in range(0, 200, 4):
            assert ahead.get(Part("p/c", k, k + 4), last=False) == bytes(range(k, k + 4))
            assert ahead.held <= 16
        assert ahead.get(Part("p/c", 196, 200)) == bytes(range(196, 200))  # held or fetched again
        ahead.close()
    finally:
        lts.close()


def test_a_chunk_cut_short_in_a_prefetched_range_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    store, expected = _tiered_store(tmp_path)
    with store:
        chunks = sorted((tmp_path / "data" / "lts").rglob("*.chunk"))
        victim = chunks[3]
        victim.write_bytes(victim.read_bytes()[:-100])
        data = bytearray()
        with pytest.raises(ChecksumMismatch) as info:
            _read_from(store, data)
        assert info.value.url.endswith(victim.name)
        assert "truncated" in str(info.value)
        assert info.value.offset == victim.stat().st_size  # where its bytes stop now
        assert info.value.segment == "s"
        assert data == expected[: len(data)]  # everything before it was delivered intact
        # the failure is not kept: asking again fetches again and fails the same way
        with pytest.raises(ChecksumMismatch):
            _read_from(store, data)


def test_a_damaged_frame_read_ahead_is_a_checksum_mismatch_for_the_reader_with_its_offset(tmp_path: Path) -> None:
    lts = f"{tmp_path / 'lts'}/"
    options = {k: v for k, v in SMALL.items() if k != "tiering_interval"}
    with StreamManager.embedded(tmp_path / "data", lts, **options) as m:  # type: ignore[arg-type]
        m.create_scope("sc")
        m.create_stream("sc", "st", scaling_policy=ScalingPolicy.fixed(1))
        with m.create_writer("sc", "st") as writer:
            for i in range(60):
                writer.write_event(_event(i), routing_key="k")
        m.seal_stream("sc", "st")
        (segment,) = m.store.list_segments("sc/st/")
        wait_until(lambda: m.store.info(segment).tiered_length == m.store.info(segment).length, what="tiered")
        frame = HEADER.size + 1 + 10_000  # every frame: header, key "k", payload
        damaged = 40 * frame  # a frame header far enough to be read ahead
        (chunk,) = [c for c in Path(lts).rglob("*.chunk") if int(c.stem) <= damaged < int(c.stem) + c.stat().st_size]
        raw = bytearray(chunk.read_bytes())
        raw[damaged - int(chunk.stem) : damaged - int(chunk.stem) + 4] = (0xFFFFFFFF).to_bytes(4, "big")
        chunk.write_bytes(bytes(raw))
        block = int(chunk.stem) + (damaged - int(chunk.stem)) // PART * PART  # segment offset of its checksum block
        got: list[EventRead] = []
        with (
            m.create_reader_group("g", "sc", ["st"]).create_reader("r") as reader,
            pytest.raises(ChecksumMismatch) as info,
        ):
            _read_events(reader, got, 60)
        # every event before the damaged block, in order; nothing of the damaged block
        assert [e.data for e in got] == [_event(i) for i in range(block // frame)]
        assert info.value.segment == segment
        assert info.value.segment_offset == block
        assert info.value.url.endswith(chunk.name)


@pytest.mark.s3
@pytest.mark.slow
def test_lts_unreachable_in_the_middle_of_a_read_is_a_typed_error_then_reads_resume(tmp_path: Path) -> None:
    weed_dir = tmp_path / "weed"
    server = SeaweedFS.start(weed_dir)  # private: this test stops it
    try:
        settings = server.settings(timeout=2.0, max_retries=0)
        S3Store("xhub-ahead", settings.s3).create_bucket()
        options = {k: v for k, v in SMALL.items() if k != "tiering_interval"}
        with StreamManager.embedded(
            tmp_path / "data",
            "s3://xhub-ahead/lts/",
            settings=settings,
            **options,  # type: ignore[arg-type]
        ) as m:
            m.create_scope("sc")
            m.create_stream("sc", "st", scaling_policy=ScalingPolicy.fixed(2))
            with m.create_writer("sc", "st") as writer:
                for i in range(200):
                    writer.write_event(_event(i), routing_key=f"k{i % 5}")
            m.seal_stream("sc", "st")
            segments = m.store.list_segments("sc/st/")
            wait_until(
                lambda: all(m.store.info(s).tiered_length == m.store.info(s).length for s in segments), what="tiered"
            )
            reader = m.create_reader_group("g", "sc", ["st"]).create_reader("r")
            got: list[EventRead] = []
            _read_events(reader, got, 30)
            port = server.s3_port
            server.stop()
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):  # what was fetched ahead still comes, then the typed error
                _read_events(reader, got, 170)
            assert time.monotonic() - started < 30  # an error, not a hang
            server = SeaweedFS.start(weed_dir, s3_port=port)
            deadline = time.monotonic() + 60
            while len(got) < 200:
                try:
                    event = reader.read_next(timeout=5)
                except StorageUnavailable:  # the restarted server may still be loading its volumes
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                    continue
                assert event is not None
                got.append(event)
            reader.close()
        per_key: dict[str, list[int]] = {}
        for event in got:
            assert event.routing_key is not None
            per_key.setdefault(event.routing_key, []).append(int.from_bytes(event.data[:4], "big"))
        assert sorted(n for ns in per_key.values() for n in ns) == list(range(200))  # each once
        assert all(ns == sorted(ns) for ns in per_key.values())  # in order per key
    finally:
        server.stop(graceful=False)  # its data is not needed again
