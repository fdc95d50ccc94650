"""The segment store of a stream server, behind the same contract as the embedded one."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from xtremehub.errors import EventTooLarge, ProtocolError
from xtremehub.streams.remote.connection import ClientConfig, Connection, connect
from xtremehub.streams.segmentstore.contract import (
    AppendResult,
    ReadResult,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
)
from xtremehub.streams.wire import DEFAULT_MAX_FRAME, STORE_TARGET, MessageType

__all__ = ["STORE_RETRIABLE", "RemoteSegmentStore", "remote_call"]

#: Store methods a reconnecting client may safely send again (idempotent or read-only).
STORE_RETRIABLE = frozenset({"info", "writer_event_number", "seal", "merge", "truncate", "list_segments", "stats"})


#: Room for the frame header and the other APPEND fields (segment names are short).
APPEND_OVERHEAD = 64 * 1024


def remote_call(conn: Connection, target: str, method: str, args: list[Any], *, retriable: bool) -> Any:
    """Call ``target.method(*args)`` on the server and wait for its result."""
    payload = conn.codec.encode([target, method, args, {}])
    return conn.call(MessageType.CALL, payload, _decode_result(conn), retriable=retriable)


def _decode_result(conn: Connection) -> Any:
    def decode(msg_type: MessageType | int, payload: bytes) -> Any:
        if msg_type != MessageType.RESULT:
            raise ProtocolError(f"expected RESULT, got message type {int(msg_type)}")
        return conn.codec.decode(payload)

    return decode


class RemoteSegmentStore(SegmentStoreContract):
    """A :class:`SegmentStoreContract` proxy over TCP (``tcp://host:port``).

    Appends and reads use the protocol's compact APPEND/READ messages and are pipelined: many
    ``append_async`` calls from many threads are in flight on one connection, and the server
    batches them into shared fsyncs. ``close`` closes the connection, not the server's store.

    Example (see ``tests/streams/server`` for a running server)::

        store = RemoteSegmentStore("tcp://127.0.0.1:9090")
        store.create_segment("s/st/0.#epoch.0")
        store.append("s/st/0.#epoch.0", b"event", writer_id="w1", event_number=1)
    """

    def __init__(
        self, url: str | Connection, config: ClientConfig | None = None, *, own_connection: bool | None = None
    ) -> None:
        self.connection, self._owns = connect(url, config, own_connection)

    def _call(self, method: str, *args: Any) -> Any:
        return remote_call(self.connection, STORE_TARGET, method, list(args), retriable=method in STORE_RETRIABLE)

    def create_segment(self, name: str) -> bool:
        return bool(self._call("create_segment", name))

    def append(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
    ) -> AppendResult:
        future = self.append_async(
            segment, data, writer_id=writer_id, event_number=event_number, expected_offset=expected_offset
        )
        return future.result(timeout)

    def append_async(
        self,
        segment: str,
        data: bytes,
        *,
        writer_id: str | None = None,
        event_number: int | None = None,
        expected_offset: int | None = None,
        timeout: float | None = None,
    ) -> Future[AppendResult]:
        # ``timeout`` has nothing to bound here: the call never blocks, the server applies back
        # pressure and answers BackPressure after its own timeout.
        def decode(msg_type: MessageType | int, payload: bytes) -> AppendResult:
            if msg_type != MessageType.APPENDED:
                raise ProtocolError(f"expected APPENDED, got message type {int(msg_type)}")
            offset, length, duplicate = self.connection.codec.decode(payload)
            return AppendResult(segment, offset, length, duplicate)

        limit = int(self.connection.server_info.get("max_frame", DEFAULT_MAX_FRAME)) - APPEND_OVERHEAD
        if len(data) > limit:
            failed: Future[AppendResult] = Future()
            failed.set_exception(
                EventTooLarge(f"segment {segment!r}: append of {len(data)} bytes exceeds the server's frame limit")
            )
            return failed
        payload = self.connection.codec.encode([segment, bytes(data), writer_id, event_number, expected_offset])
        # A re-sent append is exactly-once only when the store can recognise it (writer id + number).
        retriable = writer_id is not None and event_number is not None
        return self.connection.request(MessageType.APPEND, payload, decode, retriable=retriable)

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> ReadResult:
        def decode(msg_type: MessageType | int, payload: bytes) -> ReadResult:
            if msg_type != MessageType.DATA:
                raise ProtocolError(f"expected DATA, got message type {int(msg_type)}")
            at, data, end = self.connection.codec.decode(payload)
            return ReadResult(segment, at, data, end)

        payload = self.connection.codec.encode([segment, offset, max_length, wait])
        result: ReadResult = self.connection.call(MessageType.READ, payload, decode, retriable=True)
        return result

    def info(self, segment: str) -> SegmentInfo:
        result: SegmentInfo = self._call("info", segment)
        return result

    def writer_event_number(self, segment: str, writer_id: str) -> int | None:
        result: int | None = self._call("writer_event_number", segment, writer_id)
        return result

    def seal(self, segment: str) -> int:
        return int(self._call("seal", segment))

    def merge(self, target: str, source: str) -> int:
        return int(self._call("merge", target, source))

    def truncate(self, segment: str, offset: int) -> None:
        self._call("truncate", segment, offset)

    def delete(self, segment: str) -> None:
        self._call("delete", segment)

    def list_segments(self, prefix: str = "") -> list[str]:
        return list(self._call("list_segments", prefix))

    def stats(self) -> StoreStats:
        result: StoreStats = self._call("stats")
        return result

    def close(self) -> None:
        """Close the connection (when this proxy opened it); the server's store stays open."""
        if self._owns:
            self.connection.close()
