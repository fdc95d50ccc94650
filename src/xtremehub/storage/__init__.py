"""URL-addressed object storage: local directories (default), S3-compatible stores, memory.

Every function takes a URL (``/path``, ``file:///path``, ``s3://bucket/key``,
``mem://bucket/key``) and optional :class:`~xtremehub.config.Settings`.

Example:
    >>> from xtremehub import storage
    >>> storage.put("mem://storage-doc/greeting.txt", b"hello extreme data")
    ObjectInfo(url='mem://storage-doc/greeting.txt', key='greeting.txt', size=18, ...)
    >>> storage.get_ranges("mem://storage-doc/greeting.txt", [(0, 5), (6, 13)])
    [b'hello', b'extreme']
    >>> [info.url for info in storage.list("mem://storage-doc/")]
    ['mem://storage-doc/greeting.txt']
"""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator, Sequence

from xtremehub.config import Settings
from xtremehub.storage.base import ByteRange, ObjectInfo, PutSource, RangeReader, Store
from xtremehub.storage.registry import known_schemes, open_store, register_store, split_url

__all__ = [
    "ByteRange",
    "ObjectInfo",
    "PutSource",
    "RangeReader",
    "Store",
    "copy",
    "delete",
    "exists",
    "get",
    "get_range",
    "get_ranges",
    "head",
    "known_schemes",
    "list",
    "open",
    "open_store",
    "put",
    "register_store",
    "split_url",
]

URL = str | os.PathLike[str]


def get(url: URL, *, settings: Settings | None = None) -> bytes:
    """The whole object at ``url``."""
    store, key = open_store(url, settings)
    return store.get(key)


def get_range(url: URL, start: int, end: int, *, settings: Settings | None = None) -> bytes:
    """Bytes ``[start, end)`` of the object (``end`` clipped to its size)."""
    store, key = open_store(url, settings)
    return store.get_range(key, start, end)


def get_ranges(
    url: URL, ranges: Sequence[ByteRange | tuple[int, int]], *, settings: Settings | None = None
) -> builtins.list[bytes]:  # plain ``list`` is this module's function
    """Many byte ranges of one object, fetched concurrently, in input order."""
    store, key = open_store(url, settings)
    return store.get_ranges(key, ranges)


def put(url: URL, data: PutSource, *, settings: Settings | None = None) -> ObjectInfo:
    """Write bytes, a binary file object or an iterable of chunks to ``url``."""
    store, key = open_store(url, settings)
    return store.put(key, data)


def head(url: URL, *, settings: Settings | None = None) -> ObjectInfo:
    """Size, etag and modification time of the object."""
    store, key = open_store(url, settings)
    return store.head(key)


def exists(url: URL, *, settings: Settings | None = None) -> bool:
    store, key = open_store(url, settings)
    return store.exists(key)


def delete(url: URL, *, settings: Settings | None = None) -> None:
    store, key = open_store(url, settings)
    store.delete(key)


def list(prefix_url: URL, *, settings: Settings | None = None) -> Iterator[ObjectInfo]:
    """Objects under a URL prefix, lazily (``s3://bucket/dir/``, ``/data/dir/``)."""
    store, prefix = open_store(prefix_url, settings)
    if str(prefix_url).endswith("/") and prefix and not prefix.endswith("/"):
        prefix += "/"
    return store.list(prefix)


def copy(src_url: URL, dst_url: URL, *, settings: Settings | None = None) -> ObjectInfo:
    """Copy an object; server-side within one store, streamed across stores."""
    src, src_key = open_store(src_url, settings)
    dst, dst_key = open_store(dst_url, settings)
    if src == dst:
        return src.copy(src_key, dst_key)
    with src.open(src_key) as fh:
        return dst.put(dst_key, fh)


def open(url: URL, *, block_size: int = 4 * 1024 * 1024, settings: Settings | None = None) -> io.BufferedReader:
    """A read-only, seekable file object backed by range reads."""
    store, key = open_store(url, settings)
    return store.open(key, block_size=block_size)
