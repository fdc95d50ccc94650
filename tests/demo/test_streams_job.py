"""The streams part of the demo: its record format, its verifier and a real run on the embedded store."""

from __future__ import annotations

import math
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from xtremehub.config import Settings
from xtremehub.demo.streams_job import (
    HEADER,
    SCOPE,
    RecordVerifier,
    StreamsDemoConfig,
    StreamStats,
    decode_record,
    encode_record,
    percentiles,
    read_history,
    run_streams_demo,
)
from xtremehub.errors import ChecksumMismatch, ConfigError, MalformedRecord
from xtremehub.streams import StreamManager


def frames(camera: int, n: int) -> list[bytes]:
    return [encode_record(camera, i, 1_000 + i, bytes([i % 256]) * (100 + i)) for i in range(n)]


def test_record_roundtrip() -> None:
    data = encode_record(3, 41, 1_765_000_000_123_456_789, b"\x00\xffpixels")
    assert len(data) == HEADER.size + 8
    record = decode_record(data)
    assert (record.source, record.seq, record.timestamp_ns, record.payload) == (
        3,
        41,
        1_765_000_000_123_456_789,
        b"\x00\xffpixels",
    )


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (HEADER.size + 5, "checksum mismatch"),  # a payload byte
        (6, "checksum mismatch"),  # the sequence number: the checksum covers the header too
        (0, "bad magic"),
    ],
)
def test_a_flipped_byte_is_detected(position: int, message: str) -> None:
    data = bytearray(encode_record(1, 7, 123, b"x" * 64))
    data[position] ^= 0x01
    with pytest.raises(MalformedRecord, match=message) as info:
        decode_record(bytes(data), where="xhub-demo/video/0.#epoch.0", offset=4096)
    assert info.value.url == "xhub-demo/video/0.#epoch.0"
    assert info.value.offset == 4096


def test_truncated_records_are_detected() -> None:
    data = encode_record(1, 7, 123, b"x" * 64)
    with pytest.raises(MalformedRecord, match="header says 64"):
        decode_record(data[:-1])
    with pytest.raises(MalformedRecord, match="shorter than"):
        decode_record(data[:10])


def test_verifier_accepts_every_record_once_in_order() -> None:
    check = RecordVerifier("video", "camera", "frame")
    written = {0: frames(0, 5), 1: frames(1, 3)}
    check.expect({cam: len(f) for cam, f in written.items()})
    for i in range(5):  # interleaved cameras: order only matters per camera
        for records in written.values():
            if i < len(records):
                assert check.observe(records[i]) is not None
    assert check.exactly_once
    assert check.in_order
    assert check.intact
    assert check.received == 8
    assert check.problems == []
    assert check.describe_missing() == []


def test_verifier_detects_a_missing_frame() -> None:
    check = RecordVerifier("video", "camera", "frame")
    check.expect({0: 5})
    for i, data in enumerate(frames(0, 5)):
        if i != 3:
            check.observe(data)
    assert not check.exactly_once
    assert check.in_order
    assert check.intact
    assert check.missing() == 1
    assert check.describe_missing() == ["video: 1 frames of camera 0 missing (first 3, last 3)"]


def test_verifier_detects_a_lost_tail() -> None:
    """The last frames never arriving is as much a failure as a gap."""
    check = RecordVerifier("video", "camera", "frame")
    check.expect({0: 5, 1: 2})
    for data in frames(0, 3):
        check.observe(data)
    assert check.missing() == 4  # frames 3-4 of camera 0, all of camera 1
    assert not check.exactly_once


def test_verifier_detects_a_duplicate() -> None:
    check = RecordVerifier("sensors", "sensor", "event")
    check.expect({9: 3})
    data = frames(9, 3)
    for d in (data[0], data[1], data[1], data[2]):
        check.observe(d)
    assert check.duplicates == 1
    assert check.missing() == 0
    assert not check.exactly_once
    assert check.problems == ["sensors: sensor 9 event 1 read twice"]


def test_verifier_detects_reordering_per_source() -> None:
    check = RecordVerifier("video", "camera", "frame")
    check.expect({0: 3})
    data = frames(0, 3)
    for d in (data[0], data[2], data[1]):
        check.observe(d)
    assert check.exactly_once  # everything arrived once ...
    assert not check.in_order  # ... but frame 1 after frame 2
    assert check.problems == ["video: camera 0 frame 1 after frame 2"]


def test_verifier_counts_a_corrupted_frame_as_corrupt_and_missing() -> None:
    check = RecordVerifier("video", "camera", "frame")
    check.expect({0: 3})
    data = frames(0, 3)
    bad = bytearray(data[1])
    bad[-1] ^= 0xFF
    for d in (data[0], bytes(bad), data[2]):
        check.observe(d, segment="xhub-demo/video/1.#epoch.0", offset=777)
    assert not check.intact
    assert not check.exactly_once
    assert check.corrupt == 1
    assert check.missing() == 1
    assert "xhub-demo/video/1.#epoch.0: checksum mismatch" in check.problems[0]
    assert "offset 777" in check.problems[0]


def test_verifier_detects_records_nobody_wrote() -> None:
    check = RecordVerifier("sensors", "sensor", "event")
    check.expect({0: 1})
    check.observe(encode_record(0, 0, 1, b"{}"))
    check.observe(encode_record(0, 1, 1, b"{}"))  # beyond what sensor 0 wrote
    check.observe(encode_record(5, 0, 1, b"{}"))  # a sensor that never wrote
    assert check.unexpected() == 2
    assert not check.exactly_once


def test_percentiles() -> None:
    assert percentiles([float(v) for v in range(1, 101)]) == pytest.approx((50.5, 95.05, 99.01))
    assert percentiles([4.0]) == (4.0, 4.0, 4.0)
    assert all(math.isnan(p) for p in percentiles([]))


@pytest.mark.parametrize(
    "bad",
    [{"seconds": 0}, {"cameras": 0}, {"frame_bytes": (500, 100)}, {"sensor_rate": -1}, {"video_segments": 0}],
)
def test_config_refuses_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="streams demo"):
        StreamsDemoConfig(**bad)  # type: ignore[arg-type]


def test_runs_twice_on_the_same_home(tmp_path: Path) -> None:
    """The data home persists between runs: the second run starts from fresh streams and reads only its own data."""
    settings = Settings(home=tmp_path)
    config = StreamsDemoConfig(seconds=0.5, cameras=2, fps=10, frame_bytes=(1000, 3000), sensors=5, sensor_rate=40)
    for _ in range(2):
        report = run_streams_demo(settings, config)
        assert report.ok, report.summary()
        assert (report.video.history_events, report.sensors.history_events) == (10, 20)
        assert (report.video.events, report.sensors.events) == (10, 20)
        assert len(report.video.e2e_ms) == 10
        assert len(report.sensors.e2e_ms) == 20
        assert report.untiered_after == 0
    summary = report.summary()
    assert summary.count(": OK") == 7
    assert "FAILED" not in summary


def test_a_frame_corrupted_in_lts_is_caught_by_the_historical_read(tmp_path: Path) -> None:
    """Flip one payload byte of the first frame in its LTS chunk: the historical read fails on the
    chunk's checksum, naming the segment and the chunk object, before any damaged frame is delivered
    (the frames' own checksums, checked by the verifier, are the second line: see above)."""
    config = StreamsDemoConfig(seconds=0.5, cameras=1, fps=10, frame_bytes=(5000, 5000), sensors=2, sensor_rate=20)
    report = run_streams_demo(Settings(home=tmp_path), config)
    assert report.ok, report.summary()
    chunks = sorted(Path(report.lts_url).glob(f"segments/{quote(f'{SCOPE}/video/', safe='')}*/*/*.chunk"))
    first = next(c for c in chunks if c.name == f"{0:020d}.chunk" and c.stat().st_size)  # the segment camera-0 uses
    data = bytearray(first.read_bytes())
    data[1000] ^= 0x40  # inside frame 0's 5,000-byte payload (event framing and record header take < 50 bytes)
    first.write_bytes(bytes(data))

    verifier = RecordVerifier("video", "camera", "frame")
    verifier.expect({0: 5})
    stats = StreamStats("video")
    with (
        StreamManager.embedded(report.data_dir, report.lts_url) as manager,
        pytest.raises(ChecksumMismatch) as info,
    ):
        read_history(manager, "video", verifier, stats, time.monotonic() + 30, group_name="after-corruption")
    assert info.value.segment is not None
    assert info.value.segment.startswith(f"{SCOPE}/video/")
    assert info.value.segment_offset == 0  # the first block of the chunk holds the flipped byte
    assert first.name in str(info.value)
    assert verifier.corrupt == 0  # nothing damaged reached the application
