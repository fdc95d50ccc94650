"""The demo's surgery-video part: real H.264 from generated cameras, live decoding, seeking by time.

:func:`run_video_demo` opens an embedded stream store under ``settings.home/video-demo`` (fresh
each run), encodes ``cameras`` x ``seconds`` of a moving test pattern at 30 fps to H.264 (PyAV,
a key frame per second), then writes each camera in real time through a
:class:`~xtremehub.pipelines.video.VideoWriter` (frame durable, key frames indexed) while one
:class:`~xtremehub.pipelines.video.LiveVideo` per camera decodes at the tail. Afterwards a
training-style reader takes the decoded key frames of a time window through the index. The
checks: every frame decoded live, once, in order (the frame number is drawn into each picture
and read back after decoding); every frame read back bit-exact from history; the window starts
at the key frame at or before its start; the window read fetches its key frames' bytes and
nothing else from the frames stream.

Example:
    >>> VideoDemoConfig(seconds=0)
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: video demo: seconds, fps and cameras must be > 0 in VideoDemoConfig(seconds=0, ...)
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from xtremehub.config import Settings
from xtremehub.demo.streams_job import percentiles
from xtremehub.errors import ConfigError
from xtremehub.pipelines.video import LiveVideo, TestPattern, VideoHistory, VideoWriter
from xtremehub.streams import StreamManager

__all__ = ["VideoDemoConfig", "VideoReport", "run_video_demo"]

SCOPE = "operating-room-1"


@dataclass(frozen=True, kw_only=True)
class VideoDemoConfig:
    """Sizes of the video part (the defaults take ~4 s on 2 cores)."""

    seconds: float = 3.0
    cameras: int = 2
    fps: int = 30
    size: tuple[int, int] = (640, 360)

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.fps <= 0 or self.cameras <= 0:
            raise ConfigError(
                f"video demo: seconds, fps and cameras must be > 0 in {self.__class__.__name__}("
                f"seconds={self.seconds:g}, ...)"
            )

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))


@dataclass
class VideoReport:
    """What the video part did and found."""

    config: VideoDemoConfig
    bytes_written: int = 0
    key_frames: int = 0
    ack_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    window_key_frames: int = 0
    window_bytes_read: int = 0
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def summary(self) -> str:
        c = self.config

        def pct(values: list[float]) -> str:
            return "/".join(f"{x:.1f}" for x in percentiles(values)) + " ms"

        lines = [
            "XtremeHub demo: surgery video on streams (H.264 frames + key-frame index, live and by time)",
            f"  cameras      {c.cameras} x {c.fps} fps x {c.seconds:g}s of {c.size[0]}x{c.size[1]} H.264: "
            f"{c.cameras * c.frames} frames, {self.bytes_written / 1e6:.1f} MB, {self.key_frames} key frames indexed",
            f"  write ack    p50/p95/p99 {pct(self.ack_ms)} (frame durable, key frames indexed)",
            f"  live decode  capture -> decoded picture p50/p95/p99 {pct(self.e2e_ms)}",
            f"  by time      {self.window[0]:.1f}-{self.window[1]:.1f}s of each camera: "
            f"{self.window_key_frames} key frames decoded, {self.window_bytes_read / 1e6:.2f} MB read "
            f"({self.window_bytes_read / max(self.bytes_written, 1):.1%} of the video)",
        ]
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return "\n".join(lines)


def run_video_demo(settings: Settings, config: VideoDemoConfig | None = None) -> VideoReport:
    """Record, watch live and seek; see the module docstring."""
    config = config or VideoDemoConfig()
    report = VideoReport(config)
    root = Path(settings.home).expanduser() / "video-demo"
    shutil.rmtree(root, ignore_errors=True)
    patterns = [TestPattern(*config.size, fps=config.fps, gop=config.fps) for _ in range(config.cameras)]
    units = [[p.encode_next() for _ in range(config.frames)] for p in patterns]
    starts = [0] * config.cameras
    decoded: list[list[int]] = [[] for _ in range(config.cameras)]
    with StreamManager.embedded(root) as manager:
        writers = [VideoWriter(manager, SCOPE, f"camera-{c}") for c in range(config.cameras)]
        lives = [LiveVideo(manager, SCOPE, f"camera-{c}") for c in range(config.cameras)]

        def camera(c: int) -> None:
            begin = time.perf_counter()
            for i, (unit, key) in enumerate(units[c]):
                time.sleep(max(0.0, begin + i / config.fps - time.perf_counter()))
                t0, now = time.perf_counter(), time.time_ns()
                starts[c] = starts[c] or now
                writers[c].write_frame(unit, timestamp_ns=now, key_frame=key)
                report.ack_ms.append((time.perf_counter() - t0) * 1e3)

        def viewer(c: int) -> None:
            while len(decoded[c]) < config.frames and (picture := lives[c].next_picture(timeout=10)) is not None:
                decoded[c].append(TestPattern.read_number(picture.picture))

        threads = [threading.Thread(target=f, args=(c,)) for f in (viewer, camera) for c in range(config.cameras)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w, live in zip(writers, lives, strict=True):
            w.close()
            live.close()
            report.bytes_written += w.bytes_written
            report.key_frames += w.key_frames_written
            report.e2e_ms += live.latencies_ms

        exact = in_window = exactly_those = True
        report.window = (config.seconds * 0.4, config.seconds * 0.7)
        for c in range(config.cameras):
            history = VideoHistory(manager, SCOPE, f"camera-{c}")
            exact &= [f.unit for f in history.frames(starts[c])] == [u for u, _ in units[c]]
            history.index_bytes_read = history.frame_bytes_read = 0
            lo, hi = (starts[c] + int(t * 1e9) for t in report.window)
            frames = [d for batch in history.key_frames(lo, hi, batch_size=8) for d in batch]
            report.window_key_frames += len(frames)
            report.window_bytes_read += history.bytes_read
            wanted = {f.timestamp_ns for f in frames}
            exactly_those &= history.frame_bytes_read == sum(
                r.length for r in history.index() if r.timestamp_ns in wanted
            )
            in_window &= bool(frames) and frames[0].timestamp_ns <= lo and all(f.timestamp_ns <= hi for f in frames)
            in_window &= all(TestPattern.read_number(f.picture) % config.fps == 0 for f in frames)
    report.checks = {
        "live readers decoded every frame once, in order": all(d == list(range(config.frames)) for d in decoded),
        "history: every frame read back bit-exact": exact,
        "by time: the window starts at the key frame at or before it": in_window,
        "by time: only the window's key frames were read": exactly_those,
    }
    return report
