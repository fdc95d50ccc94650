"""The stream-level conformance suite on NATS JetStream: writers, readers, groups, checkpoints, transactions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xtremehub.errors import NotSupported
from xtremehub.streams import StreamManager
from xtremehub.streams.jetstream import JetStreamConnection, JetStreamController, JetStreamSegmentStore
from xtremehub.testing.streams import ManualClock, StreamStoreTests


class TestStreamsOnJetStream(StreamStoreTests):
    @pytest.fixture
    def manager(self, nats_url: str, clock: ManualClock) -> Iterator[StreamManager]:
        connection = JetStreamConnection.open(nats_url)
        store = JetStreamSegmentStore(connection)
        controller = JetStreamController(store, connection, clock=clock)
        with StreamManager(controller, store, on_close=[controller.close, store.close]) as manager:
            yield manager


def test_stream_manager_takes_a_nats_url(nats_url: str) -> None:
    with StreamManager(nats_url) as manager:
        assert isinstance(manager.controller, JetStreamController)
        assert isinstance(manager.store, JetStreamSegmentStore)
        manager.create_scope("lab")
        manager.create_stream("lab", "frames")
        with manager.create_writer("lab", "frames") as writer:
            writer.write_event(b"one", routing_key="k").result()
    # a second client sees what the first one wrote: the metadata and the data are in the cluster
    with StreamManager(nats_url) as again:
        assert again.list_streams("lab") == ["frames"]
        group = again.create_reader_group("g", "lab", ["frames"])
        reader = group.create_reader("r")
        event = reader.read_next(timeout=10)
        assert event is not None
        assert event.data == b"one"
        reader.close()


def test_a_transaction_larger_than_one_message_is_not_supported_and_can_be_aborted(nats_url: str) -> None:
    with StreamManager(nats_url) as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "big")
        assert isinstance(manager.store, JetStreamSegmentStore)
        txn = manager.create_transaction_writer("lab", "big").begin_txn(lease=60)
        chunk = b"x" * (3 * 1024 * 1024)
        for _ in range(3):
            txn.write_event(chunk)
        txn.flush()
        with pytest.raises(NotSupported, match=r"NATS JetStream backend.*one JetStream message"):
            txn.commit()
        assert txn.state() == "open"
        txn.abort()
        assert txn.state() == "aborted"
        assert dict(manager.get_tail_cut("lab", "big").positions) == {
            s.name: 0 for s in manager.get_stream("lab", "big").active_segments
        }


def test_two_clients_changing_metadata_at_once_lose_nothing(nats_url: str) -> None:
    """Concurrent controller updates from two clients: every change survives (conditional bucket writes)."""
    import threading

    managers = [StreamManager(nats_url), StreamManager(nats_url)]
    try:

        def create(manager: StreamManager, tag: str) -> None:
            for i in range(20):
                assert manager.create_scope(f"{tag}{i}")

        threads = [threading.Thread(target=create, args=(m, tag)) for m, tag in zip(managers, "ab", strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = sorted(f"{tag}{i}" for tag in "ab" for i in range(20))
        assert managers[0].list_scopes() == expected
        assert managers[1].list_scopes() == expected
    finally:
        for manager in managers:
            manager.close()
