"""In-memory store (``mem://bucket/key``): for tests and small pipelines.

All ``MemoryStore`` objects with the same bucket name in one process share
their data. Worker processes started by fork see a snapshot taken at fork
time, so use a local directory or S3 to pass data between processes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from xtremehub.errors import BucketNotFound, InvalidRange, ObjectNotFound
from xtremehub.storage.base import ObjectInfo, PutSource, Store
from xtremehub.storage.chunks import iter_chunks

__all__ = ["MemoryStore"]

_BUCKETS: dict[str, dict[str, tuple[bytes, str, datetime]]] = {}
_LOCK = threading.Lock()


class MemoryStore(Store):
    """A named bucket held in this process's memory.

    Example:
        >>> store = MemoryStore("demo")
        >>> store.put("k", b"value").etag
        '2063c1608d6e0baf80249c42e2be5804'
    """

    max_concurrency = 4

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def __repr__(self) -> str:
        return f"MemoryStore({self.bucket!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryStore) and other.bucket == self.bucket

    def __hash__(self) -> int:
        return hash(("mem", self.bucket))

    def url(self, key: str) -> str:
        return f"mem://{self.bucket}/{key}"

    def create_bucket(self) -> None:
        """Create the bucket (idempotent); ``put`` also creates it."""
        with _LOCK:
            _BUCKETS.setdefault(self.bucket, {})

    def _objects(self, key: str = "") -> dict[str, tuple[bytes, str, datetime]]:
        objects = _BUCKETS.get(self.bucket)
        if objects is None:
            raise BucketNotFound(self.url(key), f"bucket {self.bucket!r} not found")
        return objects

    def _entry(self, key: str) -> tuple[bytes, str, datetime]:
        try:
            return self._objects(key)[key]
        except KeyError:
            raise ObjectNotFound(self.url(key), "no such key") from None

    def get(self, key: str) -> bytes:
        return self._entry(key)[0]

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        data = self._entry(key)[0]
        if start > len(data):
            raise InvalidRange(self.url(key), f"bytes [{start}, {end}) start past the end (size {len(data)})")
        return data[start:end]

    def put(self, key: str, data: PutSource) -> ObjectInfo:
        if not key or key.endswith("/"):
            raise ObjectNotFound(self.url(key), "an object key must be non-empty and not end with '/'")
        payload = b"".join(iter_chunks(data))
        entry = (payload, hashlib.md5(payload, usedforsecurity=False).hexdigest(), datetime.now(tz=UTC))
        with _LOCK:
            _BUCKETS.setdefault(self.bucket, {})[key] = entry
        return self._info(key, entry)

    def _info(self, key: str, entry: tuple[bytes, str, datetime]) -> ObjectInfo:
        return ObjectInfo(url=self.url(key), key=key, size=len(entry[0]), etag=entry[1], mtime=entry[2])

    def head(self, key: str) -> ObjectInfo:
        return self._info(key, self._entry(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        objects = self._objects(prefix)
        with _LOCK:
            keys = sorted(k for k in objects if k.startswith(prefix))
        for key in keys:
            entry = objects.get(key)
            if entry is not None:
                yield self._info(key, entry)

    def delete(self, key: str) -> None:
        with _LOCK:
            objects = self._objects(key)
            if objects.pop(key, None) is None:
                raise ObjectNotFound(self.url(key), "no such key")

    def copy(self, src: str, dst: str) -> ObjectInfo:
        return self.put(dst, self._entry(src)[0])
