"""Transactions: atomic commit, abort, lease timeout."""

from __future__ import annotations

import time

import pytest

from xtremehub.errors import (
    TransactionFailed,
)
from xtremehub.streams import (
    EventRead,
    ScalingPolicy,
    StreamManager,
)
from xtremehub.testing.streams.base import StreamSuiteBase
from xtremehub.testing.streams.clock import ManualClock
from xtremehub.testing.streams.reading import read_events

__all__ = ["TransactionTests"]


class TransactionTests(StreamSuiteBase):
    """Transactions: atomic commit, abort, lease timeout."""

    def test_transaction_commit_is_atomic_and_invisible_before(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager, ScalingPolicy.fixed(2))
        group = manager.create_reader_group("g", scope, [stream], start="head")
        txn = manager.create_transaction_writer(scope, stream).begin_txn(lease=30)
        for i in range(20):
            txn.write_event(f"t{i}".encode(), routing_key=f"k{i % 3}")
        txn.flush()
        reader = group.create_reader("r", sync_interval=0.05)
        assert reader.read_next(timeout=0.5) is None, "a transaction's events are visible before commit"
        txn.commit()
        assert txn.state() == "committed"
        got: list[EventRead] = []
        deadline = time.monotonic() + 10
        while len(got) < 20 and time.monotonic() < deadline:
            event = reader.read_next(timeout=0.2)
            if event is not None:
                got.append(event)
        assert sorted(e.data for e in got) == sorted(f"t{i}".encode() for i in range(20))
        order = [int(e.data[1:]) for e in got if e.routing_key == "k1"]
        assert order == sorted(order)
        reader.reader_offline()

    def test_transaction_abort_and_timeout(self, manager: StreamManager, clock: ManualClock) -> None:
        scope, stream = self._stream(manager)
        writer = manager.create_transaction_writer(scope, stream)
        aborted = writer.begin_txn()
        aborted.write_event(b"never")
        aborted.abort()
        assert aborted.state() == "aborted"
        with pytest.raises(TransactionFailed):
            aborted.commit()
        expiring = writer.begin_txn(lease=0.2)
        expiring.write_event(b"too late")
        clock.advance(0.4)  # past the lease (the controller's clock, no sleeping)
        manager.controller.run_maintenance()
        assert expiring.state() == "aborted"
        with pytest.raises(TransactionFailed):
            expiring.commit()
        with manager.create_writer(scope, stream) as plain:
            plain.write_event(b"visible")
        events = read_events(manager.create_reader_group("g", scope, [stream]), 1)
        assert events[0].data == b"visible"
        with pytest.raises(TransactionFailed):
            writer.get_txn("0" * 32)
