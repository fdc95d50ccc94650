"""The controller contract on NATS JetStream: the controller's metadata lives in a key-value bucket.

Every client runs the embedded :class:`~xtremehub.streams.controller.Controller` logic (the same
code, so the same semantics: scopes, streams, epochs with successor/predecessor edges for
split/merge, transactions, reader groups with their positions and generations, checkpoints,
stream cuts, truncation and retention) on an in-memory SQLite copy of the metadata. The
authoritative copy is one value (the compressed SQLite image) in the replicated JetStream
key-value bucket ``<NS>_CONTROLLER``. Each controller operation:

1. loads the bucket's current revision when it is newer than the copy it holds;
2. runs the operation on the copy;
3. if the operation changed anything, publishes the new image conditional on the revision it
   loaded (``Nats-Expected-Last-Sequence`` of the bucket's stream, which holds only this key),
   so two clients changing metadata at once cannot both win; on a conflict it reloads the
   winner's image and runs the operation again on it.

Segment store side effects of an operation (create, seal, merge, truncate, delete a segment)
are idempotent, so re-running an operation after a conflict is safe. Metadata operations are
rare next to events (one per scale, transaction, reader heartbeat), so moving one small image
per change costs little; the events themselves never pass through the bucket.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from xtremehub.errors import NotSupported, SegmentNotFound, ServerUnavailable
from xtremehub.streams.controller import Controller
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import TxnInfo
from xtremehub.streams.jetstream.connection import BACKEND, REQUEST_TIMEOUT, JetStreamConnection
from xtremehub.streams.segmentstore.contract import SegmentStoreContract

__all__ = ["JetStreamController"]

T = TypeVar("T")

_KEY = "metadata"
#: Operations a conflicting writer makes this client re-run before it gives up.
MAX_CONFLICTS = 200
#: Controller-contract methods that do not touch shared metadata.
_LOCAL = {"close", "report_traffic"}


class JetStreamController(Controller):
    """:class:`~xtremehub.streams.controller.Controller` whose metadata is a JetStream KV value.

    ``clock`` is the controller's time (tests pass a manual clock). Thread-safe; any number of
    processes may use the same namespace at once.
    """

    def __init__(
        self,
        store: SegmentStoreContract,
        connection: JetStreamConnection,
        *,
        clock: Callable[[], float] = time.time,
        owns_connection: bool = True,
    ) -> None:
        self._conn = connection.acquire() if owns_connection else connection
        self._owns = owns_connection
        self._bucket = f"{connection.settings.namespace.upper()}_CONTROLLER"
        self._revision = 0
        self._sync_lock = threading.RLock()
        self._local = threading.local()
        self._subject = f"$KV.{self._bucket}.{_KEY}"
        self._token = uuid.uuid4().hex[:12]
        self._kv: Any = self._conn.call(self._open_bucket, "open the controller bucket")
        super().__init__(store, ":memory:", clock=clock)
        self._initialise()

    async def _open_bucket(self) -> Any:
        import nats.js.errors

        try:
            return await self._conn.js.key_value(self._bucket)
        except nats.js.errors.BucketNotFoundError:
            return await self._conn.js.create_key_value(
                bucket=self._bucket, history=1, replicas=self._conn.settings.replicas
            )

    def _recover(self) -> None:
        """No start-up recovery: other clients may be half-way through an operation right now."""

    # -- the metadata image ---------------------------------------------------------------
    def _load(self) -> None:
        import nats.js.errors

        async def get() -> Any:
            try:
                return await self._kv.get(_KEY)
            except nats.js.errors.KeyNotFoundError:
                return None

        entry = self._conn.call(get, "load controller metadata")
        if entry is None or entry.revision == self._revision:
            return
        with self._lock:
            self._db._conn.deserialize(zlib.decompress(entry.value))
        self._revision = int(entry.revision)

    def _save(self) -> bool:
        """Write the image conditionally on the loaded revision; False when another client wrote first.

        The condition is the bucket stream's last sequence (``Nats-Expected-Last-Sequence``): the
        bucket holds this one key, so that is the key's revision, and nats-server 2.9 enforces the
        stream-wide check on replicated streams even for concurrent publishes (its per-subject
        check, which ``KeyValue.update`` uses, it does not: concurrent updates were lost).
        """
        import nats.js.errors

        with self._lock:
            image = zlib.compress(self._db._conn.serialize(), 1)
        limit = int(self._conn.nc.max_payload) - 4096
        if len(image) > limit:
            raise NotSupported(
                f"{BACKEND}: the controller metadata image is {len(image)} bytes, over the {limit} bytes one "
                "key-value entry can hold here (raise the servers' max_payload, or delete old streams and groups)"
            )
        base = self._revision
        headers = {"Nats-Expected-Last-Sequence": str(base), "Nats-Msg-Id": f"{self._token}:{base}"}

        async def put() -> int | None:
            try:
                ack = await self._conn.js.publish(self._subject, image, headers=headers, timeout=REQUEST_TIMEOUT)
            except nats.js.errors.APIError as exc:
                if exc.err_code == 10071:  # wrong last sequence
                    return None
                raise
            return int(ack.seq)

        revision = self._conn.call(put, "save controller metadata")
        if revision is None:
            self._revision = -1  # reload before the retry
            return False
        self._revision = revision
        return True

    def _initialise(self) -> None:
        """Store the empty metadata image once: every client publishes it with the same message id."""
        import nats.js.errors

        async def get() -> Any:
            try:
                return await self._kv.get(_KEY)
            except nats.js.errors.KeyNotFoundError:
                return None

        if self._conn.call(get, "load controller metadata") is not None:
            return
        with self._lock:
            image = zlib.compress(self._db._conn.serialize(), 1)
        headers = {"Nats-Msg-Id": f"{self._bucket}:initial"}
        self._conn.call(
            lambda: self._conn.js.publish(self._subject, image, headers=headers, timeout=REQUEST_TIMEOUT),
            "initialise controller metadata",
        )

    def _synced(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` on the current metadata and publish what it changed (re-run on conflicts)."""
        if getattr(self._local, "inside", False):
            return operation()  # a controller method calling another: one outer sync covers both
        with self._sync_lock:
            self._local.inside = True
            try:
                for _ in range(MAX_CONFLICTS):
                    self._load()
                    before = self._db._conn.total_changes
                    try:
                        result = operation()
                    except Exception:
                        if self._db._conn.total_changes != before and not self._save():
                            continue
                        raise
                    if self._db._conn.total_changes == before or self._save():
                        return result
                raise ServerUnavailable(
                    f"{BACKEND}: controller metadata changed by others {MAX_CONFLICTS} times in a row"
                )
            finally:
                self._local.inside = False

    def commit_transaction(self, txn_id: str) -> TxnInfo:
        """Commit as embedded, after checking that each transaction segment fits in one merge message.

        The transaction's segments are sealed first, so their sizes are final; a segment larger
        than one JetStream message raises ``NotSupported`` before anything is merged (the
        transaction can then only be aborted).
        """

        def commit() -> TxnInfo:
            info = self._txn(txn_id)
            limit = getattr(self._store, "max_append", None)
            if info.state == "open" and limit is not None and info.lease_deadline >= self._clock():
                for seg in info.segments:
                    try:
                        length = self._store.seal(seg.name)
                    except SegmentNotFound:
                        continue
                    if length > limit:
                        raise NotSupported(
                            f"{BACKEND}: transaction {txn_id} holds {length} bytes for segment "
                            f"{seg.parent.name!r}; a commit is one JetStream message of at most {limit} bytes "
                            "(abort it, or write smaller transactions)"
                        )
            return Controller.commit_transaction(self, txn_id)

        return self._synced(commit)

    def close(self) -> None:
        super().close()
        if self._owns:
            self._owns = False
            self._conn.release()


def _wrap(name: str) -> Callable[..., Any]:
    method = getattr(Controller, name)

    def synced(self: JetStreamController, *args: Any, **kwargs: Any) -> Any:
        return self._synced(lambda: method(self, *args, **kwargs))

    synced.__name__ = name
    synced.__qualname__ = f"JetStreamController.{name}"
    synced.__doc__ = method.__doc__
    return synced


for _name in sorted(ControllerContract.__abstractmethods__ - _LOCAL - set(vars(JetStreamController))):
    setattr(JetStreamController, _name, _wrap(_name))
