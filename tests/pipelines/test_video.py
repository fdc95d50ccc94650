"""Surgery video on streams: frames round-trip, seeking by time, live readers, corrupt headers."""

from __future__ import annotations

import threading
import time

import pytest

from xtremehub.errors import CorruptData, InvalidStreamArgument
from xtremehub.pipelines.video import LiveVideo, TestPattern, VideoHistory, VideoWriter
from xtremehub.pipelines.video.framing import KEY_FRAME, decode_frame, encode_frame
from xtremehub.streams import StreamManager

GOP = 10


frame_number = TestPattern.read_number


def record(manager: StreamManager, frames: int, *, camera: str = "cam0") -> list[tuple[bytes, bool, int]]:
    """Write ``frames`` frames of a test pattern (one every 33 ms of capture time)."""
    pattern, written = TestPattern(96, 64, gop=GOP), []
    with VideoWriter(manager, "or1", camera) as writer:
        for i in range(frames):
            unit, key = pattern.encode_next()
            writer.write_frame(unit, timestamp_ns=1_000_000_000 + i * 33_000_000, key_frame=key)
            written.append((unit, key, 1_000_000_000 + i * 33_000_000))
    return written


def test_frames_round_trip_bit_exact_and_decode_to_their_pictures(manager: StreamManager) -> None:
    written = record(manager, 35)
    history = VideoHistory(manager, "or1", "cam0")
    frames = list(history.frames(written[0][2]))
    assert [(f.unit, f.header.key_frame, f.timestamp_ns) for f in frames] == written
    assert [i for i, (_, key, _) in enumerate(written) if key] == [0, 10, 20, 30]
    assert len(history) == 4
    from xtremehub.pipelines.video import FrameDecoder

    decoder = FrameDecoder()
    numbers = [frame_number(p) for f in frames for p in decoder.decode(f.unit)]
    assert numbers == list(range(35))


def test_seek_returns_the_key_frame_at_or_before_any_time(manager: StreamManager) -> None:
    written = record(manager, 45)
    keys = [t for _, key, t in written if key]
    history = VideoHistory(manager, "or1", "cam0")
    for _, _, t in written:
        for probe in (t, t + 1):
            assert history.seek(probe).timestamp_ns == max(k for k in keys if k <= probe)
    assert history.seek(10**19).timestamp_ns == keys[-1]
    with pytest.raises(InvalidStreamArgument, match="before the first key frame"):
        history.seek(written[0][2] - 1)
    # a window starting mid-GOP begins at its key frame, so a decoder can show every frame in it
    window = list(history.frames(written[23][2], written[27][2]))
    assert [f.timestamp_ns for f in window] == [t for _, _, t in written[20:28]]
    assert window[0].header.key_frame


def test_key_frame_batches_read_only_the_bytes_they_need(manager: StreamManager) -> None:
    written = record(manager, 90)
    history = VideoHistory(manager, "or1", "cam0")
    batches = list(history.key_frames(written[31][2], written[72][2], batch_size=2))
    got = [(d.timestamp_ns, frame_number(d.picture)) for batch in batches for d in batch]
    assert got == [(written[i][2], i) for i in (30, 40, 50, 60, 70)]
    assert [len(b) for b in batches] == [2, 2, 1]
    whole = sum(len(encode_frame(u, timestamp_ns=t)) for u, _, t in written)
    key_bytes = sum(len(encode_frame(written[i][0], timestamp_ns=0)) for i in (30, 40, 50, 60, 70))
    assert key_bytes <= history.frame_bytes_read < key_bytes + 5 * 64  # + each event's stream framing
    assert history.index_bytes_read <= 16 * 32  # bisection and the window's records, not the whole index
    assert history.bytes_read < whole / 4


def test_a_live_reader_joining_mid_stream_starts_at_a_key_frame(manager: StreamManager) -> None:
    pattern = TestPattern(96, 64, gop=GOP)
    with VideoWriter(manager, "or1", "cam0") as writer:
        for _ in range(4):  # the reader joins in the middle of the first GOP
            unit, key = pattern.encode_next()
            writer.write_frame(unit, timestamp_ns=time.time_ns(), key_frame=key)
        with LiveVideo(manager, "or1", "cam0", start="tail") as live:

            def camera() -> None:
                for _ in range(4, 25):
                    unit, key = pattern.encode_next()
                    writer.write_frame(unit, timestamp_ns=time.time_ns(), key_frame=key)

            thread = threading.Thread(target=camera)
            thread.start()
            pictures = [p for _ in range(15) if (p := live.next_picture(timeout=10)) is not None]
            thread.join()
    assert [frame_number(p.picture) for p in pictures] == list(range(10, 25))
    assert live.skipped == 6  # frames 4-9: no key frame to start from
    assert len(live.latencies_ms) == 15
    assert all(0 <= ms < 10_000 for ms in live.latencies_ms)


def test_a_corrupt_frame_header_names_its_position(manager: StreamManager) -> None:
    written = record(manager, 3)
    with manager.create_writer("or1", "cam0") as raw:
        good = encode_frame(b"\x00\x00\x01\x65", timestamp_ns=written[-1][2] + 1, flags=KEY_FRAME)
        bad = bytearray(good)
        bad[8] ^= 0xFF  # a timestamp byte: the header's CRC no longer matches
        pointer = raw.write_event(bytes(bad), routing_key="cam0").result()
    with pytest.raises(CorruptData, match="CRC-32") as info:
        list(VideoHistory(manager, "or1", "cam0").frames(written[0][2]))
    assert info.value.url == pointer.segment
    assert info.value.offset == pointer.offset
    with pytest.raises(CorruptData, match="not a video frame"):
        decode_frame(b"ZZ" + good[2:], where="s", offset=7)
    with pytest.raises(CorruptData, match="payload bytes"):
        decode_frame(good[:-1], where="s", offset=7)
