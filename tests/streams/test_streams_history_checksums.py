"""The stream history reader (batch jobs reading LTS directly) verifies every chunk range against
the checksums in the segment's LTS metadata: a chunk object changed, cut short, grown, replaced or
deleted, in a local directory or in SeaweedFS, is a typed error naming the segment, the object and
the offset; chunks listed without checksums (older versions) still read, unverified."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from xtremehub.errors import ChecksumMismatch, ObjectNotFound
from xtremehub.storage import open_store
from xtremehub.storage.base import Store
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.history import StreamHistory, StreamSlice

CHUNK = 32 << 10


def _payload(n: int) -> bytes:
    return json.dumps({"n": n}).encode() + b" " * 1000


def _sealed_stream(m: StreamManager, count: int) -> None:
    """Stream ``lab/s`` (one segment) with ``count`` events, sealed."""
    m.create_scope("lab")
    m.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(1))
    with m.create_writer("lab", "s") as writer:
        for n in range(count):
            writer.write_event(_payload(n), "k")
    m.seal_stream("lab", "s")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def history(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[StreamSlice], Store]:
    """The slices of a sealed one-segment stream of 300 events, and the LTS store they read."""
    lts, settings = f"{tmp_path / 'lts'}/", None
    options: dict[str, Any] = {"lts_flush_delay": 0.0, "lts_chunk_size": CHUNK, "lts_read_part_size": 8 << 10}
    if request.param == "s3":
        settings = request.getfixturevalue("s3_default")  # the process settings: the store's and the reader's
        lts = request.getfixturevalue("s3_root")
    with StreamManager.embedded(tmp_path / "data", lts, **options) as m:
        _sealed_stream(m, 300)
        slices = StreamHistory(m, "lab", "s", lts, settings=settings, wait=30).partition(CHUNK)
    store, _ = open_store(lts, settings)
    return slices, store


def _events(slices: list[StreamSlice]) -> list[bytes]:
    return [e.data for s in slices for e in s.events()]


def _flip(data: bytes) -> bytes:
    raw = bytearray(data)
    raw[len(raw) // 2] ^= 0x40
    return bytes(raw)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "flipped": _flip,
    "truncated": lambda d: d[:-10],
    "replaced": lambda d: bytes(reversed(d)),
    "grown": lambda d: d + b"\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_chunk_is_a_checksum_mismatch_naming_segment_object_and_offset(
    history: tuple[list[StreamSlice], Store], damage: str
) -> None:
    slices, store = history
    assert _events(slices) == [_payload(n) for n in range(300)]
    victim = slices[1]
    key, lo, _ = victim.pieces[0]
    store.put(key, DAMAGE[damage](store.get(key)))
    with pytest.raises(ChecksumMismatch) as info:
        _events(slices)
    err = info.value
    assert err.segment == victim.segment
    assert err.url == store.url(key)
    assert victim.start <= err.segment_offset <= victim.end
    assert err.segment_offset == victim.start + err.offset - lo
    assert f"segment {victim.segment!r} offset {err.segment_offset}" in str(err)
    assert slices[0].get()  # the slices of intact chunks still read


def test_a_deleted_chunk_is_object_not_found_naming_the_segment(history: tuple[list[StreamSlice], Store]) -> None:
    slices, store = history
    key = slices[2].pieces[0][0]
    store.delete(key)
    with pytest.raises(ObjectNotFound) as info:
        slices[2].get()
    assert info.value.url == store.url(key)
    assert f"LTS chunk of segment {slices[2].segment!r} offset {slices[2].start} is missing" in str(info.value)


def test_chunks_listed_without_checksums_read_unverified(tmp_path: Path) -> None:
    """Metadata written by a version without checksums: the history still reads (unverified)."""
    lts = f"{tmp_path / 'lts'}/"
    with StreamManager.embedded(tmp_path / "data", lts, lts_flush_delay=0.0, lts_chunk_size=CHUNK) as m:
        _sealed_stream(m, 100)
        history = StreamHistory(m, "lab", "s", lts, wait=30)
        for meta in Path(lts).rglob("metadata.json"):
            body = json.loads(meta.read_text())
            assert all("sums" in c for c in body["chunks"])
            body["chunks"] = [{k: v for k, v in c.items() if k != "sums"} for c in body["chunks"]]
            meta.write_text(json.dumps(body))
        slices = history.partition()
    assert all(s is None for sl in slices for s in sl.sums)
    assert _events(slices) == [_payload(n) for n in range(100)]
