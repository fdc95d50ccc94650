"""How video frames and their key-frame index are laid out in streams.

Every encoded frame is one stream event: a 24-byte header, then the codec's bytes::

    magic "XV" | version u8 | kind u8 | flags u8 | 3 reserved | timestamp ns u64 | length u32 | CRC-32 u32

The CRC covers the first 20 header bytes, so a damaged header is caught before its length is
trusted. A companion byte stream holds one fixed-size record per key frame, in time order,
so that a reader finds the key frame at or before any time by bisection::

    timestamp ns u64 | flags u8 | 3 reserved | segment number u32 | epoch u32 | offset u64 | event length u32

Example:
    >>> frame = encode_frame(b"\\x00\\x00\\x01\\x65", timestamp_ns=1_000, flags=KEY_FRAME)
    >>> header, payload = decode_frame(frame, where="lab/cam/0.#epoch.0", offset=0)
    >>> header.key_frame, header.timestamp_ns, payload
    (True, 1000, b'\\x00\\x00\\x01e')
    >>> record = IndexRecord(1_000, KEY_FRAME, "lab/cam/0.#epoch.0", 0, 34)
    >>> IndexRecord.unpack(record.pack(), "lab", "cam") == record
    True
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from xtremehub.errors import CorruptData, InvalidStreamArgument

__all__ = [
    "DISCONTINUITY",
    "FRAME_HEADER",
    "INDEX_RECORD",
    "KEY_FRAME",
    "KIND_H264",
    "FrameHeader",
    "IndexRecord",
    "decode_frame",
    "encode_frame",
]

MAGIC = b"XV"
VERSION = 1
KIND_H264 = 1  # an H.264 access unit in Annex B form (a key frame carries its SPS/PPS)
KEY_FRAME = 0x01
DISCONTINUITY = 0x02

FRAME_HEADER = struct.Struct(">2sBBB3xQII")
INDEX_RECORD = struct.Struct(">QB3xIIQI")
_CRC_SPAN = FRAME_HEADER.size - 4
_SEGMENT = re.compile(r"^(?P<prefix>.+)/(?P<number>\d+)\.#epoch\.(?P<epoch>\d+)$")


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The decoded header of one frame event."""

    kind: int
    flags: int
    timestamp_ns: int
    length: int

    @property
    def key_frame(self) -> bool:
        """Whether a decoder can start at this frame."""
        return bool(self.flags & KEY_FRAME)

    @property
    def discontinuity(self) -> bool:
        """Whether frames were lost or the source restarted just before this one."""
        return bool(self.flags & DISCONTINUITY)


def encode_frame(payload: bytes, *, timestamp_ns: int, flags: int = 0, kind: int = KIND_H264) -> bytes:
    """One frame event: header then ``payload``."""
    head = FRAME_HEADER.pack(MAGIC, VERSION, kind, flags, timestamp_ns, len(payload), 0)[:_CRC_SPAN]
    return b"".join((head, struct.pack(">I", zlib.crc32(head)), payload))


def decode_frame(event: bytes | memoryview, *, where: str, offset: int) -> tuple[FrameHeader, bytes]:
    """Header and payload of one frame event; :class:`CorruptData` naming ``where`` and ``offset``
    (the event's position in its segment) when the header is damaged or the payload is cut."""
    view = memoryview(event)
    if len(view) < FRAME_HEADER.size:
        raise CorruptData(where, offset, f"frame event of {len(view)} bytes is shorter than its header", "segment")
    magic, version, kind, flags, timestamp_ns, length, crc = FRAME_HEADER.unpack_from(view)
    if magic != MAGIC or version != VERSION:
        raise CorruptData(where, offset, f"not a video frame (magic {bytes(magic)!r}, version {version})", "segment")
    if zlib.crc32(view[:_CRC_SPAN]) != crc:
        raise CorruptData(where, offset, "video frame header fails its CRC-32", "segment")
    if len(view) != FRAME_HEADER.size + length:
        raise CorruptData(
            where,
            offset,
            f"frame says {length} payload bytes, the event holds {len(view) - FRAME_HEADER.size}",
            "segment",
        )
    return FrameHeader(kind, flags, timestamp_ns, length), bytes(view[FRAME_HEADER.size :])


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """Where one key frame is: its time, flags, and the event's segment, offset and length."""

    timestamp_ns: int
    flags: int
    segment: str
    offset: int
    length: int

    def pack(self) -> bytes:
        """The fixed-size binary form."""
        match = _SEGMENT.match(self.segment)
        if match is None:
            raise InvalidStreamArgument(f"not a segment name: {self.segment!r}")
        number, epoch = int(match["number"]), int(match["epoch"])
        return INDEX_RECORD.pack(self.timestamp_ns, self.flags, number, epoch, self.offset, self.length)

    @classmethod
    def unpack(cls, data: bytes, scope: str, stream: str, *, where: str = "", at: int = 0) -> IndexRecord:
        """The record in ``data`` (exactly one record) of the frames stream ``scope/stream``."""
        if len(data) != INDEX_RECORD.size:
            raise CorruptData(where, at, f"index record of {len(data)} bytes, expected {INDEX_RECORD.size}", "index")
        timestamp_ns, flags, number, epoch, offset, length = INDEX_RECORD.unpack(data)
        return cls(timestamp_ns, flags, f"{scope}/{stream}/{number}.#epoch.{epoch}", offset, length)
