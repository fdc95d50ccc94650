"""Raw-deflate inflation from any bit offset, in bounded pieces, with the fastest inflater installed.

Three interchangeable libraries inflate raw deflate with a preset dictionary (the
32 KiB window a checkpoint stores): ISA-L (``isal.isal_zlib``), zlib-ng
(``zlib_ng.zlib_ng``) and the standard library's ``zlib``. :func:`inflater`
picks one by name, or the default :data:`PREFERRED` order (the fastest first,
measured by ``bench/fastq_gzip.py``); ``XHUB_INFLATER`` in the environment
overrides the default (for benchmarks).

Deflate blocks are not byte-aligned, and none of these Python bindings can start
mid-byte. :func:`from_bit` puts empty deflate blocks in front of the compressed
stream that end exactly where it starts (:func:`bit_prefix`), so the bytes are
inflated as they come, never shifted or copied. :class:`RawInflater` feeds the inflater at
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

__all__ = ["FEED", "OUT", "PREFERRED", "RawInflater", "bit_prefix", "from_bit", "inflater"]

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


#: bits of an empty, non-final fixed-Huffman block: BFINAL 0, BTYPE 01, end-of-block (7 zero bits)
_FIXED_EMPTY = ((0, 1), (1, 2), (0, 7))
#: order in which a dynamic block lists the code lengths of its code-length code (RFC 1951, 3.2.7)
_CL_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)
#: bits of an empty, non-final dynamic block, 95 of them (an odd count, 7 modulo 8): 257 literal/length
#: codes, 2 distance codes, 19 code-length codes of which ``1`` and ``18`` have one bit each; literal 0
#: and end-of-block one bit each, 255 zeros between them (``18`` twice: 138 and 117), both distances
#: one bit; then the end-of-block. All three codes are complete, so every inflater takes it.
_DYNAMIC_EMPTY = (
    *((0, 1), (2, 2), (0, 5), (1, 5), (15, 4)),
    *((1 if sym in (1, 18) else 0, 3) for sym in _CL_ORDER),
    *((0, 1), (1, 1), (127, 7), (1, 1), (106, 7), (0, 1), (0, 1), (0, 1), (1, 1)),
)


def bit_prefix(shift: int) -> tuple[bytes, int]:
    """Empty deflate blocks ``8 * k + shift`` bits long: ``(their first k bytes, their last shift bits)``.

    Deflate blocks are not byte-aligned, and none of the inflaters' Python bindings can
    start mid-byte. Instead of shifting the whole compressed stream, :func:`from_bit` puts
    these blocks in front of it: they produce no output (so the preset window stays the
    history) and end exactly at bit ``shift`` of the stream's first byte, whose low
    ``shift`` bits they take. Empty fixed blocks are 10 bits (2 modulo 8) and the empty
    dynamic block 95 (7 modulo 8), so every ``shift`` has a combination.

    Example:
        >>> bit_prefix(0), bit_prefix(2), bit_prefix(4), len(bit_prefix(7)[0]), bit_prefix(7)[1]
        ((b'', 0), (b'\\x02', 0), (b'\\x02\\x08', 0), 11, 70)
    """
    if not 0 <= shift < 8:
        raise ValueError(f"shift must be in [0, 8), not {shift}")
    fields: list[tuple[int, int]] = []
    length = 0
    if shift % 2:
        fields += _DYNAMIC_EMPTY
        length = 7
    while length != shift:
        fields += _FIXED_EMPTY
        length = (length + 2) % 8
    value = nbits = 0
    for field, width in fields:
        value |= field << nbits
        nbits += width
    k = nbits // 8
    return value.to_bytes(k + 1, "little")[:k], value >> (8 * k)


def from_bit(chunks: Iterator[bytes], shift: int) -> tuple[int, Iterator[bytes | memoryview]]:
    """A raw-deflate stream that starts ``shift`` bits into its first byte, made byte-aligned.

    Returns ``(k, stream)``: ``stream`` is :func:`bit_prefix` (``k`` bytes) followed by the
    chunks, the first byte's low ``shift`` bits replaced by the prefix's last bits; the
    compressed bytes are handed on as they come, not copied (byte ``k + j`` of the stream is
    byte ``j`` of the input). Feed it to a raw inflater preset with the window.

    Example:
        >>> import zlib
        >>> c = zlib.compressobj(6, zlib.DEFLATED, -15)
        >>> raw = c.compress(b"ACGT" * 1000) + c.flush()
        >>> shifted = (int.from_bytes(raw, "little") << 5).to_bytes(len(raw) + 1, "little")
        >>> k, stream = from_bit(iter([shifted[:7], shifted[7:]]), 5)
        >>> zlib.decompressobj(-15).decompress(b"".join(stream)) == b"ACGT" * 1000, k
        (True, 15)
    """
    if shift == 0:
        return 0, iter(chunks)
    head, low = bit_prefix(shift)
    return len(head), _prefixed(chunks, head, low, shift)


def _prefixed(chunks: Iterator[bytes], head: bytes, low: int, shift: int) -> Iterator[bytes | memoryview]:
    for chunk in chunks:
        if chunk:
            yield head + bytes([chunk[0] & (0xFF << shift) & 0xFF | low])
            yield memoryview(chunk)[1:]
            break
    yield from chunks
