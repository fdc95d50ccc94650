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
