"""Byte streams: write, seek, read, the live tail, truncation."""

from __future__ import annotations

import random
import threading

import pytest

from xtremehub.errors import (
    InvalidStreamArgument,
    SegmentTruncated,
)
from xtremehub.streams import (
    StreamManager,
)
from xtremehub.testing.streams.base import StreamSuiteBase

__all__ = ["ByteStreamTests"]


class ByteStreamTests(StreamSuiteBase):
    """Byte streams: write, seek, read, the live tail, truncation."""

    def test_byte_stream_write_seek_read_tail_truncate(self, manager: StreamManager) -> None:
        scope, _ = self._stream(manager)
        bs = manager.create_byte_stream(scope, "bytes")
        payload = random.Random(7).randbytes(300_000)
        bs.write(payload[:1000])
        assert bs.read(10) == b"", "unflushed bytes are visible"
        bs.write(payload[1000:])
        bs.flush()
        assert bs.tail_offset() == len(payload)
        assert bs.read(100) == payload[:100]
        bs.seek(250_000)
        assert bs.read() == payload[250_000:]

        def append_later() -> None:
            bs.write(b"live")
            bs.flush()

        late = threading.Timer(0.2, append_later)
        late.start()
        assert bs.read(4, wait=5.0) == b"live"
        late.join()
        bs.truncate(1000)
        assert bs.head_offset() == 1000
        bs.seek(0)
        with pytest.raises(SegmentTruncated):
            bs.read(10)
        bs.seek(1000)
        assert bs.read(5) == payload[1000:1005]
        with pytest.raises(InvalidStreamArgument):
            bs.truncate(10**9)
        bs.close()
