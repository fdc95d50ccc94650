"""Streams encrypted at rest: the segment-store conformance suite on an encrypting store, and a
scan of every byte the store directory, WAL and LTS hold after an encrypted run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from xtremehub.config import EncryptionSettings, Settings
from xtremehub.errors import CorruptData
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.testing.segmentstore import MakeStore, SegmentStoreTests
from xtremehub.testing.streams import read_events

FAST = {
    "tiering_interval": 0.05,
    "lts_flush_delay": 0.0,
    "lts_chunk_size": 64 * 1024,
    "wal_file_size": 256 * 1024,
    "lts_read_part_size": 16 * 1024,
}


def _encryption(tmp_path: Path) -> EncryptionSettings:
    return EncryptionSettings(keys=f"file://{tmp_path}/keys/keyring.json", dataset="streams", chunk_size=4096)


class TestEncryptedEmbeddedLocalLTS(SegmentStoreTests):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        config = SegmentStoreConfig(data_dir=tmp_path / "data", encryption=_encryption(tmp_path), **FAST)  # type: ignore[arg-type]
        return lambda: SegmentStore(config)


@pytest.mark.s3
class TestEncryptedEmbeddedS3LTS(SegmentStoreTests):
    @pytest.fixture
    def make_store(self, tmp_path: Path, s3_root: str, s3_settings: Settings) -> MakeStore:
        config = SegmentStoreConfig(
            data_dir=tmp_path / "data",
            lts_url=s3_root + "lts/",
            settings=s3_settings,
            encryption=_encryption(tmp_path),
            **FAST,  # type: ignore[arg-type]
        )
        return lambda: SegmentStore(config)


SAMPLE = b"PATIENT-0042 lung CT frame "  # a plaintext marker every event carries


def _holding(path: Path, needle: bytes) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _run(path: Path, encryption: EncryptionSettings | None) -> tuple[list[bytes], list[Path], list[Path]]:
    """Write 400 events with tiering held back, scan; reopen with tiering, wait for LTS, read
    everything back, scan again. Returns the events and the files holding ``SAMPLE`` each time."""
    events = [SAMPLE + b"%05d " % i + os.urandom(8).hex().encode() * 40 for i in range(400)]
    held = {**FAST, "tiering_interval": 3600.0, "lts_flush_delay": 3600.0, "encryption": encryption}
    with StreamManager.embedded(path, maintenance_interval=3600, **held) as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "ct", scaling_policy=ScalingPolicy.fixed(2))
        with manager.create_writer("lab", "ct", writer_id="w") as writer:
            for i, event in enumerate(events):
                writer.write_event(event, routing_key=str(i % 7))
        in_wal = _holding(path, SAMPLE)  # everything is in the WAL (and memory) only
    with StreamManager.embedded(path, maintenance_interval=3600, **FAST, encryption=encryption) as manager:
        deadline = time.monotonic() + 30
        while not any(path.rglob("*.chunk")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(path.rglob("*.chunk")), "nothing reached LTS"
        got = [e.data for e in read_events(manager.create_reader_group("g", "lab", ["ct"]), len(events))]
        assert sorted(got) == sorted(events)
    return events, in_wal, _holding(path, SAMPLE)


def test_no_plaintext_sample_anywhere_after_an_encrypted_run(tmp_path: Path) -> None:
    # The control: without encryption the same scans find the sample in the WAL, then in LTS.
    _, in_wal, after = _run(tmp_path / "plain", None)
    assert any(p.name.startswith("wal-") for p in in_wal)
    assert any(p.suffix == ".chunk" for p in after)

    events, in_wal, after = _run(tmp_path / "enc", _encryption(tmp_path))
    assert in_wal == []
    assert after == []
    assert _holding(tmp_path / "enc", events[123][-64:]) == []
    chunk = next((tmp_path / "enc").rglob("*.chunk")).read_bytes()
    assert chunk.startswith(b"XHUBENC")
    wals = [p.read_bytes() for p in (tmp_path / "enc").rglob("wal-*.log")]
    assert any(wals)
    assert all(w.startswith(b"XHWALENC") for w in wals if w)  # (an empty one is a prepared next file)


def test_encrypted_wal_refuses_to_open_without_encryption(tmp_path: Path) -> None:
    config = SegmentStoreConfig(data_dir=tmp_path / "data", encryption=_encryption(tmp_path))
    with SegmentStore(config) as store:
        store.create_segment("s")
        store.append("s", b"secret bytes")
    with pytest.raises(CorruptData, match="encrypted WAL file, but no encryption is configured"):
        SegmentStore(SegmentStoreConfig(data_dir=tmp_path / "data"))
