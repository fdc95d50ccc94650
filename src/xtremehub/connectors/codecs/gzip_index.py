"""Gzip random access: checkpoints built with indexed_gzip, resumed with zlib.

A checkpoint is a position in the compressed stream where decompression can
restart: a bit offset (deflate blocks are not byte-aligned), the uncompressed
offset it corresponds to, and the 32 KiB of output that precede it (the
"window" that back-references may reach into), stored zlib-compressed. Every
gzip member start is a checkpoint too (no window needed), so single-member,
multi-member (pigz, concatenated) and BGZF files are all handled the same way.

The index is built by indexed_gzip (zran) in one sequential pass; we read its
documented export format (``GZIDX``). To resume at bit offset ``8*B + s`` we
run a raw-deflate decompressor preset with the window on the bytes from ``B`` on,
behind empty deflate blocks that end at bit ``s`` of byte ``B``
(:func:`~xtremehub.connectors.codecs.inflate.from_bit`), then continue member by member.

Example:
    >>> import gzip, io
    >>> text = b"".join(b"line %d\\n" % i for i in range(200_000))
    >>> scan = build_checkpoints(io.BytesIO(gzip.compress(text)), "mem://x", spacing=256 * 1024)
    >>> points = scan.points
    >>> len(points) > 3, points[0].uncompressed, points[-1].uncompressed == len(text)
    (True, 0, True)
    >>> min(b.uncompressed - a.uncompressed for a, b in zip(points, points[1:-1])) >= 256 * 1024
    True
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import BinaryIO

from xtremehub.connectors.codecs.inflate import RawInflater, error_types, from_bit, inflater
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.errors import CorruptData, TruncatedData

__all__ = ["Checkpoint", "CheckpointScan", "build_checkpoints", "inflate_from", "is_bgzf", "parse_gzidx"]

_GZIP_MAGIC = b"\x1f\x8b\x08"
WINDOW = 32768


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where decompression can resume (see the module docstring)."""

    bit_offset: int
    uncompressed: int
    window: bytes = b""  # zlib-compressed; empty at member starts

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8


@dataclass(frozen=True)
class CheckpointScan:
    """What the checkpoint pass found: the checkpoints (then an end marker whose
    ``uncompressed`` is the total size) and how many gzip member starts zran saw."""

    points: list[Checkpoint]
    member_starts: int


def is_bgzf(head: bytes) -> bool:
    """Whether ``head`` (an object's first 18 bytes) starts a BGZF block: a gzip member whose
    extra field holds the ``BC`` subfield (``bgzip``, htslib).

    Example:
        >>> is_bgzf(bytes.fromhex("1f8b08040000000000ff0600424302001b00")), is_bgzf(b"\\x1f\\x8b\\x08\\x00")
        (True, False)
    """
    return len(head) >= 16 and head[:2] == b"\x1f\x8b" and bool(head[3] & 4) and head[12:14] == b"BC"


def build_checkpoints(fileobj: BinaryIO, url: str, *, spacing: int) -> CheckpointScan:
    """One pass over a gzip file: checkpoints about every ``spacing`` UNCOMPRESSED bytes.

    zran (indexed_gzip) places a point at the first deflate block boundary at least
    ``spacing`` uncompressed bytes past the previous one, but also at *every* gzip
    member start, whatever the spacing (a BGZF file has one every 64 KiB of compressed
    data). We keep a point only when it is at least ``spacing`` uncompressed bytes past
    the last one kept, so checkpoints are ``spacing`` apart, plus at most a deflate
    block or a gzip member, for single-member, multi-member and BGZF files alike.

    Raises:
        CorruptData: invalid gzip data (names the object).
        TruncatedData: the file ends inside a member.
    """
    import indexed_gzip

    zran_spacing = max(spacing, 2 * WINDOW)  # zran needs spacing > window
    try:
        with indexed_gzip.IndexedGzipFile(fileobj=fileobj, spacing=zran_spacing, readbuf_size=1 << 20) as igz:
            igz.build_full_index()
            buf = io.BytesIO()
            igz.export_index(fileobj=buf)
    except indexed_gzip.ZranError as exc:
        text = str(exc)
        cls = TruncatedData if "EOF" in text or "truncat" in text.lower() else CorruptData
        raise cls(url, _tell(fileobj), f"not a readable gzip file ({text})") from exc
    except (EOFError, zlib.error) as exc:
        raise TruncatedData(url, _tell(fileobj), f"gzip data ends early ({exc})") from exc
    return parse_gzidx(buf.getvalue(), url, spacing)


def _tell(fileobj: BinaryIO) -> int:
    try:
        return fileobj.tell()
    except (OSError, ValueError):
        return -1


def parse_gzidx(blob: bytes, url: str, spacing: int, *, trailer: bytes | None = None) -> CheckpointScan:
    """The checkpoints of an index in indexed_gzip's export format (also rapidgzip's),
    at least ``spacing`` uncompressed bytes apart, then an end marker.

    indexed_gzip places a window-less point at every gzip member start, so its
    member count is exact. rapidgzip only at those member starts that begin one of
    its chunks; pass ``trailer`` (the object's last 4 bytes, the last member's size
    modulo 2**32) for it: a size that is not the whole text's shows an earlier
    member, so the count is then a lower bound that is above 1 exactly when there is
    more than one member (short of members whose sizes add up to multiples of 4 GiB).
    """
    # indexed_gzip export format v1: magic, version, flags, then
    # <QQIII> compressed size, uncompressed size, spacing, window size, npoints,
    # then per point <QQBB> compressed offset, uncompressed offset, bits, has-window,
    # then the windows of the points that have one, window-size bytes each.
    if blob[:5] != b"GZIDX" or blob[5] != 1:
        raise CorruptData(url, 0, "unexpected indexed_gzip index format")
    _csize, _usize, _spacing, wsize, npoints = struct.unpack_from("<QQIII", blob, 7)
    offset = 7 + 28
    raw_points = []
    for _ in range(npoints):
        raw_points.append(struct.unpack_from("<QQBB", blob, offset))
        offset += 18
    points: list[Checkpoint] = []
    members = 0
    for cmp_offset, uncmp, bits, has_window in raw_points:
        members += not has_window and bits == 0 and uncmp < _usize
        window_at = offset
        offset += wsize if has_window else 0
        # zran adds a final point at the end of the data; we keep exactly one end marker.
        if points and (uncmp >= _usize or uncmp - points[-1].uncompressed < spacing):
            continue
        window = zlib.compress(blob[window_at : window_at + wsize], 1) if has_window else b""
        points.append(Checkpoint(cmp_offset * 8 - bits, uncmp, window))
    if trailer is not None and members <= 1 and len(trailer) == 4:
        members = 1 + (struct.unpack("<I", trailer)[0] != _usize % (1 << 32))
    return CheckpointScan([*points, Checkpoint(_csize * 8, _usize)], members)


def _chunks(src: RangeSource) -> Iterator[bytes]:
    while block := src.read():
        yield block


def inflate_from(src: RangeSource, point: Checkpoint, *, lib: ModuleType | None = None) -> Generator[bytes, None, None]:
    """Decompressed bytes from ``point`` to the end of the object (lazily, in pieces of at most 4 MiB).

    ``src`` must start at ``point.byte_offset``. ``lib`` is the inflater
    (:func:`~xtremehub.connectors.codecs.inflate.inflater`; default: the fastest
    installed). Raises :class:`CorruptData` or :class:`TruncatedData` naming the object
    and the compressed offset.
    """
    lib = lib or inflater()
    start_byte, shift = divmod(point.bit_offset, 8)
    if not point.window and shift == 0 and src.peek(start_byte, 3) == _GZIP_MAGIC:
        yield from _inflate_members(src, start_byte, lib)
        return
    dec = RawInflater(lib, zlib.decompress(point.window) if point.window else b"")
    prefix, stream = from_bit(_chunks(src), shift)  # stream byte prefix + j is object byte start_byte + j
    try:
        for chunk in stream:
            yield from dec.feed(chunk)
            if dec.eof:
                break
    except error_types() as exc:
        raise CorruptData(src.url, start_byte + max(0, dec.given - prefix), f"corrupt deflate data ({exc})") from exc
    if not dec.eof:
        raise TruncatedData(src.url, src.size, "gzip member ends before its end-of-stream marker")
    out = dec.flush()
    if out:
        yield out
    # This member's deflate data ends in the last byte the inflater consumed; its 8-byte
    # trailer follows. Then another gzip member or the end of the object.
    nxt = start_byte + dec.consumed - prefix + 8
    if nxt > src.size:
        raise TruncatedData(src.url, src.size, f"the gzip trailer at {nxt - 8} is cut short")
    if nxt == src.size:
        return
    head = src.peek(nxt, 3)
    if head == _GZIP_MAGIC:
        src.seek(nxt)
        yield from _inflate_members(src, nxt, lib)
        return
    if not head.strip(b"\x00") and _zeros_to_end(src, nxt):
        return  # zero padding after the last member (as gzip and _inflate_members accept)
    raise CorruptData(src.url, nxt - 8, "no gzip member follows the end of a deflate stream")


def _zeros_to_end(src: RangeSource, pos: int) -> bool:
    """Whether every byte of the object from ``pos`` on is zero (read in blocks, stopping at the first other)."""
    src.seek(pos)
    return all(not block.strip(b"\x00") for block in _chunks(src))


def _inflate_members(src: RangeSource, pos: int, lib: ModuleType) -> Iterator[bytes]:
    """Plain gzip decoding of consecutive members starting at byte ``pos``."""
    src.seek(pos)
    data = b""
    member_start = pos
    while True:
        dec = RawInflater(lib, b"", wbits=31)
        try:
            while not dec.eof:
                if not data:
                    data = src.read()
                    if not data:
                        raise TruncatedData(src.url, src.size, f"gzip member starting at {member_start} is cut short")
                yield from dec.feed(data)
                data = b""
        except error_types() as exc:
            raise CorruptData(src.url, member_start, f"corrupt gzip member ({exc})") from exc
        data = dec.rest
        member_start = src.pos - len(data)
        while len(data) < 3:
            more = src.read()
            if not more:
                break
            data += more
        if not data:
            return
        if not data.startswith(b"\x1f\x8b"):
            if data.strip(b"\x00") == b"" and src.pos >= src.size:
                return  # zero padding after the last member
            raise CorruptData(src.url, member_start, "garbage after a gzip member")
