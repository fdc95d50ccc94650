"""H.264 in and out with PyAV (FFmpeg's libraries, shipped in PyAV's wheels).

:class:`TestPattern` encodes a generated moving pattern, standing in for a camera: real H.264
access units, a key frame every ``gop`` frames, no B-frames (frames leave the encoder in the
order they were captured, as from a live camera). :class:`FrameDecoder` turns access units
back into pictures.

Example:
    >>> pattern = TestPattern(width=64, height=48, gop=5)
    >>> units = [pattern.encode_next() for _ in range(10)]
    >>> [key for _, key in units]
    [True, False, False, False, False, True, False, False, False, False]
    >>> picture = FrameDecoder().decode(units[5][0])[0]  # a key frame decodes on its own
    >>> picture.shape, TestPattern.read_number(picture)
    ((48, 64, 3), 5)
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from xtremehub.plugins import require_extra

__all__ = ["FrameDecoder", "TestPattern"]

Picture = npt.NDArray[np.uint8]


def _av() -> Any:
    require_extra("the video pipeline", "video", "av")
    import av

    return av


class TestPattern:
    """A camera that films a moving gradient with a panning grain, the frame number drawn as a bar code.

    Args:
        width, height: picture size in pixels (even numbers).
        fps: frames per second (sets the encoder's time base).
        gop: frames from one key frame to the next.
        bitrate: target bits per second (None: constant quality).
    """

    __test__ = False  # not a pytest class

    def __init__(
        self, width: int = 320, height: int = 240, *, fps: int = 30, gop: int = 30, bitrate: int | None = None
    ) -> None:
        av = _av()
        self.width, self.height, self.fps, self.gop = width, height, fps, gop
        self._codec = av.CodecContext.create("libx264", "w")
        self._codec.width, self._codec.height = width, height
        self._codec.pix_fmt = "yuv420p"
        self._codec.time_base = Fraction(1, fps)
        self._codec.framerate = Fraction(fps, 1)
        self._codec.gop_size = gop
        self._codec.max_b_frames = 0
        # a key frame exactly every `gop` frames, none in between (no scene-cut detection)
        self._codec.options = {"preset": "ultrafast", "tune": "zerolatency", "scenecut": "0", "min-keyint": str(gop)}
        if bitrate:
            self._codec.bit_rate = bitrate
        self._number = 0
        yy, xx = np.mgrid[0:height, 0:width]
        self._base = (xx * 255) // max(width - 1, 1), (yy * 255) // max(height - 1, 1)
        # a fixed grain that pans with the picture: texture and motion, as real video has
        self._grain = np.random.default_rng(7).integers(0, 48, (height, width), dtype=np.int64)

    def picture(self, number: int) -> Picture:
        """The RGB picture of frame ``number``."""
        gx, gy = self._base
        grain = np.roll(self._grain, 2 * number, axis=1)
        rgb = np.stack([(gx + number * 3) % 208, gy * 3 // 4, (gx // 2 + gy // 2 + number) % 208], axis=-1)
        rgb = (rgb + grain[..., None]).astype(np.uint8)
        bar = self.height // 8
        for bit in range(16):  # the frame number as 16 black/white blocks along the top
            x0 = bit * self.width // 16
            rgb[:bar, x0 : (bit + 1) * self.width // 16] = 255 if number >> bit & 1 else 0
        return rgb

    @staticmethod
    def read_number(picture: Picture) -> int:
        """The frame number drawn in a (decoded, lossy) picture: proof of which frame came out."""
        height, width, _ = picture.shape
        row = picture[height // 16]
        bits = [row[(2 * bit + 1) * width // 32].mean() > 127 for bit in range(16)]
        return sum(1 << bit for bit, on in enumerate(bits) if on)

    def encode_next(self) -> tuple[bytes, bool]:
        """Encode the next frame: ``(access unit, is key frame)``."""
        av = _av()
        frame = av.VideoFrame.from_ndarray(self.picture(self._number), format="rgb24").reformat(format="yuv420p")
        frame.pts = self._number
        self._number += 1
        packets = self._codec.encode(frame)
        if len(packets) != 1:  # zerolatency and no B-frames: one packet per frame, at once
            raise RuntimeError(f"libx264 returned {len(packets)} packets for one frame")
        packet = packets[0]
        return bytes(packet), bool(packet.is_keyframe)


class FrameDecoder:
    """Decodes H.264 access units, in order, into RGB pictures (``height x width x 3`` uint8)."""

    def __init__(self) -> None:
        self._codec = _av().CodecContext.create("h264", "r")

    def decode(self, unit: bytes) -> list[Picture]:
        """The pictures this access unit completes (one, for streams without B-frames)."""
        av = _av()
        return [frame.to_ndarray(format="rgb24") for frame in self._codec.decode(av.Packet(unit))]
