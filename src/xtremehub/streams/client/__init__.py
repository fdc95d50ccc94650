"""The stream client: writers, transactions, reader groups, byte streams, and the manager."""

from xtremehub.streams.client.bytestream import ByteStream
from xtremehub.streams.client.manager import StreamManager
from xtremehub.streams.client.reader import EventPosition, EventRead, EventStreamReader, ReaderGroup, SegmentSlice
from xtremehub.streams.client.transactions import Transaction, TransactionalEventStreamWriter
from xtremehub.streams.client.writer import EventPointer, EventStreamWriter, WriterConfig

__all__ = [
    "ByteStream",
    "EventPointer",
    "EventPosition",
    "EventRead",
    "EventStreamReader",
    "EventStreamWriter",
    "ReaderGroup",
    "SegmentSlice",
    "StreamManager",
    "Transaction",
    "TransactionalEventStreamWriter",
    "WriterConfig",
]
