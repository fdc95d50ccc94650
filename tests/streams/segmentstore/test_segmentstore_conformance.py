"""The segment-store conformance suite on the embedded store: local-directory LTS and SeaweedFS LTS."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtremehub.config import Settings
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.testing.segmentstore import MakeStore, SegmentStoreTests

# Small chunks and WAL files so that a few hundred kilobytes exercise rolls, chunking and reclaim.
FAST = {
    "tiering_interval": 0.05,
    "lts_flush_delay": 0.0,
    "lts_chunk_size": 64 * 1024,
    "wal_file_size": 256 * 1024,
    "lts_read_part_size": 16 * 1024,
}


class TestEmbeddedLocalLTS(SegmentStoreTests):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        config = SegmentStoreConfig(data_dir=tmp_path / "data", **FAST)  # type: ignore[arg-type]
        return lambda: SegmentStore(config)


@pytest.mark.s3
class TestEmbeddedS3LTS(SegmentStoreTests):
    @pytest.fixture
    def make_store(self, tmp_path: Path, s3_root: str, s3_settings: Settings) -> MakeStore:
        config = SegmentStoreConfig(
            data_dir=tmp_path / "data",
            lts_url=s3_root + "lts/",
            settings=s3_settings,
            **FAST,  # type: ignore[arg-type]
        )
        return lambda: SegmentStore(config)
