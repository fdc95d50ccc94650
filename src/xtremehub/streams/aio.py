"""The asyncio variant of the stream client: the same API, every blocking call awaited.

Each call runs the synchronous client in a worker thread (``asyncio.to_thread``), so the
event loop never blocks on an fsync or a wait at the tail; durability and ordering are the
synchronous client's.

Example:
    >>> import asyncio, tempfile
    >>> async def main() -> list[bytes]:
    ...     async with await AsyncStreamManager.embedded(tempfile.mkdtemp()) as manager:
    ...         await manager.create_scope("lab")
    ...         await manager.create_stream("lab", "s")
    ...         writer = await manager.create_writer("lab", "s")
    ...         await writer.write_event(b"hello", routing_key="k")
    ...         await writer.close()
    ...         group = await manager.create_reader_group("g", "lab", ["s"])
    ...         reader = await group.create_reader("r")
    ...         event = await reader.read_next(timeout=5.0)
    ...         await reader.reader_offline()
    ...         return [event.data] if event else []
    >>> asyncio.run(main())
    [b'hello']
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xtremehub.streams.client.bytestream import ByteStream
from xtremehub.streams.client.manager import Start, StreamManager
from xtremehub.streams.client.reader import (
    CHECKPOINT_TIMEOUT,
    EventRead,
    EventStreamReader,
    ReaderGroup,
)
from xtremehub.streams.client.transactions import Transaction, TransactionalEventStreamWriter
from xtremehub.streams.client.writer import EventPointer, EventStreamWriter
from xtremehub.streams.controller.model import Checkpoint, RetentionPolicy, ScalingPolicy, StreamCut, StreamInfo

__all__ = [
    "AsyncByteStream",
    "AsyncEventStreamReader",
    "AsyncEventStreamWriter",
    "AsyncReaderGroup",
    "AsyncStreamManager",
    "AsyncTransaction",
    "AsyncTransactionalWriter",
]


class AsyncEventStreamWriter:
    """Awaitable :class:`~xtremehub.streams.EventStreamWriter`."""

    def __init__(self, writer: EventStreamWriter) -> None:
        self.sync = writer

    async def write_event(self, data: bytes, routing_key: str | None = None) -> EventPointer:
        """Write one event and wait until it is durable."""
        future = await asyncio.to_thread(self.sync.write_event, data, routing_key)
        return await asyncio.wrap_future(future)

    async def flush(self) -> None:
        """Wait until everything written is durable."""
        await asyncio.to_thread(self.sync.flush)

    async def close(self) -> None:
        """Flush and close."""
        await asyncio.to_thread(self.sync.close)


class AsyncTransaction:
    """Awaitable :class:`~xtremehub.streams.Transaction`."""

    def __init__(self, txn: Transaction) -> None:
        self.sync = txn

    async def write_event(self, data: bytes, routing_key: str | None = None) -> None:
        """Add an event to the transaction."""
        await asyncio.to_thread(self.sync.write_event, data, routing_key)

    async def commit(self) -> None:
        """Commit atomically."""
        await asyncio.to_thread(self.sync.commit)

    async def abort(self) -> None:
        """Abort."""
        await asyncio.to_thread(self.sync.abort)


class AsyncTransactionalWriter:
    """Awaitable :class:`~xtremehub.streams.TransactionalEventStreamWriter`."""

    def __init__(self, writer: TransactionalEventStreamWriter) -> None:
        self.sync = writer

    async def begin_txn(self, lease: float = 30.0) -> AsyncTransaction:
        """Open a transaction."""
        return AsyncTransaction(await asyncio.to_thread(self.sync.begin_txn, lease))


class AsyncEventStreamReader:
    """Awaitable :class:`~xtremehub.streams.EventStreamReader`."""

    def __init__(self, reader: EventStreamReader) -> None:
        self.sync = reader

    async def read_next(self, timeout: float | None = None) -> EventRead | None:
        """The next event, or None after ``timeout`` seconds."""
        return await asyncio.to_thread(self.sync.read_next, timeout)

    async def reader_offline(self) -> None:
        """Leave the group."""
        await asyncio.to_thread(self.sync.reader_offline)


class AsyncReaderGroup:
    """Awaitable :class:`~xtremehub.streams.ReaderGroup`."""

    def __init__(self, group: ReaderGroup) -> None:
        self.sync = group

    async def create_reader(self, name: str, *, sync_interval: float = 0.5) -> AsyncEventStreamReader:
        """Join the group as ``name``."""
        reader = await asyncio.to_thread(self.sync.create_reader, name, sync_interval=sync_interval)
        return AsyncEventStreamReader(reader)

    async def reader_offline(self, name: str) -> None:
        """Declare a reader gone."""
        await asyncio.to_thread(self.sync.reader_offline, name)

    async def is_fully_read(self) -> bool:
        """See :meth:`ReaderGroup.is_fully_read`."""
        return await asyncio.to_thread(self.sync.is_fully_read)

    async def stream_cuts(self) -> list[StreamCut]:
        """The group's positions as stream cuts."""
        return await asyncio.to_thread(self.sync.stream_cuts)

    async def initiate_checkpoint(self, name: str, timeout: float = CHECKPOINT_TIMEOUT) -> Checkpoint:
        """See :meth:`ReaderGroup.initiate_checkpoint`; waits with ``asyncio.sleep`` (no thread held)."""
        wait = self.sync.checkpoint_wait(name, timeout)
        checkpoint = await asyncio.to_thread(wait.start)
        while checkpoint is None:
            await asyncio.sleep(wait.pause())
            checkpoint = await asyncio.to_thread(wait.check)
        return checkpoint

    async def get_checkpoint(self, name: str) -> Checkpoint:
        """A checkpoint of this group."""
        return await asyncio.to_thread(self.sync.get_checkpoint, name)

    async def list_checkpoints(self) -> list[Checkpoint]:
        """This group's checkpoints, oldest first."""
        return await asyncio.to_thread(self.sync.list_checkpoints)

    async def reset_to_checkpoint(self, checkpoint: Checkpoint | str) -> None:
        """Reposition the group at a completed checkpoint (recreate the readers afterwards)."""
        await asyncio.to_thread(self.sync.reset_to_checkpoint, checkpoint)


class AsyncByteStream:
    """Awaitable :class:`~xtremehub.streams.ByteStream`."""

    def __init__(self, stream: ByteStream) -> None:
        self.sync = stream

    async def write(self, data: bytes) -> int:
        """Buffer bytes."""
        return await asyncio.to_thread(self.sync.write, data)

    async def flush(self) -> None:
        """Append the buffer durably."""
        await asyncio.to_thread(self.sync.flush)

    async def read(self, size: int = -1, *, wait: float = 0.0) -> bytes:
        """Read from the current position."""
        return await asyncio.to_thread(self.sync.read, size, wait=wait)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the read position (no I/O unless seeking from the end)."""
        return self.sync.seek(offset, whence)


class AsyncStreamManager:
    """Awaitable :class:`~xtremehub.streams.StreamManager`."""

    def __init__(self, manager: StreamManager) -> None:
        self.sync = manager

    @classmethod
    async def embedded(cls, path: str | Path, lts: str | None = None, **options: Any) -> AsyncStreamManager:
        """See :meth:`StreamManager.embedded`."""
        return cls(await asyncio.to_thread(StreamManager.embedded, path, lts, **options))

    @classmethod
    async def connect(cls, url: str) -> AsyncStreamManager:
        """Connect to a stream server (``tcp://host:port``)."""
        return cls(await asyncio.to_thread(StreamManager, url))

    async def create_scope(self, scope: str) -> bool:
        """Create a scope."""
        return await asyncio.to_thread(self.sync.create_scope, scope)

    async def create_stream(
        self,
        scope: str,
        stream: str,
        scaling_policy: ScalingPolicy | None = None,
        retention_policy: RetentionPolicy | None = None,
    ) -> bool:
        """Create a stream."""
        return await asyncio.to_thread(self.sync.create_stream, scope, stream, scaling_policy, retention_policy)

    async def get_stream(self, scope: str, stream: str) -> StreamInfo:
        """Describe a stream."""
        return await asyncio.to_thread(self.sync.get_stream, scope, stream)

    async def seal_stream(self, scope: str, stream: str) -> None:
        """Seal a stream."""
        await asyncio.to_thread(self.sync.seal_stream, scope, stream)

    async def delete_stream(self, scope: str, stream: str) -> None:
        """Delete a stream."""
        await asyncio.to_thread(self.sync.delete_stream, scope, stream)

    async def create_writer(
        self, scope: str, stream: str, *, writer_id: str | None = None, max_in_flight: int = 0
    ) -> AsyncEventStreamWriter:
        """An awaitable writer."""
        writer = await asyncio.to_thread(
            self.sync.create_writer, scope, stream, writer_id=writer_id, max_in_flight=max_in_flight
        )
        return AsyncEventStreamWriter(writer)

    async def create_transaction_writer(self, scope: str, stream: str) -> AsyncTransactionalWriter:
        """An awaitable transactional writer."""
        return AsyncTransactionalWriter(await asyncio.to_thread(self.sync.create_transaction_writer, scope, stream))

    async def create_reader_group(
        self, name: str, scope: str, streams: Sequence[str], start: Start = "head"
    ) -> AsyncReaderGroup:
        """An awaitable reader group."""
        return AsyncReaderGroup(await asyncio.to_thread(self.sync.create_reader_group, name, scope, streams, start))

    async def create_byte_stream(self, scope: str, stream: str) -> AsyncByteStream:
        """An awaitable byte stream."""
        return AsyncByteStream(await asyncio.to_thread(self.sync.create_byte_stream, scope, stream))

    async def close(self) -> None:
        """Close the manager."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncStreamManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
