"""Event framing inside segments, and routing keys hashed onto the key space ``[0, 1)``.

A frame is ``payload length (u32) | key length (u16, 0xFFFF = no key) | key (UTF-8) | payload``,
big-endian. The segment store never looks inside; readers cut frames back out.

Example:
    >>> frame = encode_event(b"hello", "sensor-7")
    >>> decoder = EventDecoder("s/st/0.#epoch.0", 0)
    >>> decoder.feed(frame + encode_event(b"", None)[:3])
    >>> decoder.next_event()
    (0, 19, 'sensor-7', b'hello')
    >>> decoder.next_event() is None
    True
    >>> 0.0 <= key_point("sensor-7") < 1.0, key_point("sensor-7") == key_point("sensor-7")
    (True, True)
"""

from __future__ import annotations

import functools
import hashlib
import struct

from xtremehub.errors import CorruptData, EventTooLarge, InvalidStreamArgument
from xtremehub.streams.controller.model import MAX_EVENT_SIZE

__all__ = ["HEADER", "EventDecoder", "encode_event", "key_point"]

HEADER = struct.Struct(">IH")
_NO_KEY = 0xFFFF


@functools.lru_cache(maxsize=65536)
def key_point(routing_key: str) -> float:
    """A stable position of ``routing_key`` in ``[0, 1)`` (BLAKE2b, the same in every process)."""
    digest = hashlib.blake2b(routing_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def encode_event(data: bytes, routing_key: str | None) -> bytes:
    """One framed event; ``EventTooLarge`` past 8 MiB of payload."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidStreamArgument(f"event data must be bytes, not {type(data).__name__}")
    if len(data) > MAX_EVENT_SIZE:
        raise EventTooLarge(f"event of {len(data)} bytes is larger than the maximum of {MAX_EVENT_SIZE} bytes")
    if routing_key is None:
        return b"".join((HEADER.pack(len(data), _NO_KEY), data))
    key = routing_key.encode("utf-8")
    if len(key) >= _NO_KEY:
        raise InvalidStreamArgument(f"routing key of {len(key)} bytes is too long (max {_NO_KEY - 1})")
    return b"".join((HEADER.pack(len(data), len(key)), key, data))


class EventDecoder:
    """Cuts frames out of the bytes of one segment read from ``offset`` on.

    Reads are kept as they come (no copy into a growing buffer) and each payload is one slice
    of them: one copy per payload, also for an event split across reads (its pieces are kept
    as views and joined once).
    """

    def __init__(self, segment: str, offset: int) -> None:
        self.segment = segment
        #: Segment offset of the first byte not yet returned as part of an event.
        self.offset = offset
        self._carry: list[memoryview] = []  # the start of an event whose rest is in later reads
        self._carried = 0
        self._buf = b""
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned."""
        return self._carried + len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Add the next bytes of the segment."""
        if self._pos < len(self._buf):
            self._carry.append(memoryview(self._buf)[self._pos :])
            self._carried += len(self._carry[-1])
        self._buf, self._pos = bytes(data), 0

    def next_event(self) -> tuple[int, int, str | None, bytes] | None:
        """``(offset, next offset, routing key, payload)`` of the next whole event, or None."""
        if self._carry:
            return self._next_split_event()
        frame, pos = self._buf, self._pos
        total = self._frame_size(frame, pos)
        if total is None or len(frame) - pos < total:
            return None
        self._pos = pos + total
        size, key_len = HEADER.unpack_from(frame, pos)
        at = pos + HEADER.size
        key = None if key_len == _NO_KEY else frame[at : at + key_len].decode("utf-8")
        payload = frame[pos + total - size : pos + total]
        start = self.offset
        self.offset += total
        return start, self.offset, key, payload

    def _next_split_event(self) -> tuple[int, int, str | None, bytes] | None:
        """The next event when it starts in the carried bytes of earlier reads."""
        if self.buffered < HEADER.size:
            return None
        pieces = [*self._carry, memoryview(self._buf)[self._pos :]]
        total = self._frame_size(_span(pieces, 0, HEADER.size), 0)
        if total is None or self.buffered < total:
            return None
        size, key_len = HEADER.unpack(_span(pieces, 0, HEADER.size))
        key = None if key_len == _NO_KEY else _span(pieces, HEADER.size, HEADER.size + key_len).decode("utf-8")
        payload = _span(pieces, total - size, total)
        self._consume(total)
        start = self.offset
        self.offset += total
        return start, self.offset, key, payload

    def _consume(self, n: int) -> None:
        """Drop the first ``n`` bytes: carried pieces first, then from the current read."""
        carry = self._carry
        while carry and n >= len(carry[0]):
            n -= len(carry[0])
            self._carried -= len(carry.pop(0))
        if carry:
            carry[0] = carry[0][n:]
            self._carried -= n
        else:
            self._pos += n

    def _frame_size(self, buf: bytes, pos: int) -> int | None:
        """Length of the frame starting at ``pos`` (None while its header is incomplete)."""
        if len(buf) - pos < HEADER.size:
            return None
        size, key_len = HEADER.unpack_from(buf, pos)
        if size > MAX_EVENT_SIZE:
            raise CorruptData(
                self.segment, self.offset, f"frame claims {size} bytes, over the 8 MiB maximum", "segment"
            )
        return int(HEADER.size + (0 if key_len == _NO_KEY else key_len) + size)


def _span(pieces: list[memoryview], start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the concatenation of ``pieces`` (one copy)."""
    out: list[memoryview] = []
    for piece in pieces:
        if end <= 0:
            break
        if start < len(piece):
            out.append(piece[max(start, 0) : end])
        start, end = start - len(piece), end - len(piece)
    return b"".join(out)
