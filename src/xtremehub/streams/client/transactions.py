"""Transactional writers: events written in a transaction are invisible until it commits.

A transaction has one transaction segment per active segment of the stream; events are routed
to them by key like a normal writer's, and commit merges each one atomically into its parent.
A transaction not committed within its lease (extend it with :meth:`Transaction.ping`) is
aborted by the controller.
"""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import Future

from xtremehub.errors import StreamError, TransactionFailed
from xtremehub.streams.client._framing import encode_event, key_point
from xtremehub.streams.client.writer import Router
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import TxnInfo
from xtremehub.streams.segmentstore.contract import AppendResult, SegmentStoreContract

__all__ = ["Transaction", "TransactionalEventStreamWriter"]


class Transaction:
    """One open transaction. Thread-safe."""

    def __init__(
        self, controller: ControllerContract, store: SegmentStoreContract, info: TxnInfo, writer_id: str
    ) -> None:
        self._controller, self._store, self._info = controller, store, info
        self._writer_id = writer_id
        by_parent = {seg.parent.name: seg.name for seg in info.segments}
        self._txn_segment = by_parent
        self._router = Router([s.parent for s in info.segments])
        self._sent: list[Future[AppendResult]] = []
        self._number = 0
        self._lock = threading.Lock()

    @property
    def txn_id(self) -> str:
        """The transaction's id."""
        return self._info.txn_id

    def state(self) -> str:
        """``open``, ``committing``, ``committed`` or ``aborted`` (asks the controller)."""
        self._info = self._controller.get_transaction(self.txn_id)
        return self._info.state

    def write_event(self, data: bytes, routing_key: str | None = None) -> None:
        """Add an event to the transaction (sent at once; durable and visible only after commit)."""
        frame = encode_event(data, routing_key)
        point = key_point(routing_key) if routing_key is not None else random.random()
        with self._lock:
            if self._info.state != "open":
                raise TransactionFailed(f"transaction {self.txn_id} is {self._info.state}")
            target = self._txn_segment[self._router.pick(point).name]
            self._sent.append(
                self._store.append_async(target, frame, writer_id=self._writer_id, event_number=self._number)
            )
            self._number += 1

    def flush(self) -> None:
        """Wait until every event written so far is stored (``TransactionFailed`` if one was refused)."""
        with self._lock:
            for sent in self._sent:
                try:
                    sent.result()
                except StreamError as exc:
                    raise TransactionFailed(f"transaction {self.txn_id}: an event was refused: {exc}") from exc
            self._sent.clear()

    def ping(self, lease: float) -> None:
        """Extend the lease to ``lease`` seconds from now."""
        self._info = self._controller.ping_transaction(self.txn_id, lease)

    def commit(self) -> None:
        """Make every event visible at once; ``TransactionFailed`` when aborted or timed out."""
        self.flush()
        self._info = self._controller.commit_transaction(self.txn_id)

    def abort(self) -> None:
        """Drop every event of the transaction."""
        with self._lock:
            for sent in self._sent:
                sent.exception()
            self._sent.clear()
        self._info = self._controller.abort_transaction(self.txn_id)


class TransactionalEventStreamWriter:
    """Begins transactions on one stream."""

    def __init__(
        self,
        controller: ControllerContract,
        store: SegmentStoreContract,
        scope: str,
        stream: str,
        *,
        writer_id: str | None = None,
    ) -> None:
        self.scope, self.stream = scope, stream
        self.writer_id = writer_id or uuid.uuid4().hex
        self._controller, self._store = controller, store
        controller.get_stream(scope, stream)  # raises StreamNotFound

    def begin_txn(self, lease: float = 30.0) -> Transaction:
        """Open a transaction, aborted by the controller if not committed within ``lease`` seconds."""
        info = self._controller.begin_transaction(self.scope, self.stream, lease)
        return Transaction(self._controller, self._store, info, self.writer_id)

    def get_txn(self, txn_id: str) -> Transaction:
        """Re-attach to a transaction (for example to commit it from another process)."""
        return Transaction(self._controller, self._store, self._controller.get_transaction(txn_id), self.writer_id)
