"""Read-only HTTP(S) store (``https://host/path``): objects anyone can download.

Lithops reads ``http(s)://`` URLs given as ``iterdata``; so does XtremeHub: ``head``
is a ``HEAD`` request (the size from ``Content-Length``), range reads send a
``Range`` header (a server that ignores it is still read correctly, from the full
body). Listing, writing and deleting are not possible over plain HTTP.

Example:
    >>> from xtremehub.storage import open_store
    >>> store, key = open_store("https://example.org/data/words.txt")
    >>> store, key
    (HttpStore('https://example.org'), 'data/words.txt')
    >>> store.put(key, b"x")
    Traceback (most recent call last):
    ...
    xtremehub.errors.AccessDenied: https://example.org/data/words.txt: HTTP objects are read-only
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

from xtremehub.errors import AccessDenied, InvalidRange, ObjectNotFound, StorageUnavailable
from xtremehub.storage.base import ObjectInfo, PutSource, Store

__all__ = ["HttpStore"]

_TIMEOUT = 60.0


class HttpStore(Store):
    """Objects under ``base`` (``scheme://host[:port]``), keys are URL paths."""

    supports_writes = False
    max_concurrency = 8

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def __repr__(self) -> str:
        return f"HttpStore({self.base!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HttpStore) and other.base == self.base

    def __hash__(self) -> int:
        return hash(("http", self.base))

    def url(self, key: str) -> str:
        return f"{self.base}/{key}"

    def _open(self, key: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(self.url(key), method=method, headers=headers or {})  # noqa: S310
        try:
            return urllib.request.urlopen(request, timeout=_TIMEOUT)  # noqa: S310 - http(s) only, by scheme
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise ObjectNotFound(self.url(key)) from exc
            if exc.code in (401, 403):
                raise AccessDenied(self.url(key), f"HTTP {exc.code}") from exc
            if exc.code == 416:
                raise InvalidRange(self.url(key), "range not satisfiable") from exc
            raise StorageUnavailable(self.url(key), f"HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise StorageUnavailable(self.url(key), str(exc)) from exc

    def get(self, key: str) -> bytes:
        with self._open(key) as response:
            return bytes(response.read())

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            with self._open(key, headers={"Range": f"bytes={start}-{end - 1}"}) as response:
                if response.status == 206:
                    return bytes(response.read())
                body = bytes(response.read())  # the server ignored the range: cut it here
        except InvalidRange:
            # HTTP answers 416 for a range starting at the end; like every store, that is b""
            if start == self.head(key).size:
                return b""
            raise
        if start > len(body):
            raise InvalidRange(self.url(key), f"range starts at {start}, past the end ({len(body)} bytes)")
        return body[start:end]

    def head(self, key: str) -> ObjectInfo:
        with self._open(key, method="HEAD") as response:
            length = response.headers.get("Content-Length")
            etag = response.headers.get("ETag")
            modified = response.headers.get("Last-Modified")
        if length is None:  # no size announced: read it once
            return ObjectInfo(self.url(key), key, len(self.get(key)), etag)
        mtime = parsedate_to_datetime(modified) if modified else None
        return ObjectInfo(self.url(key), key, int(length), etag.strip('"') if etag else None, mtime)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """HTTP has no listing: the object named ``prefix`` itself, if it exists."""
        if prefix and not prefix.endswith("/"):
            try:
                yield self.head(prefix)
            except ObjectNotFound:
                return

    def put(self, key: str, data: PutSource) -> ObjectInfo:
        raise AccessDenied(self.url(key), "HTTP objects are read-only")

    def delete(self, key: str) -> None:
        raise AccessDenied(self.url(key), "HTTP objects are read-only")
