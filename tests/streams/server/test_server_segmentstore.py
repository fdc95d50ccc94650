"""The segment-store conformance suite through TCP: RemoteSegmentStore against a served SegmentStore.

``make_store`` (re)opens the store the way a restarted server would: it stops the previous
server, closes its store, opens the data directory again and serves it on a new free port.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.config import Settings
from xtremehub.streams.remote import RemoteSegmentStore
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.streams.segmentstore.contract import SegmentStoreContract
from xtremehub.streams.server import serve_background
from xtremehub.testing.segmentstore import MakeStore, SegmentStoreTests

# Same small sizes as the embedded suite, so a few hundred kilobytes exercise rolls and tiering.
FAST = {
    "tiering_interval": 0.05,
    "lts_flush_delay": 0.0,
    "lts_chunk_size": 64 * 1024,
    "wal_file_size": 256 * 1024,
    "lts_read_part_size": 16 * 1024,
}


@contextlib.contextmanager
def served_store(config: SegmentStoreConfig) -> Iterator[MakeStore]:
    """A ``make_store`` whose every call restarts the server on ``config``'s data directory."""
    running = contextlib.ExitStack()

    def make() -> SegmentStoreContract:
        running.close()
        store = SegmentStore(config)
        running.callback(store.close)
        server = running.enter_context(serve_background(store))
        return RemoteSegmentStore(server.url)

    with running:
        yield make


class TestRemoteLocalLTS(SegmentStoreTests):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[MakeStore]:
        config = SegmentStoreConfig(data_dir=tmp_path / "data", **FAST)  # type: ignore[arg-type]
        with served_store(config) as make:
            yield make


@pytest.mark.s3
class TestRemoteS3LTS(SegmentStoreTests):
    @pytest.fixture
    def make_store(self, tmp_path: Path, s3_root: str, s3_settings: Settings) -> Iterator[MakeStore]:
        config = SegmentStoreConfig(
            data_dir=tmp_path / "data",
            lts_url=s3_root + "server-lts/",
            settings=s3_settings,
            **FAST,  # type: ignore[arg-type]
        )
        with served_store(config) as make:
            yield make
