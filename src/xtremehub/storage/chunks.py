"""Turning whatever :meth:`Store.put` accepts into a stream of byte chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from xtremehub.storage.base import PutSource

__all__ = ["iter_chunks"]

CHUNK = 8 * 1024 * 1024


def iter_chunks(data: PutSource, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Yield ``data`` as byte chunks: bytes-like whole, file objects by ``chunk_size``.

    Example:
        >>> import io
        >>> list(iter_chunks(io.BytesIO(b"abcde"), chunk_size=2))
        [b'ab', b'cd', b'e']
    """
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(chunk_size):
            yield chunk
        return
    for chunk in cast("Iterator[bytes]", data):
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"put() got an iterable of {type(chunk).__name__}, expected bytes")
        yield bytes(chunk)
