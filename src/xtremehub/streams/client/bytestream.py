"""Byte streams: one segment holding an unframed byte sequence, like a growing file.

Writes are buffered and appended on :meth:`ByteStream.flush` (or when the buffer passes
``buffer_size``); an append is durable when it returns. Reads start at the current position,
can wait at the live tail, and see only flushed bytes.
"""

from __future__ import annotations

import io
import threading

from xtremehub.errors import InvalidStreamArgument
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.segmentstore.contract import SegmentStoreContract

__all__ = ["ByteStream"]


class ByteStream:
    """Write, flush, seek, read (also waiting at the tail) and truncate one byte stream."""

    def __init__(
        self,
        controller: ControllerContract,
        store: SegmentStoreContract,
        scope: str,
        stream: str,
        *,
        buffer_size: int = 1 << 20,
    ) -> None:
        self.scope, self.stream = scope, stream
        info = controller.get_stream(scope, stream)
        if len(info.active_segments) != 1 or info.config.scaling.kind != "fixed":
            raise InvalidStreamArgument(f"stream {scope}/{stream} is not a byte stream (one fixed segment)")
        self.segment = info.active_segments[0].name
        self._controller, self._store = controller, store
        self._buffer = bytearray()
        self._buffer_size = buffer_size
        self._position = store.info(self.segment).start_offset
        self._lock = threading.Lock()

    # -- writing --------------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        """Buffer ``data`` for appending at the end; returns its length."""
        with self._lock:
            self._buffer += data
            if len(self._buffer) >= self._buffer_size:
                self._flush_locked()
        return len(data)

    def flush(self) -> None:
        """Append everything buffered; durable when this returns."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._buffer:
            self._store.append(self.segment, bytes(self._buffer))
            self._buffer.clear()

    # -- reading --------------------------------------------------------------------------
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the read position (``SEEK_SET``, ``SEEK_CUR`` or ``SEEK_END`` of the flushed bytes)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.tail_offset()}.get(whence)
        if base is None:
            raise InvalidStreamArgument(f"byte stream seek: bad whence {whence}")
        if base + offset < 0:
            raise InvalidStreamArgument(f"byte stream seek: negative position {base + offset}")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        """The read position."""
        return self._position

    def read(self, size: int = -1, *, wait: float = 0.0) -> bytes:
        """Up to ``size`` bytes (all available if -1) from the read position.

        At the tail, waits up to ``wait`` seconds for new bytes (b"" when none came).
        Raises ``SegmentTruncated`` when the position is below the head.
        """
        chunks: list[bytes] = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            ask = min(wanted, 1 << 20) if wanted is not None else 1 << 20
            result = self._store.read(self.segment, self._position, ask, wait=0.0 if chunks else wait)
            if not result.data:
                break
            chunks.append(result.data)
            self._position += len(result.data)
            if wanted is not None:
                wanted -= len(result.data)
        return b"".join(chunks)

    def head_offset(self) -> int:
        """First readable offset."""
        return self._store.info(self.segment).start_offset

    def tail_offset(self) -> int:
        """Offset one past the last flushed byte."""
        return self._store.info(self.segment).length

    def truncate(self, offset: int) -> None:
        """Drop every byte before ``offset``; reads below it raise ``SegmentTruncated``."""
        if offset > self.tail_offset():
            raise InvalidStreamArgument(
                f"byte stream {self.scope}/{self.stream}: truncate at {offset} is past the tail"
            )
        self._store.truncate(self.segment, offset)

    def close(self) -> None:
        """Flush."""
        self.flush()

    def __enter__(self) -> ByteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
