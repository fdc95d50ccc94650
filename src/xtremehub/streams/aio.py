"""The asyncio variant of the stream client: the same API, every blocking call awaited.

Each async class mirrors one synchronous client class (``AsyncStreamManager`` mirrors
:class:`~xtremehub.streams.StreamManager`, and so on) and is generated from it by one
mechanism, :func:`awaited`: ``create_scope = awaited(StreamManager.create_scope)`` is a
coroutine method with the synchronous method's signature and docstring that runs it in a
worker thread (``asyncio.to_thread``), so the event loop never blocks on an fsync or a wait
at the tail; durability and ordering are the synchronous client's. Results that are client
objects come back wrapped in their async twin (``awaited(..., wrap=AsyncReaderGroup)``).
``tests/streams/test_streams_aio.py`` fails when a public synchronous method has no twin.

Hand-written are only the calls whose waiting differs: :meth:`AsyncEventStreamWriter.write_event`
awaits the durability future without holding a thread, :meth:`AsyncReaderGroup.initiate_checkpoint`
pauses with ``asyncio.sleep``, the constructors are class methods, properties and the
in-memory :meth:`AsyncByteStream.seek` / :meth:`AsyncByteStream.tell` stay synchronous.

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
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, overload

from xtremehub.streams.client.bytestream import ByteStream
from xtremehub.streams.client.manager import StreamManager
from xtremehub.streams.client.reader import CHECKPOINT_TIMEOUT, EventStreamReader, ReaderGroup
from xtremehub.streams.client.transactions import Transaction, TransactionalEventStreamWriter
from xtremehub.streams.client.writer import EventPointer, EventStreamWriter
from xtremehub.streams.controller.model import Checkpoint

__all__ = [
    "MIRRORS",
    "AsyncByteStream",
    "AsyncEventStreamReader",
    "AsyncEventStreamWriter",
    "AsyncMirror",
    "AsyncReaderGroup",
    "AsyncStreamManager",
    "AsyncTransaction",
    "AsyncTransactionalWriter",
    "awaited",
]

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W")

#: Every async class by the synchronous class it mirrors (filled by :class:`AsyncMirror`).
MIRRORS: dict[type, type[AsyncMirror[Any]]] = {}


class AsyncMirror(Generic[S]):
    """Base of the async classes: holds the synchronous object as ``sync``.

    A subclass names what it mirrors, ``class AsyncX(AsyncMirror[X], mirrors=X)``, and lists
    in ``sync_twins`` the public names it deliberately keeps synchronous (no I/O).
    """

    mirrors: ClassVar[type]
    sync_twins: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, sync: S) -> None:
        self.sync = sync

    def __init_subclass__(cls, *, mirrors: type | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if mirrors is not None:  # a user's subclass of an async class mirrors what its base does
            cls.mirrors = mirrors
            MIRRORS[mirrors] = cls

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync!r})"


@overload
def awaited(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[AsyncMirror[S], P], Coroutine[Any, Any, R]]: ...


@overload
def awaited(
    method: Callable[Concatenate[S, P], R], wrap: Callable[[R], W]
) -> Callable[Concatenate[AsyncMirror[S], P], Coroutine[Any, Any, W]]: ...


def awaited(method: Callable[..., Any], wrap: Callable[[Any], Any] | None = None) -> Callable[..., Any]:
    """The coroutine twin of a synchronous method: runs it on ``self.sync`` in a worker thread.

    Keeps the method's name, docstring and signature (``inspect.signature`` follows
    ``__wrapped__``); ``wrap`` turns the result into its async twin.

    Example:
        >>> import asyncio, inspect
        >>> class Counter:
        ...     def add(self, n: int) -> int:
        ...         '''Add n.'''
        ...         return n + 1
        >>> class AsyncCounter(AsyncMirror[Counter], mirrors=Counter):
        ...     add = awaited(Counter.add)
        >>> asyncio.run(AsyncCounter(Counter()).add(41))
        42
        >>> AsyncCounter.add.__doc__, list(inspect.signature(AsyncCounter(Counter()).add).parameters)
        ('Add n.', ['n'])
    """

    @functools.wraps(method)
    async def call(self: AsyncMirror[Any], /, *args: Any, **kwargs: Any) -> Any:
        result = await asyncio.to_thread(method, self.sync, *args, **kwargs)
        return result if wrap is None else wrap(result)

    return call


class AsyncEventStreamWriter(AsyncMirror[EventStreamWriter], mirrors=EventStreamWriter):
    """Awaitable :class:`~xtremehub.streams.EventStreamWriter`."""

    sync_twins = frozenset({"next_event_number"})

    async def write_event(self, data: bytes, routing_key: str | None = None) -> EventPointer:
        """Write one event and wait until it is durable (the wait holds no thread)."""
        future = await asyncio.to_thread(self.sync.write_event, data, routing_key)
        return await asyncio.wrap_future(future)

    @property
    def next_event_number(self) -> int:
        """See :attr:`EventStreamWriter.next_event_number`."""
        return self.sync.next_event_number

    flush = awaited(EventStreamWriter.flush)
    close = awaited(EventStreamWriter.close)

    async def __aenter__(self) -> AsyncEventStreamWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncTransaction(AsyncMirror[Transaction], mirrors=Transaction):
    """Awaitable :class:`~xtremehub.streams.Transaction`."""

    sync_twins = frozenset({"txn_id"})

    @property
    def txn_id(self) -> str:
        """The transaction's id."""
        return self.sync.txn_id

    state = awaited(Transaction.state)
    write_event = awaited(Transaction.write_event)
    flush = awaited(Transaction.flush)
    ping = awaited(Transaction.ping)
    commit = awaited(Transaction.commit)
    abort = awaited(Transaction.abort)


class AsyncTransactionalWriter(AsyncMirror[TransactionalEventStreamWriter], mirrors=TransactionalEventStreamWriter):
    """Awaitable :class:`~xtremehub.streams.TransactionalEventStreamWriter`."""

    begin_txn = awaited(TransactionalEventStreamWriter.begin_txn, AsyncTransaction)
    get_txn = awaited(TransactionalEventStreamWriter.get_txn, AsyncTransaction)


class AsyncEventStreamReader(AsyncMirror[EventStreamReader], mirrors=EventStreamReader):
    """Awaitable :class:`~xtremehub.streams.EventStreamReader`."""

    sync_twins = frozenset({"segments"})

    @property
    def segments(self) -> list[str]:
        """Segments this reader owns now."""
        return self.sync.segments

    positions = awaited(EventStreamReader.positions)
    read_next = awaited(EventStreamReader.read_next)
    get_segment_slice = awaited(EventStreamReader.get_segment_slice)
    reader_offline = awaited(EventStreamReader.reader_offline)
    close = awaited(EventStreamReader.close)

    async def __aenter__(self) -> AsyncEventStreamReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader_offline()


class AsyncReaderGroup(AsyncMirror[ReaderGroup], mirrors=ReaderGroup):
    """Awaitable :class:`~xtremehub.streams.ReaderGroup`."""

    create_reader = awaited(ReaderGroup.create_reader, AsyncEventStreamReader)
    reader_offline = awaited(ReaderGroup.reader_offline)
    state = awaited(ReaderGroup.state)
    is_fully_read = awaited(ReaderGroup.is_fully_read)
    stream_cuts = awaited(ReaderGroup.stream_cuts)
    checkpoint_wait = awaited(ReaderGroup.checkpoint_wait)
    get_checkpoint = awaited(ReaderGroup.get_checkpoint)
    list_checkpoints = awaited(ReaderGroup.list_checkpoints)
    delete_checkpoint = awaited(ReaderGroup.delete_checkpoint)
    reset_to_checkpoint = awaited(ReaderGroup.reset_to_checkpoint)
    delete = awaited(ReaderGroup.delete)

    async def initiate_checkpoint(self, name: str, timeout: float = CHECKPOINT_TIMEOUT) -> Checkpoint:
        """See :meth:`ReaderGroup.initiate_checkpoint`; waits with ``asyncio.sleep`` (no thread held)."""
        wait = await self.checkpoint_wait(name, timeout)
        checkpoint = await asyncio.to_thread(wait.start)
        while checkpoint is None:
            await asyncio.sleep(wait.pause())
            checkpoint = await asyncio.to_thread(wait.check)
        return checkpoint


class AsyncByteStream(AsyncMirror[ByteStream], mirrors=ByteStream):
    """Awaitable :class:`~xtremehub.streams.ByteStream`."""

    sync_twins = frozenset({"seek", "tell"})

    write = awaited(ByteStream.write)
    flush = awaited(ByteStream.flush)
    read = awaited(ByteStream.read)
    head_offset = awaited(ByteStream.head_offset)
    tail_offset = awaited(ByteStream.tail_offset)
    truncate = awaited(ByteStream.truncate)
    close = awaited(ByteStream.close)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the read position (no I/O unless seeking from the end)."""
        return self.sync.seek(offset, whence)

    def tell(self) -> int:
        """The read position."""
        return self.sync.tell()

    async def __aenter__(self) -> AsyncByteStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncStreamManager(AsyncMirror[StreamManager], mirrors=StreamManager):
    """Awaitable :class:`~xtremehub.streams.StreamManager`."""

    @classmethod
    async def embedded(cls, path: str | Path, lts: str | None = None, **options: Any) -> AsyncStreamManager:
        """See :meth:`StreamManager.embedded`."""
        return cls(await asyncio.to_thread(StreamManager.embedded, path, lts, **options))

    @classmethod
    async def connect(cls, url: str, **options: Any) -> AsyncStreamManager:
        """Connect to a stream server (``tcp://host:port``); ``options`` as :class:`StreamManager`'s
        (``token=``, ``tls_ca=``, ``purpose=``)."""
        return cls(await asyncio.to_thread(functools.partial(StreamManager, url, **options)))

    @property
    def keys_source(self) -> str | None:
        """See :attr:`StreamManager.keys_source`."""
        return self.sync.keys_source

    keys = awaited(StreamManager.keys)
    create_scope = awaited(StreamManager.create_scope)
    delete_scope = awaited(StreamManager.delete_scope)
    list_scopes = awaited(StreamManager.list_scopes)
    create_stream = awaited(StreamManager.create_stream)
    update_stream = awaited(StreamManager.update_stream)
    list_streams = awaited(StreamManager.list_streams)
    get_stream = awaited(StreamManager.get_stream)
    seal_stream = awaited(StreamManager.seal_stream)
    delete_stream = awaited(StreamManager.delete_stream)
    get_head_cut = awaited(StreamManager.get_head_cut)
    get_tail_cut = awaited(StreamManager.get_tail_cut)
    truncate_stream = awaited(StreamManager.truncate_stream)
    create_writer = awaited(StreamManager.create_writer, AsyncEventStreamWriter)
    create_transaction_writer = awaited(StreamManager.create_transaction_writer, AsyncTransactionalWriter)
    create_reader_group = awaited(StreamManager.create_reader_group, AsyncReaderGroup)
    get_reader_group = awaited(StreamManager.get_reader_group, AsyncReaderGroup)
    list_reader_groups = awaited(StreamManager.list_reader_groups)
    delete_reader_group = awaited(StreamManager.delete_reader_group)
    create_byte_stream = awaited(StreamManager.create_byte_stream, AsyncByteStream)
    close = awaited(StreamManager.close)

    async def __aenter__(self) -> AsyncStreamManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
