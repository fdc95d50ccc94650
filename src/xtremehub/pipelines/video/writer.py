"""Writing a camera's frames and its key-frame index to streams.

Each camera has a frames stream (one segment: a camera's frames stay in capture order) and
an index byte stream ``<camera>.index`` with one record per key frame. A frame is durable
before its index record is written, so the index never points at a frame that is not there
(after a crash between the two, the key frame is simply not indexed and seeking lands on the
key frame before it).

Example:
    >>> import tempfile
    >>> from xtremehub.streams import StreamManager
    >>> with StreamManager.embedded(tempfile.mkdtemp()) as manager:
    ...     with VideoWriter(manager, "or1", "cam0") as camera:
    ...         pointer = camera.write_frame(b"\\x00\\x00\\x01\\x65", timestamp_ns=5, key_frame=True)
    ...         camera.frames_written, camera.key_frames_written
    (1, 1)
"""

from __future__ import annotations

from xtremehub.pipelines.video.framing import DISCONTINUITY, KEY_FRAME, IndexRecord, encode_frame
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.writer import EventPointer

__all__ = ["VideoWriter", "index_stream_name"]


def index_stream_name(camera: str) -> str:
    """The byte stream holding ``camera``'s key-frame index."""
    return f"{camera}.index"


class VideoWriter:
    """Writes encoded frames of one camera, each durable on return, and indexes its key frames.

    Args:
        manager: the stream manager (embedded or ``tcp://`` server).
        scope: the scope (created if missing).
        camera: the frames stream's name (created with one segment if missing).
    """

    def __init__(self, manager: StreamManager, scope: str, camera: str) -> None:
        manager.create_scope(scope)
        manager.create_stream(scope, camera, scaling_policy=ScalingPolicy.fixed(1))
        self.scope, self.camera = scope, camera
        self._writer = manager.create_writer(scope, camera, writer_id=f"video-{camera}")
        self._index = manager.create_byte_stream(scope, index_stream_name(camera))
        self.frames_written = self.key_frames_written = self.bytes_written = 0

    def write_frame(
        self, unit: bytes, *, timestamp_ns: int, key_frame: bool, discontinuity: bool = False
    ) -> EventPointer:
        """Write one access unit captured at ``timestamp_ns``; returns where it is stored."""
        flags = (KEY_FRAME if key_frame else 0) | (DISCONTINUITY if discontinuity else 0)
        event = encode_frame(unit, timestamp_ns=timestamp_ns, flags=flags)
        pointer = self._writer.write_event(event, routing_key=self.camera).result()
        if key_frame:
            self._index.write(IndexRecord(timestamp_ns, flags, pointer.segment, pointer.offset, pointer.length).pack())
            self._index.flush()
            self.key_frames_written += 1
        self.frames_written += 1
        self.bytes_written += len(event)
        return pointer

    def close(self) -> None:
        """Flush and close the writer and the index."""
        try:
            self._writer.close()
        finally:
            self._index.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
