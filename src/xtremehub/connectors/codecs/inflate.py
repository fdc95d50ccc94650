"""Raw-deflate inflation from any bit offset, in bounded pieces, with the fastest inflater installed.

Three interchangeable libraries inflate raw deflate with a preset dictionary (the
32 KiB window a checkpoint stores): ISA-L (``isal.isal_zlib``), zlib-ng
(``zlib_ng.zlib_ng``) and the standard library's ``zlib``. :func:`inflater`
picks one by name, or the default :data:`PREFERRED` order (the fastest first,
measured by ``bench/fastq_gzip.py``); ``XHUB_INFLATER`` in the environment
overrides the default (for benchmarks).

Deflate blocks are not byte-aligned, and none of these Python bindings can start
mid-byte. :func:`aligned` re-aligns the compressed stream by ``shift`` bits
(NumPy, one pass, piece by piece). :class:`RawInflater` feeds the inflater at
most :data:`FEED` compressed bytes at a time and takes at most :data:`OUT` bytes
of output per call, so memory stays bounded whatever the compression ratio.

Example:
    >>> import zlib
    >>> text = b"ACGT" * 100_000
    >>> c = zlib.compressobj(6, zlib.DEFLATED, -15)
    >>> raw = c.compress(text) + c.flush()
    >>> inf = RawInflater(inflater("zlib"), b"")
    >>> out = b"".join(inf.feed(raw))
    >>> out == text, inf.eof
    (True, True)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Protocol

import numpy as np

__all__ = ["FEED", "OUT", "PREFERRED", "RawInflater", "aligned", "inflater"]

#: compressed bytes handed to the inflater per call
FEED = 256 * 1024
#: at most this many output bytes per call (a highly compressible piece is taken in several)
OUT = 4 * 1024 * 1024
#: inflaters by preference: (name, module); the first importable one is the default
PREFERRED: tuple[tuple[str, str], ...] = (("isal", "isal.isal_zlib"), ("zlib-ng", "zlib_ng.zlib_ng"), ("zlib", "zlib"))


class _Decompressor(Protocol):
    eof: bool
    unused_data: bytes
    unconsumed_tail: bytes

    def decompress(self, data: Any, max_length: int = ...) -> bytes: ...

    def flush(self) -> bytes: ...


def inflater(name: str | None = None) -> ModuleType:
    """The zlib-compatible module called ``name`` (``isal``, ``zlib-ng``, ``zlib``), or the default.

    Raises:
        ValueError: an unknown name, or a library that is not installed.
    """
    wanted = name or os.environ.get("XHUB_INFLATER") or None
    for key, module in PREFERRED:
        if wanted not in (None, key):
            continue
        try:
            return importlib.import_module(module)
        except ImportError:
            if wanted is not None:
                raise ValueError(f"inflater {wanted!r} is not installed") from None
    raise ValueError(f"unknown inflater {wanted!r}; choose one of {[k for k, _ in PREFERRED]}")


def error_types() -> tuple[type[Exception], ...]:
    """The ``error`` classes of every installed inflater (they differ per library)."""
    errors: list[type[Exception]] = []
    for _, module in PREFERRED:
        try:
            errors.append(importlib.import_module(module).error)
        except ImportError:
            continue
    return tuple(errors)


class RawInflater:
    """A raw-deflate (``wbits=-15``, preset with ``window``) or gzip (``wbits=31``) decompressor
    fed in bounded pieces. After the end of the stream, ``rest`` holds the input that followed it."""

    def __init__(self, lib: ModuleType, window: bytes, *, wbits: int = -15) -> None:
        self._dec: _Decompressor = lib.decompressobj(wbits, zdict=window) if window else lib.decompressobj(wbits)
        self.given = 0  # compressed bytes handed to feed() so far
        self.rest = b""

    @property
    def eof(self) -> bool:
        return bool(self._dec.eof)

    @property
    def consumed(self) -> int:
        """Compressed bytes that belong to the stream (all of them until it ends)."""
        return self.given - len(self.rest)

    def feed(self, data: bytes | memoryview) -> Iterator[bytes]:
        """Inflate ``data``; outputs of at most :data:`OUT` bytes each. Stops at the end of the stream."""
        view = memoryview(data)
        self.given += len(view)
        for at in range(0, len(view), FEED):
            piece: Any = view[at : at + FEED]
            while piece:
                out = self._dec.decompress(piece, OUT)
                if out:
                    yield out
                if self._dec.eof:
                    self.rest = self._dec.unused_data + view[at + FEED :].tobytes()
                    return
                piece = self._dec.unconsumed_tail

    def flush(self) -> bytes:
        return self._dec.flush()


def aligned(chunks: Iterator[bytes], shift: int) -> Iterator[bytes | memoryview]:
    """Re-align a bit stream that starts ``shift`` bits into its first byte.

    Output byte ``j`` is the 8 bits from bit ``shift`` of input byte ``j`` on (deflate
    reads bits from the low end). The stream is shifted 64 bits at a time (the chunk,
    behind the last byte of the previous one, viewed as little-endian words): three
    NumPy passes over an eighth as many elements as bytes.

    Example:
        >>> b"".join(aligned(iter([b"\\x10\\x32", b"\\x54"]), 4))
        b'!C\\x05'
    """
    if shift == 0:
        yield from chunks
        return
    prev: int | None = None
    for chunk in chunks:
        if not chunk:
            continue
        head = 0 if prev is None else 1
        n = head + len(chunk)  # bytes of this round: the carried one, then the chunk
        words = np.zeros(n // 8 + 2, dtype="<u8")  # room for the n bytes and a zero word after
        raw = words.view(np.uint8)
        if prev is not None:
            raw[0] = prev
        raw[head:n] = np.frombuffer(chunk, dtype=np.uint8)
        prev = int(raw[n - 1])
        out = np.right_shift(words[:-1], np.uint64(shift))
        out |= np.left_shift(words[1:], np.uint64(64 - shift))
        yield out.view(np.uint8).data[: n - 1]  # the last byte needs the next chunk's first
    if prev is not None:
        yield bytes([prev >> shift])
