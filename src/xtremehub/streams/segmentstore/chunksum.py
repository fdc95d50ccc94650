"""Checksums of plaintext LTS chunk objects: one CRC32C per block, verified on every read.

A chunk object is written once and then read in ranges (ranged GETs of read-ahead parts and
of random reads), so one checksum over the whole object could only be checked by reading all
of it. Instead the tierer cuts each chunk into *blocks* of ``block`` bytes (the last one
shorter) and records one CRC32C (Castagnoli; the ``crc32c`` package computes it with the
CPU's CRC instructions, on memory views without copies and outside the GIL) per block where
the chunk's metadata lives: the WAL's ``TIERED`` record and checkpoints (so recovery keeps
them) and the segment's ``metadata.json`` in LTS (so the stream history reader, which reads
LTS without the store, checks them too). A read fetches the blocks that
cover the bytes it wants (read-ahead parts are block-aligned, so they fetch nothing extra),
checks each, and hands out only verified bytes; a block whose bytes differ, or an object that
is shorter or longer than written, raises :class:`~xtremehub.errors.ChecksumMismatch` naming
the object and the block's offset. Chunks written before checksums existed carry none and are
read unverified, as before.

Example:
    >>> sums = ChunkSums.of([b"hello ", b"world"], block=4)
    >>> sums.block, sums.length, len(sums.sums) // 4
    (4, 11, 3)
    >>> sums.span(5, 7)
    (4, 8)
    >>> sums.check(b"o wo", 4, "mem://b/c")
    >>> sums.check(b"o_wo", 4, "mem://b/c")
    Traceback (most recent call last):
        ...
    xtremehub.errors.ChecksumMismatch: mem://b/c: bytes 4-8 of the LTS chunk fail their CRC32C check ...
    >>> ChunkSums.from_json(sums.to_json()) == sums
    True
    >>> from xtremehub.storage import open_store
    >>> store, key = open_store("mem://xhub-doc-sums/c")
    >>> _ = store.put(key, b"hello world")
    >>> read_verified(store, key, 6, 9, sums)
    b'wor'
    >>> _ = store.put(key, b"hello world!")
    >>> read_verified(store, key, 6, 9, sums)
    Traceback (most recent call last):
        ...
    xtremehub.errors.ChecksumMismatch: mem://xhub-doc-sums/c: the LTS chunk holds more than the 11 bytes ...
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import crc32c

from xtremehub.errors import ChecksumMismatch, InvalidRange
from xtremehub.storage.base import Store

__all__ = ["ChunkSums", "block_size", "read_verified"]

#: Block size of new chunks: small enough that a random read fetches at most two blocks more
#: than it asks for, large enough that the checksums of a chunk stay a few hundred bytes.
DEFAULT_BLOCK = 256 * 1024


def block_size(part_size: int) -> int:
    """The checksum block of chunks read in parts of ``part_size`` bytes: ``DEFAULT_BLOCK``, or
    the part size when that is smaller (so that read-ahead parts never fetch extra bytes)."""
    return min(DEFAULT_BLOCK, part_size)


@dataclass(frozen=True, slots=True)
class ChunkSums:
    """The CRC32C of each ``block``-byte block of a ``length``-byte chunk object.

    ``sums`` packs them as big-endian 32-bit numbers, 4 bytes per block.
    """

    block: int
    length: int
    sums: bytes

    @classmethod
    def of(cls, pieces: Sequence[bytes], block: int) -> ChunkSums:
        """The checksums of the object that ``pieces`` make, without joining them."""
        out = bytearray()
        crc, filled = 0, 0
        for piece in pieces:
            pos = 0
            while pos < len(piece):
                take = min(block - filled, len(piece) - pos)
                crc = crc32c.crc32c(memoryview(piece)[pos : pos + take] if take != len(piece) else piece, crc)
                pos, filled = pos + take, filled + take
                if filled == block:
                    out += struct.pack(">I", crc)
                    crc, filled = 0, 0
        if filled:
            out += struct.pack(">I", crc)
        return cls(block, sum(map(len, pieces)), bytes(out))

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The block-aligned range of the object that covers bytes ``[start, end)``."""
        return start - start % self.block, min(self.length, -(-end // self.block) * self.block)

    def check(self, data: bytes, start: int, url: str) -> None:
        """Verify ``data``, the object's bytes from ``start`` (a block boundary) on, block by block.

        ``data`` must end at a block boundary or at the object's end. Raises
        :class:`~xtremehub.errors.ChecksumMismatch` naming ``url`` and the failing block's range.
        """
        end = start + len(data)
        if start % self.block or (end % self.block and end != self.length) or end > self.length:
            expected = self.span(start, end)[1] - start
            raise ChecksumMismatch(
                f"{url}: the LTS chunk holds {len(data)} bytes from {start}, not {expected} "
                f"(it was {self.length} bytes when written: truncated or replaced)",
                url=url,
                offset=start + len(data),
            )
        view = memoryview(data)
        for pos in range(start, end, self.block):
            piece = view[pos - start : pos - start + self.block]
            (want,) = struct.unpack_from(">I", self.sums, 4 * (pos // self.block))
            got = crc32c.crc32c(piece)
            if got != want:
                raise ChecksumMismatch(
                    f"{url}: bytes {pos}-{pos + len(piece)} of the LTS chunk fail their CRC32C check "
                    f"(written 0x{want:08x}, read 0x{got:08x}): the object was changed or replaced",
                    url=url,
                    offset=pos,
                )

    def to_json(self) -> dict[str, Any]:
        return {"block": self.block, "length": self.length, "crc32c": base64.b64encode(self.sums).decode()}

    @classmethod
    def from_json(cls, body: dict[str, Any] | None) -> ChunkSums | None:
        """The checksums in ``body`` (None for a chunk written before checksums: read unverified)."""
        if not body:
            return None
        return cls(int(body["block"]), int(body["length"]), base64.b64decode(body["crc32c"]))


def read_verified(store: Store, key: str, start: int, end: int, sums: ChunkSums) -> bytes:
    """Bytes ``[start, end)`` of chunk object ``key`` of ``store``, verified against ``sums``.

    One ranged GET of the blocks covering the range; a range that reaches the object's last
    block asks for one byte more, so that an object that grew (replaced by a longer one) fails
    too. Raises :class:`~xtremehub.errors.ChecksumMismatch` naming the object and offset.
    """
    lo, hi = sums.span(start, end)
    last = hi == sums.length
    try:
        data = store.get_range(key, lo, hi + 1 if last else hi)
    except InvalidRange:  # the object now ends before ``lo``
        data = b""
    if last and len(data) > hi - lo:
        raise ChecksumMismatch(
            f"{store.url(key)}: the LTS chunk holds more than the {sums.length} bytes written (replaced)",
            url=store.url(key),
            offset=sums.length,
        )
    if len(data) < hi - lo:  # cut short (at a block boundary too, or before ``lo``): never a short read
        raise ChecksumMismatch(
            f"{store.url(key)}: the LTS chunk holds {len(data)} bytes from {lo}, not {hi - lo} "
            f"(it was {sums.length} bytes when written: truncated)",
            url=store.url(key),
            offset=lo + len(data),
        )
    sums.check(data, lo, store.url(key))
    return data if (lo, hi) == (start, end) else data[start - lo : end - lo]
