"""Lithops-style partitioning of plain objects: ``map(func, "s3://bucket/prefix/")``.

Each object under the URLs is cut into byte ranges by ``obj_chunk_size`` or
``obj_chunk_number``. Ranges are nominal; on the worker, :class:`ObjectPart`
aligns them to ``obj_newline`` so that every line belongs to exactly one part:
the part whose nominal range holds the line's first byte.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from xtremehub.config import Settings
from xtremehub.errors import ConfigError, ObjectNotFound
from xtremehub.storage import ObjectInfo, open_store
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess
from xtremehub.storage.base import Store

__all__ = ["ObjectPart", "partition_objects"]

_SCAN = 64 * 1024


@dataclass(frozen=True)
class ObjectPart:
    """One partition of one object, as the mapped function receives it (``obj``).

    Only the URL and ranges travel to the worker; the store is resolved there
    from the worker's configuration.

    Attributes:
        url: the object URL; ``key`` and ``bucket`` are derived from it.
        part: index of this part within the object; ``total_parts`` how many there are.
        data_byte_range: nominal ``(first, last)`` byte, inclusive, as in Lithops.
        size: size of the whole object.
        newline: the record delimiter the part is aligned to (``None``: no alignment).
        chunk_size: the nominal size of the parts of this object (Lithops's ``chunk_size``).
        access: the settings the part is read with (travelling without credentials; see
            :class:`~xtremehub.storage.access.StoreAccess`); by default the reading process's.
    """

    url: str
    part: int
    total_parts: int
    data_byte_range: tuple[int, int]
    size: int
    newline: bytes | None = b"\n"
    chunk_size: int | None = None
    access: StoreAccess = PROCESS_DEFAULTS

    @property
    def key(self) -> str:
        return _split(self.url)[1]

    @property
    def bucket(self) -> str:
        return _split(self.url)[0]

    @cached_property
    def _store(self) -> tuple[Store, str]:
        return self.access.open(self.url)

    @cached_property
    def aligned_range(self) -> tuple[int, int]:
        """The half-open ``[start, end)`` range actually read, after newline alignment."""
        start, end = self.data_byte_range[0], self.data_byte_range[1] + 1
        if self.newline is None or (start == 0 and end >= self.size):
            return start, min(end, self.size)
        store, key = self._store
        if start > 0:
            start = self._line_start_at_or_after(store, key, start)
        if end < self.size:
            end = self._line_start_at_or_after(store, key, end)
        return start, max(start, end)

    def _line_start_at_or_after(self, store: Store, key: str, pos: int) -> int:
        """First offset >= pos where a line starts (right after a delimiter), or the size."""
        assert self.newline is not None
        delim = self.newline
        probe = pos - len(delim)
        while probe < self.size:
            block = store.get_range(key, max(0, probe), min(self.size, probe + _SCAN))
            found = block.find(delim)
            if found >= 0:
                return max(0, probe) + found + len(delim)
            probe += max(1, len(block) - len(delim) + 1)
        return self.size

    @property
    def data_stream(self) -> io.BufferedReader:
        """A file object over this part's (aligned) bytes, fetched with range reads."""
        store, key = self._store
        start, end = self.aligned_range
        return io.BufferedReader(_BoundedReader(store, key, start, end), buffer_size=4 * 1024 * 1024)

    def read(self) -> bytes:
        """All of this part's bytes at once."""
        store, key = self._store
        start, end = self.aligned_range
        return store.get_range(key, start, end) if end > start else b""


class _BoundedReader(io.RawIOBase):
    def __init__(self, store: Store, key: str, start: int, end: int) -> None:
        super().__init__()
        self._store, self._key, self._pos, self._end = store, key, start, end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._end - self._pos)
        if want <= 0:
            return 0
        data = self._store.get_range(self._key, self._pos, self._pos + want)
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _split(url: str) -> tuple[str, str]:
    from xtremehub.storage import split_url

    scheme, location, key = split_url(url)
    return (location, key) if scheme != "file" else ("", "/" + key)


def _expand(urls: Iterable[str], settings: Settings) -> Iterator[ObjectInfo]:
    for url in urls:
        store, key = open_store(url, settings)
        if url.endswith("/") or not key:
            prefix = key + "/" if key and not key.endswith("/") else key
            found = list(store.list(prefix))
            if not found:
                raise ObjectNotFound(url, "no objects under this prefix")
            yield from found
            continue
        try:
            yield store.head(key)
        except ObjectNotFound:
            # a local directory or an S3 "directory" given without the trailing slash
            found = list(store.list(key.rstrip("/") + "/"))
            if not found:
                raise
            yield from found


def partition_objects(
    urls: Iterable[str],
    *,
    settings: Settings,
    chunk_size: int | None = None,
    chunk_number: int | None = None,
    newline: str | bytes | None = "\n",
) -> list[ObjectPart]:
    """Cut every object under ``urls`` into parts (nothing is read but listings and heads).

    Example:
        >>> from xtremehub import storage
        >>> _ = storage.put("mem://parts/a.txt", b"one\\ntwo\\nthree\\n")
        >>> parts = partition_objects(["mem://parts/a.txt"], settings=Settings(), chunk_number=2)
        >>> [p.read() for p in parts]
        [b'one\\ntwo\\n', b'three\\n']
    """
    if chunk_size is not None and chunk_number is not None:
        raise ConfigError("give obj_chunk_size or obj_chunk_number, not both")
    if (chunk_size is not None and chunk_size < 1) or (chunk_number is not None and chunk_number < 1):
        raise ConfigError("obj_chunk_size and obj_chunk_number must be >= 1")
    delim = newline.encode() if isinstance(newline, str) else newline
    if delim == b"":
        raise ConfigError("obj_newline must not be empty (use None for no alignment)")
    parts: list[ObjectPart] = []
    for info in _expand(urls, settings):
        if chunk_size is not None:
            step = chunk_size
        elif chunk_number is not None:
            step = max(1, math.ceil(info.size / chunk_number))
        else:
            step = max(1, info.size)
        starts = list(range(0, info.size, step)) or [0]
        for i, start in enumerate(starts):
            last = min(info.size, start + step) - 1
            parts.append(ObjectPart(info.url, i, len(starts), (start, max(start, last)), info.size, delim, step))
    return parts
