"""Reading a camera's video back: live at the tail, or from history by time.

:class:`VideoHistory` finds the key frame at or before a time by bisecting the key-frame index
(a few fixed-size reads), then reads only the events it needs, straight from the segment
store (which serves them from the local tier or from long-term storage).
:class:`LiveVideo` follows the tail through a reader group and starts decoding at the first
key frame it sees, so a reader that joins mid-stream never feeds a decoder a partial GOP.

Example:
    >>> import tempfile
    >>> from xtremehub.streams import StreamManager
    >>> from xtremehub.pipelines.video import TestPattern, VideoWriter
    >>> pattern = TestPattern(64, 48, gop=4)
    >>> with StreamManager.embedded(tempfile.mkdtemp()) as manager:
    ...     with VideoWriter(manager, "or1", "cam0") as camera:
    ...         for i in range(10):
    ...             unit, key = pattern.encode_next()
    ...             _ = camera.write_frame(unit, timestamp_ns=i * 1000, key_frame=key)
    ...     history = VideoHistory(manager, "or1", "cam0")
    ...     history.seek(6500).timestamp_ns, [f.timestamp_ns for f in history.frames(6500, 8000)]
    (4000, [4000, 5000, 6000, 7000, 8000])
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from xtremehub.errors import InvalidStreamArgument
from xtremehub.pipelines.video.codec import FrameDecoder, Picture
from xtremehub.pipelines.video.framing import INDEX_RECORD, FrameHeader, IndexRecord, decode_frame
from xtremehub.pipelines.video.writer import index_stream_name
from xtremehub.streams import StreamManager
from xtremehub.streams.client._framing import EventDecoder

__all__ = ["DecodedFrame", "LiveVideo", "VideoFrame", "VideoHistory"]

_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One encoded frame read back, with where it was stored."""

    header: FrameHeader
    unit: bytes
    segment: str
    offset: int

    @property
    def timestamp_ns(self) -> int:
        """Capture time."""
        return self.header.timestamp_ns


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A decoded picture and its capture time."""

    timestamp_ns: int
    picture: Picture


class VideoHistory:
    """Time-addressed access to the frames a :class:`~.writer.VideoWriter` wrote.

    Attributes:
        index_bytes_read: bytes of the key-frame index fetched so far.
        frame_bytes_read: bytes of frame events fetched so far.
    """

    def __init__(self, manager: StreamManager, scope: str, camera: str) -> None:
        self._manager, self.scope, self.camera = manager, scope, camera
        self._index = manager.create_byte_stream(scope, index_stream_name(camera))
        self.index_bytes_read = self.frame_bytes_read = 0

    @property
    def bytes_read(self) -> int:
        """Bytes fetched from the store so far (index and frames)."""
        return self.index_bytes_read + self.frame_bytes_read

    # -- the index --------------------------------------------------------------------------
    def __len__(self) -> int:
        """Key frames indexed."""
        return (self._index.tail_offset() - self._index.head_offset()) // INDEX_RECORD.size

    def record(self, i: int) -> IndexRecord:
        """The ``i``-th key frame's index record."""
        return self.records(i, i + 1)[0]

    def records(self, start: int, stop: int) -> list[IndexRecord]:
        """Index records ``start`` to ``stop - 1``, with one read of the index."""
        size = INDEX_RECORD.size
        at = self._index.head_offset() + start * size
        self._index.seek(at)
        data = self._index.read(max(0, stop - start) * size)
        self.index_bytes_read += len(data)
        where = f"{self.scope}/{index_stream_name(self.camera)}"
        # a short read leaves a short last slice: CorruptData naming its offset
        return [
            IndexRecord.unpack(data[k : k + size], self.scope, self.camera, where=where, at=at + k)
            for k in range(0, (stop - start) * size, size)
        ]

    def index(self) -> list[IndexRecord]:
        """Every key frame's record, in time order."""
        return self.records(0, len(self))

    def seek(self, timestamp_ns: int) -> IndexRecord:
        """The key frame at or before ``timestamp_ns`` (bisection: about log2(key frames) reads)."""
        return self._bisect(timestamp_ns)[1]

    def _bisect(self, timestamp_ns: int) -> tuple[int, IndexRecord]:
        """``(i, record(i))`` of the last key frame at or before ``timestamp_ns``."""
        lo, hi = 0, len(self)
        if hi == 0:
            raise InvalidStreamArgument(f"{self.scope}/{self.camera}: no key frame indexed yet")
        found = self.record(0)
        if timestamp_ns < found.timestamp_ns:
            raise InvalidStreamArgument(
                f"{self.scope}/{self.camera}: {timestamp_ns} ns is before the first key frame ({found.timestamp_ns} ns)"
            )
        while hi - lo > 1:  # invariant: record(lo) <= timestamp_ns < record(hi)
            mid = (lo + hi) // 2
            candidate = self.record(mid)
            if candidate.timestamp_ns <= timestamp_ns:
                lo, found = mid, candidate
            else:
                hi = mid
        return lo, found

    # -- frames -----------------------------------------------------------------------------
    def read_frame(self, record: IndexRecord) -> VideoFrame:
        """The frame an index record points at (reads exactly its bytes)."""
        decoder = EventDecoder(record.segment, record.offset)
        got = 0
        while got < record.length:
            result = self._manager.store.read(record.segment, record.offset + got, record.length - got)
            if not result.data:
                break
            decoder.feed(result.data)
            got += len(result.data)
        self.frame_bytes_read += got
        event = decoder.next_event()
        if event is None:
            raise InvalidStreamArgument(f"{record.segment}: no whole event at offset {record.offset}")
        header, unit = decode_frame(event[3], where=record.segment, offset=record.offset)
        return VideoFrame(header, unit, record.segment, record.offset)

    def frames(self, start_ns: int, end_ns: int | None = None) -> Iterator[VideoFrame]:
        """Every frame from the key frame at or before ``start_ns`` to ``end_ns`` (inclusive; None:
        to the current end), in capture order: what a decoder needs to show ``start_ns`` on."""
        record = self.seek(start_ns)
        decoder = EventDecoder(record.segment, record.offset)
        offset = record.offset
        while True:
            result = self._manager.store.read(record.segment, offset, _READ_CHUNK)
            if not result.data:
                return
            self.frame_bytes_read += len(result.data)
            offset += len(result.data)
            decoder.feed(result.data)
            while (event := decoder.next_event()) is not None:
                header, unit = decode_frame(event[3], where=record.segment, offset=event[0])
                if end_ns is not None and header.timestamp_ns > end_ns:
                    return
                yield VideoFrame(header, unit, record.segment, event[0])

    def _records_from(self, first: int, record: IndexRecord, block: int = 64) -> Iterator[IndexRecord]:
        """``record`` (number ``first``), then the records after it, read ``block`` at a time."""
        yield record
        end = len(self)
        for start in range(first + 1, end, block):
            yield from self.records(start, min(start + block, end))

    def key_frames(self, start_ns: int, end_ns: int, *, batch_size: int = 16) -> Iterator[list[DecodedFrame]]:
        """Decoded key frames from the one at or before ``start_ns`` up to ``end_ns``, in batches
        (a training job's input): reads the index and the key frames' bytes, nothing else."""
        first, found = self._bisect(start_ns)
        batch: list[DecodedFrame] = []
        for record in self._records_from(first, found):
            if record.timestamp_ns > end_ns:
                break
            frame = self.read_frame(record)
            pictures = FrameDecoder().decode(frame.unit)  # a key frame decodes on its own
            batch.extend(DecodedFrame(frame.timestamp_ns, picture) for picture in pictures)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


class LiveVideo:
    """Follows a camera at the tail and decodes, measuring capture-to-picture latency.

    Args:
        manager, scope, camera: where the frames are.
        start: ``"tail"`` (frames written from now on) or ``"head"``.
    """

    def __init__(
        self, manager: StreamManager, scope: str, camera: str, *, start: Literal["head", "tail"] = "tail"
    ) -> None:
        self._group_name = f"live-{camera}-{uuid.uuid4().hex[:8]}"
        self._manager, self.scope = manager, scope
        group = manager.create_reader_group(self._group_name, scope, [camera], start=start)
        self._reader = group.create_reader("live")
        self._decoder = FrameDecoder()
        self._started = False
        #: Frames skipped before the first key frame (a reader joining mid-GOP).
        self.skipped = 0
        #: Capture-to-picture latency of each decoded frame, in milliseconds.
        self.latencies_ms: list[float] = []

    def next_picture(self, timeout: float = 1.0) -> DecodedFrame | None:
        """The next decoded picture, or None if no frame arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self._reader.read_next(timeout=left)
            if event is None or event.is_checkpoint:
                continue
            header, unit = decode_frame(event.data, where=event.position.segment, offset=event.position.offset)
            if not self._started and not header.key_frame:
                self.skipped += 1
                continue
            self._started = True
            pictures = self._decoder.decode(unit)
            if pictures:
                self.latencies_ms.append((time.time_ns() - header.timestamp_ns) / 1e6)
                return DecodedFrame(header.timestamp_ns, pictures[-1])
        return None

    def close(self) -> None:
        """Leave and delete the reader group."""
        try:
            self._reader.reader_offline()
        finally:
            self._manager.delete_reader_group(self._group_name, self.scope)

    def __enter__(self) -> LiveVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
