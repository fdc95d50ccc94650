"""A lazily fetched window of an object's bytes, read part by part with ranged GETs fetched ahead."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from xtremehub.errors import TruncatedData
from xtremehub.storage import open_store

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from xtremehub.config import Settings

__all__ = ["AheadReader", "RangeSource", "SeekableReader"]

_PART = 4 * 1024 * 1024  # size of one ranged GET of the planned range
_PIECE = 1024 * 1024  # one read of a streamed range (stores with ``streams_ranges``)
_AHEAD = 2  # parts in flight ahead of the reader: memory stays at (1 + _AHEAD) parts
_BEHIND = 2  # parts an AheadReader keeps behind the one being read (rapidgzip seeks back)
_MORE = 16 * 1024  # first increment past the plan; doubles up to _PART while streaming on


class RangeSource:
    """Sequential reader over ``[start, ...)`` of an object that fetches on demand.

    The planned range ``[start, planned_end)`` is read in parts of 4 MiB, the next
    ``_AHEAD`` parts always being fetched in background threads while the caller
    works on the current one (so fetching overlaps decompression, and memory stays
    bounded however long the range). From a store that streams ranges (S3:
    ``streams_ranges``) it is instead one request for the whole planned range, read
    1 MiB at a time: the server sends on into the socket's buffers while the
    caller decompresses, without a thread. Reads past the plan fetch small increments,
    so a slice whose last record straddles the plan costs little extra. ``fetched``
    counts the bytes requested; ``settings`` are the storage settings to read with
    (default: this process's). :meth:`close` drops what is still in flight.

    Example:
        >>> from xtremehub import storage
        >>> _ = storage.put("mem://rs/x", bytes(range(256)) * 100)
        >>> src = RangeSource("mem://rs/x", 25600, 10, 20)
        >>> len(src.read()), len(src.read()), src.fetched
        (10, 16384, 16394)
    """

    def __init__(self, url: str, size: int, start: int, planned_end: int, *, settings: Settings | None = None) -> None:
        self.url, self.size = url, size
        self.pos = start
        self._planned_end = min(max(planned_end, start), size)
        self._store, self._key = open_store(url, settings)
        self.fetched = 0
        self._more = _MORE
        self._ahead: deque[tuple[int, int, Future[bytes]]] = deque()  # (start, end, part) in order from pos
        self._next = start  # where the next part to request starts
        self._pool: ThreadPoolExecutor | None = None
        self._stream: Generator[bytes, None, None] | None = None  # the planned range from pos, streamed

    def read(self) -> bytes:
        """The next block of bytes, or ``b""`` at the end of the object."""
        if self.pos >= self.size:
            return b""
        if self.pos < self._planned_end and self._store.streams_ranges:
            data = self._streamed()
        elif self.pos < self._planned_end:
            self._request()
            start, end, part = self._ahead.popleft()
            data = part.result()
            if len(data) != end - start:  # the object is shorter than its size said: changed or cut
                self._drop()
                raise TruncatedData(
                    self.url, start + len(data), f"object ends before byte {end} (expected {self.size} bytes)", "object"
                )
            self._request()
        else:
            end = min(self.size, self.pos + self._more)
            self._more = min(2 * self._more, _PART)
            data = self._store.get_range(self._key, self.pos, end)
            self.fetched += len(data)
        self.pos += len(data)
        self._next = max(self._next, self.pos)
        return data

    def _streamed(self) -> bytes:
        """The next piece of the planned range, from one streamed request."""
        if self._stream is None:
            self._stream = self._store.iter_range(self._key, self.pos, self._planned_end, piece=_PIECE)
            self.fetched += self._planned_end - self.pos
        try:
            data = next(self._stream, b"")
        except BaseException:
            self._stream = None  # a dead stream: the next read asks again from ``pos``
            raise
        if not data:  # the object is shorter than its size said: changed or cut
            self._drop()
            raise TruncatedData(
                self.url, self.pos, f"object ends before byte {self._planned_end} (size said {self.size})", "object"
            )
        if self.pos + len(data) >= self._planned_end:
            self._drop()  # all read: the request is done
        return data

    def _request(self) -> None:
        """Keep ``_AHEAD`` parts of the plan (at least the one at ``pos``) in flight."""
        while len(self._ahead) < max(1, _AHEAD) and self._next < self._planned_end:
            start, end = self._next, min(self._next + _PART, self._planned_end)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_AHEAD, thread_name_prefix="xhub-range-ahead")
            self._ahead.append((start, end, self._pool.submit(self._store.get_range, self._key, start, end)))
            self.fetched += end - start
            self._next = end

    def seek(self, pos: int) -> None:
        """Continue reading at ``pos`` (bytes already fetched past it are fetched again)."""
        if pos != self.pos:
            self._drop()
            self._next = pos
        self.pos = pos

    def peek(self, pos: int, n: int) -> bytes:
        """``n`` bytes at ``pos`` without moving (one small ranged GET)."""
        if pos >= self.size:
            return b""
        data = self._store.get_range(self._key, pos, min(self.size, pos + n))
        self.fetched += len(data)
        return data

    def _drop(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        for _, _, part in self._ahead:
            part.cancel()
        self._ahead.clear()

    def close(self) -> None:
        """Stop fetching ahead (parts already on the wire finish in the background)."""
        self._drop()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


class SeekableReader(io.RawIOBase):
    """The position half of a read-only file object over ``size`` bytes: subclasses read at
    ``_pos`` in ``readinto`` (a seek only moves the position; past the end reads nothing).

    Example:
        >>> fh = SeekableReader(10)
        >>> fh.seek(-3, io.SEEK_END), fh.seek(1, io.SEEK_CUR), fh.tell()
        (7, 8, 8)
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos


class AheadReader(SeekableReader):
    """A read-only, seekable file object over a whole object, fetched ahead part by part.

    For a library that wants a file (rapidgzip): the object is read in aligned parts of
    4 MiB, each fetched once by one ranged GET. The parts after the one being read are
    fetched in the background (:data:`_AHEAD` of them), and the last :data:`_BEHIND`
    parts are kept, because rapidgzip seeks back a little all the time (its block
    finder re-reads up to a few MiB behind where it decodes): a seek into a kept or
    requested part costs nothing, only one elsewhere fetches. So memory stays at
    ``1 + _AHEAD + _BEHIND`` parts and a sequential consumer fetches each byte once
    (``fetched`` counts the bytes requested). From a store that streams ranges (S3:
    ``streams_ranges``) the parts come instead, in order, from one request to the end
    of the object, read a part at a time when needed (the server sends on into the
    socket's buffers meanwhile; a thread would not help, since rapidgzip holds the
    GIL while it decodes); a part off that order is one ranged GET.

    Example:
        >>> from xtremehub import storage
        >>> _ = storage.put("mem://rs/y", b"0123456789")
        >>> with AheadReader("mem://rs/y", 10) as fh:
        ...     _ = fh.seek(3)
        ...     fh.read(4), fh.tell(), fh.seek(1), fh.read(2), fh.fetched
        (b'3456', 7, 1, b'12', 10)
    """

    def __init__(self, url: str, size: int, *, settings: Settings | None = None, part: int = _PART) -> None:
        super().__init__(size)
        self.url, self._part = url, part
        self._store, self._key = open_store(url, settings)
        self._parts: dict[int, Future[bytes]] = {}  # part number -> its bytes
        self._pool: ThreadPoolExecutor | None = None
        self._front = 0  # the furthest part read (unless the reader jumped back further than _BEHIND)
        self.fetched = 0
        self._stream: Generator[bytes, None, None] | None = None  # parts from _stream_next on, streamed
        self._stream_next = 0

    def _streamed(self, k: int) -> Future[bytes]:
        """Part ``k`` read from the stream (started, or restarted, at ``k`` unless it is next there)."""
        start = k * self._part
        if self._stream is None or k != self._stream_next:
            if self._stream is not None:
                self._stream.close()
            self._stream = self._store.iter_range(self._key, start, self._size, piece=self._part)
        try:
            data = next(self._stream, b"")
        except BaseException:
            self._stream = None  # a dead stream: the next read of part ``k`` asks again
            raise
        self._stream_next = k + 1
        self.fetched += len(data)
        part = self._parts[k] = Future()
        part.set_result(data)
        return part

    def _fetch(self, k: int) -> Future[bytes]:
        if (part := self._parts.get(k)) is None and self._store.streams_ranges:
            return self._streamed(k)
        if part is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_AHEAD, thread_name_prefix="xhub-ahead-reader")
            start, end = k * self._part, min(self._size, (k + 1) * self._part)
            part = self._parts[k] = self._pool.submit(self._store.get_range, self._key, start, end)
            self.fetched += end - start
        return part

    def readinto(self, b: WriteableBuffer) -> int:
        view = memoryview(b).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        k, at = divmod(self._pos, self._part)
        last = (self._size - 1) // self._part
        # the window follows the furthest part read: reading back a little keeps what lies ahead
        front = k if k > self._front or k < self._front - _BEHIND else self._front
        self._front = front
        for stale in [j for j in self._parts if not front - _BEHIND <= j <= front + _AHEAD]:
            self._parts.pop(stale).cancel()
        data = self._fetch(k).result()
        for j in range(front + 1, min(last, front + _AHEAD) + 1) if not self._store.streams_ranges else ():
            self._fetch(j)
        expected = min(self._size, (k + 1) * self._part) - k * self._part
        if len(data) != expected:  # the object is shorter than its size said: changed or cut
            raise TruncatedData(
                self.url, k * self._part + len(data), f"object ends early (expected {self._size} bytes)", "object"
            )
        n = min(len(view), len(data) - at)
        view[:n] = memoryview(data)[at : at + n]
        self._pos += n
        return n

    def close(self) -> None:
        """Stop fetching (parts already on the wire finish in the background)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        for part in self._parts.values():
            part.cancel()
        self._parts.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        super().close()
