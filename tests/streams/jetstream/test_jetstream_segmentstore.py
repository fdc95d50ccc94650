"""The segment-store conformance suite on NATS JetStream (3 nodes, replication 3)."""

from __future__ import annotations

import pytest

from xtremehub.errors import NotSupported
from xtremehub.streams.jetstream import JetStreamSegmentStore
from xtremehub.testing.segmentstore import MakeStore, SegmentStoreTests


class TestJetStreamSegmentStore(SegmentStoreTests):
    @pytest.fixture
    def make_store(self, nats_url: str) -> MakeStore:
        return lambda: JetStreamSegmentStore.open(nats_url)


def test_merge_larger_than_a_message_is_not_supported(nats_url: str) -> None:
    store = JetStreamSegmentStore.open(nats_url)
    try:
        store.create_segment("t")
        store.create_segment("src")
        for _ in range(3):
            store.append("src", b"x" * (store.max_append // 2))
        with pytest.raises(NotSupported, match="NATS JetStream backend"):
            store.merge("t", "src")
    finally:
        store.close()


def test_two_clients_appending_to_one_segment_get_disjoint_offsets(nats_url: str) -> None:
    """Two stores (two connections, as two processes) race on one subject: conditional publishes serialise them."""
    import threading

    first, second = JetStreamSegmentStore.open(nats_url), JetStreamSegmentStore.open(nats_url)
    try:
        first.create_segment("shared")
        assert not second.create_segment("shared")
        results: dict[str, list[tuple[int, int, bytes]]] = {"a": [], "b": []}

        def write(store: JetStreamSegmentStore, tag: str) -> None:
            for i in range(60):
                data = f"{tag}{i:03d};".encode()
                result = store.append("shared", data)
                results[tag].append((result.offset, result.length, data))

        threads = [
            threading.Thread(target=write, args=(first, "a")),
            threading.Thread(target=write, args=(second, "b")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = b""
        while len(stored) < first.info("shared").length:
            stored += second.read("shared", len(stored), 1 << 20).data
        assert len(stored) == 120 * 5
        for offset, length, data in results["a"] + results["b"]:
            assert stored[offset : offset + length] == data, "an acknowledged offset does not hold its data"
    finally:
        first.close()
        second.close()


def test_a_restarted_writer_on_another_client_is_exactly_once(nats_url: str) -> None:
    one = JetStreamSegmentStore.open(nats_url)
    try:
        one.create_segment("s")
        for i in range(10):
            one.append("s", f"e{i};".encode(), writer_id="w", event_number=i)
    finally:
        one.close()
    other = JetStreamSegmentStore.open(nats_url)
    try:
        assert other.writer_event_number("s", "w") == 9
        outcomes = [other.append("s", f"e{i};".encode(), writer_id="w", event_number=i) for i in range(5, 15)]
        assert [o.duplicate for o in outcomes] == [True] * 5 + [False] * 5
        assert other.read("s", 0, 1 << 20).data == b"".join(f"e{i};".encode() for i in range(15))
    finally:
        other.close()
