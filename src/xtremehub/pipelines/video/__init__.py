"""Surgery video on streams: H.264 frames with a small header, a key-frame index, and readers
that follow the tail or seek by time.

The layout (see :mod:`.framing`): one frames stream per camera, each event a frame with its
capture time and key-frame flag; a companion byte stream with one fixed-size record per key
frame. Writers make each frame durable before indexing it; historical readers bisect the
index and fetch only the bytes of the frames they need.

Example:
    >>> import tempfile
    >>> from xtremehub.streams import StreamManager
    >>> pattern = TestPattern(64, 48, gop=3)
    >>> with StreamManager.embedded(tempfile.mkdtemp()) as manager:
    ...     with VideoWriter(manager, "or1", "cam0") as camera:
    ...         for i in range(9):
    ...             unit, key = pattern.encode_next()
    ...             _ = camera.write_frame(unit, timestamp_ns=i, key_frame=key)
    ...     [len(batch) for batch in VideoHistory(manager, "or1", "cam0").key_frames(0, 8, batch_size=2)]
    [2, 1]
"""

from __future__ import annotations

from xtremehub.pipelines.video.codec import FrameDecoder, TestPattern
from xtremehub.pipelines.video.export import KeyFrameExport, export_key_frames
from xtremehub.pipelines.video.framing import FrameHeader, IndexRecord, decode_frame, encode_frame
from xtremehub.pipelines.video.reader import DecodedFrame, LiveVideo, VideoFrame, VideoHistory
from xtremehub.pipelines.video.writer import VideoWriter

__all__ = [
    "DecodedFrame",
    "FrameDecoder",
    "FrameHeader",
    "IndexRecord",
    "KeyFrameExport",
    "LiveVideo",
    "TestPattern",
    "VideoFrame",
    "VideoHistory",
    "VideoWriter",
    "decode_frame",
    "encode_frame",
    "export_key_frames",
]
