"""Surgery video on streams: real H.264 frames from 3 cameras at 30 fps through the stream server.

Measures, in one run, on 127.0.0.1 (the server a separate process, as in production):
  * write-ack latency p50/p95/p99 of ``VideoWriter.write_frame`` (frame durable, and indexed
    when it is a key frame), against the baseline of appending the same bytes to a local file
    with ``fdatasync`` per frame (the floor any durable store pays);
  * writer-to-decoder latency p50/p95/p99: capture timestamp -> picture out of a live reader's
    H.264 decoder, one live reader per camera;
  * a training reader's bytes: decoded key frames of a time range (the middle fifth of the
    recording) through the key-frame index, vs the bytes of the whole stream.

Frames are encoded before the clock starts (libx264 through PyAV, 1280x720, a key frame per
second, ~0.4 MB per frame at the default bit rate), then replayed at 30 fps per camera.
Usage:
    .venv/bin/python bench/video_streams.py            # 10 s of video
    .venv/bin/python bench/video_streams.py --quick    # 4 s, 640x360
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from streams_server import ours_server
from xtremehub.pipelines.video import LiveVideo, TestPattern, VideoHistory, VideoWriter
from xtremehub.pipelines.video.framing import encode_frame
from xtremehub.streams import StreamManager

CAMERAS = 3
FPS = 30


def percentiles(values: list[float]) -> str:
    """``p50/p95/p99`` of milliseconds."""
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"{q[49]:6.2f} / {q[94]:6.2f} / {q[98]:6.2f} ms"


def encode(frames: int, width: int, height: int, bitrate: int) -> list[tuple[bytes, bool]]:
    pattern = TestPattern(width, height, fps=FPS, gop=FPS, bitrate=bitrate)
    return [pattern.encode_next() for _ in range(frames)]


def fsync_baseline(tmp: Path, units: list[tuple[bytes, bool]]) -> list[float]:
    """Append each frame to a file and fdatasync it, paced at 30 fps per camera, 3 cameras."""
    latencies: list[list[float]] = [[] for _ in range(CAMERAS)]

    def camera(c: int) -> None:
        fd = os.open(tmp / f"baseline-{c}.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        start = time.perf_counter()
        try:
            for i, (unit, key) in enumerate(units):
                time.sleep(max(0.0, start + i / FPS - time.perf_counter()))
                t0 = time.perf_counter()
                os.write(fd, encode_frame(unit, timestamp_ns=time.time_ns(), flags=int(key)))
                os.fdatasync(fd)
                latencies[c].append((time.perf_counter() - t0) * 1e3)
        finally:
            os.close(fd)

    threads = [threading.Thread(target=camera, args=(c,)) for c in range(CAMERAS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [ms for per in latencies for ms in per]


def ours(url: str, units: list[tuple[bytes, bool]]) -> tuple[list[float], list[float], int, int, int]:
    """Write 3 cameras through the server with live readers; returns ack and end-to-end latencies,
    whole-stream bytes, the training reader's bytes and its key frames."""
    acks: list[list[float]] = [[] for _ in range(CAMERAS)]
    first_ts: list[int] = [0] * CAMERAS
    with StreamManager(url) as manager:
        writers = [VideoWriter(manager, "bench", f"cam{c}") for c in range(CAMERAS)]
        lives = [LiveVideo(manager, "bench", f"cam{c}") for c in range(CAMERAS)]
        decoded = [0] * CAMERAS

        def camera(c: int) -> None:
            start = time.perf_counter()
            for i, (unit, key) in enumerate(units):
                time.sleep(max(0.0, start + i / FPS - time.perf_counter()))
                t0 = time.perf_counter()
                ts = time.time_ns()
                first_ts[c] = first_ts[c] or ts
                writers[c].write_frame(unit, timestamp_ns=ts, key_frame=key)
                acks[c].append((time.perf_counter() - t0) * 1e3)

        def viewer(c: int) -> None:
            while decoded[c] < len(units) and lives[c].next_picture(timeout=10) is not None:
                decoded[c] += 1

        threads = [threading.Thread(target=f, args=(c,)) for f in (viewer, camera) for c in range(CAMERAS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        whole = sum(w.bytes_written for w in writers)
        for w in writers:
            w.close()
        end_to_end = [ms for live in lives for ms in live.latencies_ms]
        for live in lives:
            live.close()
        assert decoded == [len(units)] * CAMERAS, f"live readers decoded {decoded} of {len(units)} frames each"
        # a training job's input: key frames of the middle fifth of each camera's recording
        read = keys = 0
        span = int(len(units) / FPS * 1e9)
        for c in range(CAMERAS):
            history = VideoHistory(manager, "bench", f"cam{c}")
            lo, hi = first_ts[c] + 2 * span // 5, first_ts[c] + 3 * span // 5
            keys += sum(len(batch) for batch in history.key_frames(lo, hi, batch_size=8))
            read += history.bytes_read
    return [ms for per in acks for ms in per], end_to_end, whole, read, keys


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of video per camera")
    parser.add_argument("--quick", action="store_true", help="4 s of 640x360 (shared, loaded machines)")
    args = parser.parse_args()
    seconds, (width, height), bitrate = (
        (4.0, (640, 360), 30_000_000) if args.quick else (args.seconds, (1280, 720), 100_000_000)
    )
    units = encode(int(seconds * FPS), width, height, bitrate)
    mean_kb = statistics.fmean(len(u) for u, _ in units) / 1e3
    print(
        f"{CAMERAS} cameras x {FPS} fps x {seconds:g} s of {width}x{height} H.264 (mean frame {mean_kb:.0f} kB, "
        f"key frame every {FPS}); load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="xhub-bench-video-") as tmp:
        baseline = fsync_baseline(Path(tmp), units)
        with ours_server(Path(tmp)) as url:
            acks, e2e, whole, read, keys = ours(url, units)
    print(f"write ack       file + fdatasync: {percentiles(baseline)} | ours (frame + index): {percentiles(acks)}")
    print(f"writer->decoder ours (live reader, decoded picture): {percentiles(e2e)}")
    print(
        f"training reader {keys} key frames of the middle fifth: read {read / 1e6:.1f} MB of {whole / 1e6:.1f} MB "
        f"({read / whole:.1%} of the streams)"
    )


if __name__ == "__main__":
    main()
