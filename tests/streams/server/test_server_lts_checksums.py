"""A damaged or deleted LTS chunk read through the stream server: the client gets the typed error
(same class, the message naming the segment, the chunk object and the offset), not a hang or an
empty read."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtremehub.errors import ChecksumMismatch, ObjectNotFound
from xtremehub.streams.remote import RemoteSegmentStore
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.streams.server import serve_background
from xtremehub.testing.segmentstore import wait_until

SMALL = {
    "tiering_interval": 0.05,
    "lts_flush_delay": 0.0,
    "lts_chunk_size": 64 * 1024,
    "wal_file_size": 256 * 1024,
    "lts_read_part_size": 16 * 1024,
}
SEGMENT = "sc/st/0.#epoch.0"


def _read_all(remote: RemoteSegmentStore) -> bytes:
    data = bytearray()
    while chunk := remote.read(SEGMENT, len(data), 20_000).data:
        data += chunk
    return bytes(data)


@pytest.mark.parametrize("damage", ["flipped", "deleted"])
def test_a_damaged_or_deleted_chunk_is_a_typed_error_through_the_server(tmp_path: Path, damage: str) -> None:
    config = SegmentStoreConfig(data_dir=tmp_path / "data", **SMALL)  # type: ignore[arg-type]
    expected = b"".join(i.to_bytes(4, "big") * 2500 for i in range(20))
    with SegmentStore(config) as store, serve_background(store) as server:
        remote = RemoteSegmentStore(server.url)
        try:
            remote.create_segment(SEGMENT)
            for i in range(20):
                remote.append(SEGMENT, expected[i * 10_000 : (i + 1) * 10_000])
            remote.seal(SEGMENT)
            wait_until(lambda: store.info(SEGMENT).tiered_length == len(expected), what="tiered")
            assert _read_all(remote) == expected
            lts = store.chunks.store
            victim = sorted(i.key for i in lts.list(store.chunks.prefix) if i.key.endswith(".chunk"))[1]
            if damage == "deleted":
                lts.delete(victim)
                with pytest.raises(
                    ObjectNotFound, match=f"{Path(victim).name}: LTS chunk of segment {SEGMENT!r} read at offset"
                ):
                    _read_all(remote)
            else:
                raw = bytearray(lts.get(victim))
                raw[100] ^= 0x01
                lts.put(victim, bytes(raw))
                offset = int(Path(victim).stem)  # the chunk's first block holds the flipped byte
                with pytest.raises(
                    ChecksumMismatch, match=f"segment {SEGMENT!r} offset {offset}: .*{Path(victim).name}"
                ):
                    _read_all(remote)
        finally:
            remote.close()
