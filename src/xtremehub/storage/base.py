"""The object-store contract every backend implements, and the values it speaks in.

A :class:`Store` is one namespace of keys: a bucket on S3, a directory tree on
local disk, a named in-memory bucket. Backends implement a handful of primitive
operations; everything else (``exists``, ``get_ranges``, ``open``) is derived here
so that each backend stays small and all of them behave the same.

Byte ranges are half-open ``[start, end)``. A range that starts past the end of
the object raises :class:`~xtremehub.errors.InvalidRange`; a range that ends
past it is clipped (as HTTP range requests are).
"""

from __future__ import annotations

import builtins
import io
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, ClassVar

from xtremehub.errors import InvalidRange
from xtremehub.storage.iostats import counted

__all__ = ["ByteRange", "ObjectInfo", "PutSource", "RangeReader", "Store"]

#: What :meth:`Store.put` accepts: bytes, a binary file object, or an iterable of chunks.
PutSource = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A half-open byte range ``[start, end)``.

    Example:
        >>> ByteRange(0, 10).length
        10
        >>> ByteRange(5, 3)
        Traceback (most recent call last):
        ...
        ValueError: invalid byte range [5, 3): need 0 <= start <= end
    """

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start <= self.end):
            raise ValueError(f"invalid byte range [{self.start}, {self.end}): need 0 <= start <= end")

    @property
    def length(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"bytes [{self.start}, {self.end})"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``head`` and ``list`` say about an object.

    ``etag`` identifies the content version (an S3 ETag, or size+mtime for files);
    connectors use ``(size, etag)`` to notice that an object changed.
    """

    url: str
    key: str
    size: int
    etag: str | None = None
    mtime: datetime | None = None


class Store(ABC):
    """One key namespace in an object store.

    Subclasses implement the abstract primitives; ``url(key)`` gives the URL a
    user would type for a key. All methods are thread-safe.
    """

    #: Concurrency used by :meth:`get_ranges`.
    max_concurrency: int = 16
    #: Whether :meth:`iter_range` streams a range with one request (else one request per piece).
    streams_ranges: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The one place where every store's traffic is counted (task telemetry).
        super().__init_subclass__(**kwargs)
        for name, kind in (("get", "read"), ("_get_range", "read"), ("put", "write"), ("copy", "copy")):
            if name in cls.__dict__:
                setattr(cls, name, counted(cls.__dict__[name], kind))

    @abstractmethod
    def url(self, key: str) -> str:
        """The URL of ``key`` in this store (``s3://bucket/key``, ``/abs/path``, ``mem://b/k``)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object."""

    @abstractmethod
    def _get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; may return fewer bytes if the object is shorter.

        Must raise :class:`InvalidRange` when ``start`` is past the end.
        """

    @abstractmethod
    def put(self, key: str, data: PutSource) -> ObjectInfo:
        """Write an object (atomically replacing any previous one) and return its info."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Size, etag and modification time of an object."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, lazily, in key order per page."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing object raises :class:`ObjectNotFound`."""

    def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy an object within this store (backends override with a server-side copy)."""
        return self.put(dst, self.get(src))

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
        from xtremehub.errors import ObjectNotFound

        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object (``end`` past the size is clipped).

        Example:
            >>> from xtremehub.storage import open_store
            >>> store, key = open_store("mem://doc/hello.txt")
            >>> _ = store.put(key, b"hello world")
            >>> store.get_range(key, 6, 100)
            b'world'
        """
        rng = ByteRange(start, end)
        if rng.length == 0:
            if start > 0 and start > self.head(key).size:
                raise InvalidRange(self.url(key), f"{rng} starts past the end of the object")
            return b""
        return self._get_range(key, rng.start, rng.end)

    def iter_range(self, key: str, start: int, end: int, *, piece: int = 1 << 20) -> Generator[bytes, None, None]:
        """Bytes ``[start, end)`` of an object as consecutive pieces of ``piece`` bytes (the last may
        be shorter).

        Ends early (fewer bytes in all) if the object is shorter. This default fetches
        one ranged GET per piece; a store that can stream (``streams_ranges``, S3) sends
        one request for the whole range and reads its body piece by piece, so memory
        stays at one piece (plus the socket's buffers) and the server answers once.
        Close the iterator to stop early.

        Example:
            >>> from xtremehub.storage import open_store
            >>> store, key = open_store("mem://doc/pieces.txt")
            >>> _ = store.put(key, b"hello world")
            >>> list(store.iter_range(key, 2, 100, piece=4))
            [b'llo ', b'worl', b'd']
        """
        for at in range(start, end, piece):
            data = self.get_range(key, at, min(end, at + piece))
            if data:
                yield data
            if len(data) < min(end, at + piece) - at:
                return

    def get_ranges(self, key: str, ranges: Sequence[ByteRange | tuple[int, int]]) -> builtins.list[bytes]:
        """Many ranges of one object at once, fetched concurrently; results in input order."""
        norm = [r if isinstance(r, ByteRange) else ByteRange(*r) for r in ranges]
        if len(norm) <= 1:
            return [self.get_range(key, r.start, r.end) for r in norm]
        with ThreadPoolExecutor(min(self.max_concurrency, len(norm)), thread_name_prefix="xhub-ranges") as pool:
            return list(pool.map(lambda r: self.get_range(key, r.start, r.end), norm))

    def open(self, key: str, *, block_size: int = 4 * 1024 * 1024, size: int | None = None) -> io.BufferedReader:
        """A read-only, seekable binary file object backed by range reads.

        Example:
            >>> from xtremehub.storage import open_store
            >>> store, key = open_store("mem://doc/abc")
            >>> _ = store.put(key, b"abcdef")
            >>> with store.open(key) as fh:
            ...     _ = fh.seek(2)
            ...     fh.read(3)
            b'cde'
        """
        raw = RangeReader(self, key, size=size)
        return io.BufferedReader(raw, buffer_size=block_size)


class RangeReader(io.RawIOBase):
    """Raw, seekable reader over an object; each ``readinto`` is one ranged GET.

    Wrap it in :class:`io.BufferedReader` (``Store.open`` does) so small reads
    are served from a buffer. Usable by C libraries that take Python file objects.
    """

    def __init__(self, store: Store, key: str, *, size: int | None = None) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._size = store.head(key).size if size is None else size
        self._pos = 0
        self.name = store.url(key)

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"{self.name}: negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file")
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._store.get_range(self._key, self._pos, self._pos + want)
        n = len(data)
        memoryview(buffer)[:n] = data
        self._pos += n
        return n

    def readall(self) -> bytes:
        if self._pos >= self._size:
            return b""
        data = self._store.get_range(self._key, self._pos, self._size)
        self._pos += len(data)
        return data
