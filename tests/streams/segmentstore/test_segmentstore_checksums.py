"""Checksums of plaintext LTS chunks: a chunk object changed, cut short, grown, replaced or deleted
in long-term storage (a local directory or SeaweedFS) is a typed error naming the segment, the
object and the offset, on random reads and on reads in order (read-ahead), also after restarts;
chunks written without checksums (older versions) still read."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_segmentstore_readahead import PART, SMALL  # small chunks; the checksum block is PART too

from xtremehub.config import Settings
from xtremehub.errors import ChecksumMismatch, IntegrityError, ObjectNotFound
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.streams.segmentstore.chunksum import ChunkSums
from xtremehub.streams.segmentstore.lts import ChunkStore
from xtremehub.streams.segmentstore.state import Extent, StoreState
from xtremehub.streams.wire.codec import decode_error, encode_error
from xtremehub.testing.segmentstore import wait_until

SEGMENT = "sc/st/0.#epoch.0"
EVENTS = 30


def _event(i: int, size: int = 10_000) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


EXPECTED = b"".join(_event(i) for i in range(EVENTS))


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> SegmentStoreConfig:
    """A small-chunk store with its LTS in a local directory or in SeaweedFS."""
    extra: dict[str, Any] = {}
    if request.param == "s3":
        settings: Settings = request.getfixturevalue("s3_settings")
        extra = {"lts_url": request.getfixturevalue("s3_root"), "settings": settings}
    return SegmentStoreConfig(data_dir=tmp_path / "data", **SMALL, **extra)


def _fill(config: SegmentStoreConfig) -> None:
    """Write the segment, seal it and wait until all of it is in LTS."""
    with SegmentStore(config) as store:
        store.create_segment(SEGMENT)
        for i in range(EVENTS):
            store.append(SEGMENT, _event(i))
        store.seal(SEGMENT)
        wait_until(lambda: store.info(SEGMENT).tiered_length == len(EXPECTED), what="tiered")


def _chunks(store: SegmentStore) -> list[str]:
    lts = store.chunks
    return sorted(i.key for i in lts.store.list(lts.prefix) if i.key.endswith(".chunk"))


def _flip(data: bytes) -> bytes:
    raw = bytearray(data)
    raw[len(raw) // 2 + 7] ^= 0x01
    return bytes(raw)


#: name -> (what the object becomes, object offset the error names (None: not checked))
DAMAGE: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], int]]] = {
    "flipped": (_flip, lambda d: (len(d) // 2 + 7) // PART * PART),
    "truncated": (lambda d: d[:-100], lambda d: len(d) - 100),
    "cut-at-a-block": (lambda d: d[: len(d) // 2 // PART * PART], lambda d: len(d) // 2 // PART * PART),
    "replaced": (lambda d: bytes(reversed(d)), lambda d: 0),
    "grown": (lambda d: d + b"more", len),
}


def _read_all(store: SegmentStore, *, in_order: bool, into: bytearray | None = None) -> bytes:
    """The whole segment, into ``into``: reads of 20 kB in order (read-ahead), or reads of all
    that is left (a read that meets a damaged part returns the verified bytes before it; the
    next read, from there, raises)."""
    data = bytearray() if into is None else into
    size = 20_000 if in_order else 10 * len(EXPECTED)
    while chunk := store.read(SEGMENT, len(data), size).data:
        data += chunk
    return bytes(data)


@pytest.mark.parametrize("in_order", [False, True], ids=["one-read", "in-order"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_chunk_is_a_checksum_mismatch_naming_segment_object_and_offset(
    config: SegmentStoreConfig, damage: str, in_order: bool
) -> None:
    _fill(config)
    with SegmentStore(config) as store:
        assert _read_all(store, in_order=in_order) == EXPECTED  # intact: verified and right
        victim = _chunks(store)[-2]  # late in the segment: reached by reads in order
        original = store.chunks.store.get(victim)
        change, where = DAMAGE[damage]
        store.chunks.store.put(victim, change(original))
        delivered = bytearray()
        with pytest.raises(ChecksumMismatch) as info:
            _read_all(store, in_order=in_order, into=delivered)
        err = info.value
        assert delivered == EXPECTED[: len(delivered)]  # only verified bytes, all before the damage
        assert len(delivered) <= err.segment_offset
        assert isinstance(err, IntegrityError)
        assert err.url == store.chunks.store.url(victim)
        assert err.segment == SEGMENT
        chunk_offset = int(Path(victim).stem)  # chunk keys are named after their segment offset
        assert err.offset == where(original)
        assert err.segment_offset == chunk_offset + err.offset
        assert f"segment {SEGMENT!r} offset {err.segment_offset}" in str(err)
        assert Path(victim).name in str(err)
        store.chunks.store.put(victim, original)  # repaired: reads are right again (nothing kept)
        assert _read_all(store, in_order=in_order) == EXPECTED


@pytest.mark.parametrize("in_order", [False, True], ids=["one-read", "in-order"])
def test_a_deleted_chunk_is_object_not_found_naming_the_segment_not_a_hang_or_empty_read(
    config: SegmentStoreConfig, in_order: bool
) -> None:
    _fill(config)
    with SegmentStore(config) as store:
        victim = _chunks(store)[-2]
        store.chunks.store.delete(victim)
        with pytest.raises(ObjectNotFound) as info:
            _read_all(store, in_order=in_order)
        assert info.value.url == store.chunks.store.url(victim)
        assert f"LTS chunk of segment {SEGMENT!r}" in str(info.value)


def test_checksums_survive_restarts_from_wal_records_and_from_checkpoints(tmp_path: Path) -> None:
    config = SegmentStoreConfig(data_dir=tmp_path / "data", **SMALL)  # type: ignore[arg-type]
    _fill(config)  # the first reopen replays the TIERED records, the second starts from a checkpoint
    for _ in range(2):
        SegmentStore(config).close()
    with SegmentStore(config) as store:
        victim = _chunks(store)[0]
        store.chunks.store.put(victim, _flip(store.chunks.store.get(victim)))
        with pytest.raises(ChecksumMismatch, match=Path(victim).name):
            _read_all(store, in_order=False)
    meta = next(p for p in (tmp_path / "data" / "lts").rglob("metadata.json"))
    assert '"crc32c"' in meta.read_text()  # what the history reader checks chunks with


def test_chunks_written_without_checksums_still_read_unverified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SegmentStoreConfig(data_dir=tmp_path / "data", **SMALL)  # type: ignore[arg-type]
    with monkeypatch.context() as older:  # a version that recorded no checksums
        older.setattr(ChunkSums, "to_json", lambda self: {})
        _fill(config)
    with SegmentStore(config) as store:
        assert store.read(SEGMENT, 0, len(EXPECTED)).data == EXPECTED
        victim = _chunks(store)[0]
        store.chunks.store.put(victim, _flip(store.chunks.store.get(victim)))
        assert store.read(SEGMENT, 0, len(EXPECTED)).data != EXPECTED  # unverified, as documented


def test_older_checkpoints_and_records_load_without_checksums() -> None:
    old = {"segments": [{"name": "s", "cid": "c", "start": 0, "length": 5, "sealed": True, "writers": {},
                         "merged": {}, "extents": [[0, 5, -1, 0, "k"]]}]}  # fmt: skip
    (ext,) = StoreState.from_checkpoint(old).get("s").extents
    assert ext.sums is None
    assert ext.to_json() == [0, 5, -1, 0, "k"]
    sums = ChunkSums.of([b"hello"], block=2)
    again = Extent.from_json(Extent(0, 5, key="k", sums=sums).to_json())
    assert again.sums == sums


def test_block_checksums_do_not_depend_on_how_the_chunk_was_cut_into_pieces() -> None:
    data = bytes(range(256)) * 100
    whole = ChunkSums.of([data], block=1000)
    assert ChunkSums.of([data[:1], data[1:999], data[999:1001], data[1001:]], block=1000) == whole
    assert len(whole.sums) == 4 * 26  # 25 full blocks and a short one


def test_the_error_keeps_its_names_through_pickle_and_its_class_over_the_wire() -> None:
    err = ChecksumMismatch("segment 's' offset 5: bad", url="file:///x.chunk", offset=4, segment="s", segment_offset=5)
    back = pickle.loads(pickle.dumps(err))
    assert (back.url, back.offset, back.segment, back.segment_offset, str(back)) == (
        "file:///x.chunk", 4, "s", 5, str(err)
    )  # fmt: skip
    wired = decode_error(encode_error(err))
    assert type(wired) is ChecksumMismatch
    assert str(wired) == str(err)


def test_random_reads_fetch_only_the_blocks_they_need(tmp_path: Path) -> None:
    lts = ChunkStore(f"{tmp_path}/lts/", part_size=PART)
    try:
        data = bytes(range(256)) * 400  # 102 400 bytes: 7 blocks, the last one short
        sums = lts.put_chunk("c", [data])
        for start, end in [(0, 1), (PART - 1, PART + 1), (5000, 90_000), (100_000, len(data)), (0, len(data))]:
            assert lts.read([("c", start, end, sums)]) == data[start:end]
        lts.store.put("c", data[: 3 * PART] + b"X" + data[3 * PART + 1 :])
        assert lts.read([("c", 0, 3 * PART, sums)]) == data[: 3 * PART]  # the damage is in a block not read
        assert lts.read([("c", 0, len(data), sums)]) == data[: 3 * PART]  # stops short before it
        with pytest.raises(ChecksumMismatch) as info:
            lts.read([("c", 3 * PART, len(data), sums)])
        assert info.value.offset == 3 * PART
    finally:
        lts.close()


def test_a_chunk_cut_at_a_block_boundary_is_never_a_short_or_spliced_read(tmp_path: Path) -> None:
    lts = ChunkStore(f"{tmp_path}/lts/", part_size=PART)
    try:
        a, b = b"A" * (4 * PART), b"B" * (4 * PART)
        sums_a, sums_b = lts.put_chunk("a", [a]), lts.put_chunk("b", [b])
        lts.store.put("a", a[: 2 * PART])  # cut exactly at a block boundary
        with pytest.raises(ChecksumMismatch) as info:
            lts.read([("a", 3 * PART, 4 * PART, sums_a)])  # wholly past the cut: not an empty read
        assert info.value.offset == 3 * PART  # the first byte asked for that is not there
        assert f"holds 0 bytes from {3 * PART}" in str(info.value)
        both = lts.read([("a", 0, 4 * PART, sums_a), ("b", 0, 4 * PART, sums_b)])
        assert both == a[: 2 * PART]  # stops before the cut: b's bytes never stand at a's offsets
        with pytest.raises(ChecksumMismatch):
            lts.read([("a", 2 * PART, 4 * PART, sums_a), ("b", 0, 4 * PART, sums_b)])
    finally:
        lts.close()
