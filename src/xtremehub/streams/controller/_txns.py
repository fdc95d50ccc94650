"""Transactions: one transaction segment per active segment, merged into the parents on commit.

Commit is driven from durable state: the transaction is marked ``committing`` before the first
merge, and recovery re-drives every ``committing`` transaction (merges are idempotent), so a
crash in the middle of a commit finishes the commit rather than leaving half of it visible.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable

from xtremehub.errors import InvalidStreamArgument, SegmentNotFound, SegmentSealed, TransactionFailed
from xtremehub.streams.controller._metadata import Metadata
from xtremehub.streams.controller.model import SegmentRange, TxnInfo, TxnSegment
from xtremehub.streams.segmentstore.contract import SegmentStoreContract

__all__ = ["TxnOps", "txn_segment_name"]

log = logging.getLogger(__name__)


def txn_segment_name(parent: str, txn_id: str) -> str:
    """The transaction segment that is merged into ``parent`` on commit.

    >>> txn_segment_name("s/st/0.#epoch.0", "ab12")
    's/st/0.#epoch.0#txn.ab12'
    """
    return f"{parent}#txn.{txn_id}"


class TxnOps:
    """Transaction operations; mixed into :class:`~xtremehub.streams.controller.Controller`."""

    _db: Metadata
    _store: SegmentStoreContract
    _lock: threading.RLock
    _clock: Callable[[], float]

    # provided by StreamOps
    _stream_row: Callable[[str, str], tuple[str, int, int, int, str, float]]
    _active: Callable[[str, str], list[SegmentRange]]
    _segment: Callable[[str, str, int], SegmentRange]

    def _txn(self, txn_id: str) -> TxnInfo:
        rows = self._db.query("SELECT scope, stream, state, lease_deadline, segments FROM txns WHERE id = ?", (txn_id,))
        if not rows:
            raise TransactionFailed(f"transaction {txn_id!r} does not exist (committed long ago, or never begun)")
        scope, stream, state, deadline, numbers = rows[0]
        segments = []
        for number in json.loads(numbers):
            parent = self._segment(scope, stream, int(number))
            segments.append(TxnSegment(parent, txn_segment_name(parent.name, txn_id)))
        return TxnInfo(txn_id, scope, stream, state, float(deadline), tuple(segments))

    def _set_state(self, txn_id: str, state: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("UPDATE txns SET state = ? WHERE id = ?", (state, txn_id))

    def begin_transaction(self, scope: str, stream: str, lease: float) -> TxnInfo:
        if not lease > 0:
            raise InvalidStreamArgument(f"transaction lease must be > 0 seconds, got {lease}")
        with self._lock:
            sealed = self._stream_row(scope, stream)[1]
            if sealed:
                raise SegmentSealed(f"stream {scope}/{stream} is sealed; no transactions")
            txn_id = uuid.uuid4().hex
            active = self._active(scope, stream)
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO txns VALUES (?, ?, ?, 'open', ?, ?, ?)",
                    (
                        txn_id,
                        scope,
                        stream,
                        self._clock() + lease,
                        json.dumps([s.number for s in active]),
                        self._clock(),
                    ),
                )
            for seg in active:
                self._store.create_segment(txn_segment_name(seg.name, txn_id))
            return self._txn(txn_id)

    def ping_transaction(self, txn_id: str, lease: float) -> TxnInfo:
        with self._lock:
            info = self._txn(txn_id)
            if info.state != "open":
                raise TransactionFailed(f"transaction {txn_id} is {info.state}; it cannot be extended")
            with self._db.transaction() as cur:
                cur.execute("UPDATE txns SET lease_deadline = ? WHERE id = ?", (self._clock() + lease, txn_id))
            return self._txn(txn_id)

    def commit_transaction(self, txn_id: str) -> TxnInfo:
        with self._lock:
            info = self._txn(txn_id)
            if info.state == "committed":
                return info
            if info.state == "open" and info.lease_deadline < self._clock():
                self.abort_transaction(txn_id)
                raise TransactionFailed(f"transaction {txn_id} timed out (lease expired) and was aborted")
            if info.state not in ("open", "committing"):
                raise TransactionFailed(f"transaction {txn_id} is {info.state}; it cannot be committed")
            self._set_state(txn_id, "committing")
            self._finish_commit(info)
            return self._txn(txn_id)

    def _finish_commit(self, info: TxnInfo) -> None:
        for seg in info.segments:
            try:
                self._store.seal(seg.name)
            except SegmentNotFound:
                continue  # merged before a crash
            self._store.merge(seg.parent.name, seg.name)
        self._set_state(info.txn_id, "committed")
        log.info("committed transaction %s on %s/%s", info.txn_id, info.scope, info.stream)

    def abort_transaction(self, txn_id: str) -> TxnInfo:
        with self._lock:
            info = self._txn(txn_id)
            if info.state in ("committing", "committed"):
                raise TransactionFailed(f"transaction {txn_id} is {info.state}; it cannot be aborted")
            self._set_state(txn_id, "aborted")
            for seg in info.segments:
                with contextlib.suppress(SegmentNotFound):
                    self._store.delete(seg.name)
            return self._txn(txn_id)

    def get_transaction(self, txn_id: str) -> TxnInfo:
        return self._txn(txn_id)

    def _abort_open_transactions(self, scope: str, stream: str) -> None:
        rows = self._db.query("SELECT id FROM txns WHERE scope = ? AND stream = ? AND state = 'open'", (scope, stream))
        for (txn_id,) in rows:
            self.abort_transaction(str(txn_id))

    def _expire_transactions(self) -> None:
        rows = self._db.query("SELECT id FROM txns WHERE state = 'open' AND lease_deadline < ?", (self._clock(),))
        for (txn_id,) in rows:
            log.warning("transaction %s lease expired: aborting", txn_id)
            self.abort_transaction(str(txn_id))

    def _recover_transactions(self) -> None:
        for (txn_id,) in self._db.query("SELECT id FROM txns WHERE state = 'committing'"):
            self._finish_commit(self._txn(str(txn_id)))
        for (txn_id,) in self._db.query("SELECT id FROM txns WHERE state = 'open'"):
            for seg in self._txn(str(txn_id)).segments:
                self._store.create_segment(seg.name)
