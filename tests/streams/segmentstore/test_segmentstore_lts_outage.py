"""LTS outage: the S3 server stops while appending; ingestion goes on within the budgets, throttles
past them (nothing written, nothing lost), and the backlog reaches LTS once the server is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from xtremehub.errors import BackPressure, StorageUnavailable
from xtremehub.storage._s3 import S3Store
from xtremehub.streams.segmentstore import AppendResult, SegmentStore, SegmentStoreConfig
from xtremehub.testing.seaweedfs import SeaweedFS
from xtremehub.testing.segmentstore import wait_until

pytestmark = [pytest.mark.s3, pytest.mark.slow]

EVENT = 10_000
MEMORY, DISK = 300_000, 600_000


def _event(i: int) -> bytes:
    return i.to_bytes(4, "big") * (EVENT // 4)


def _read_all(store: SegmentStore, segment: str, start: int = 0) -> bytes:
    """Everything from ``start``; a SeaweedFS that has just restarted may answer a GET with an
    InternalError for a moment (its volume server is still loading; the test settings allow no
    retries), so transient ``StorageUnavailable`` errors are retried for a while."""
    deadline = time.monotonic() + 30
    while True:
        try:
            data = b""
            while chunk := store.read(segment, start + len(data), 1 << 20).data:
                data += chunk
            return data
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_lts_outage_buffers_throttles_and_recovers(tmp_path: Path) -> None:
    weed_dir = tmp_path / "weed"
    server = SeaweedFS.start(weed_dir)  # private: stopping the session server would break other tests
    try:
        settings = server.settings(timeout=2.0, max_retries=0)
        S3Store("xhub-outage", settings.s3).create_bucket()
        config = SegmentStoreConfig(
            data_dir=tmp_path / "data",
            lts_url="s3://xhub-outage/lts/",
            settings=settings,
            memory_budget=MEMORY,
            disk_budget=DISK,
            tiering_interval=0.05,
            lts_flush_delay=0.0,
            lts_chunk_size=64 * 1024,
            wal_file_size=128 * 1024,
            lts_retry_initial=0.1,
            lts_retry_max=0.5,
        )
        with SegmentStore(config) as store:
            store.create_segment("video")
            n = 0
            for _ in range(20):
                store.append("video", _event(n))
                n += 1
            wait_until(lambda: store.stats().untiered_bytes == 0, what="tiering while LTS is up")
            port = server.s3_port

            server.stop()
            # ingestion continues: memory first, then the local spill tier, up to both budgets
            while n * EVENT < 20 * EVENT + MEMORY + DISK:
                store.append("video", _event(n), timeout=5)
                n += 1
            stats = store.stats()
            assert stats.untiered_bytes == MEMORY + DISK
            assert stats.cache_bytes <= MEMORY
            assert stats.spill_bytes >= DISK
            wait_until(lambda: not store.stats().lts_available, what="LTS reported unavailable")

            # past both budgets: back pressure after the timeout, nothing written
            length = store.info("video").length
            with pytest.raises(BackPressure, match="nothing was written"):
                store.append("video", _event(n), timeout=0.3)
            assert store.info("video").length == length

            # a writer blocked by back pressure is visible in stats, and goes on once LTS is back
            outcome: list[AppendResult | BaseException] = []

            def blocked_append() -> None:
                try:
                    outcome.append(store.append("video", _event(n), timeout=120))
                except BaseException as exc:
                    outcome.append(exc)

            writer = threading.Thread(target=blocked_append)
            writer.start()
            wait_until(lambda: store.stats().throttled, what="throttled writer")
            peak_wal = store.stats().wal_bytes
            assert peak_wal >= MEMORY + DISK

            server = SeaweedFS.start(weed_dir, s3_port=port)
            writer.join(timeout=120)
            assert not writer.is_alive()
            assert isinstance(outcome[0], AppendResult), outcome
            assert outcome[0].offset == length
            n += 1

            wait_until(lambda: store.stats().untiered_bytes == 0, timeout=120, what="backlog tiered after the outage")
            wait_until(lambda: store.stats().lts_available, what="LTS reported available")
            wait_until(lambda: store.stats().wal_bytes < peak_wal // 4, what="WAL reclaimed")
            assert store.info("video").tiered_length == n * EVENT
            assert _read_all(store, "video") == b"".join(_event(i) for i in range(n))
        # and from LTS alone after a restart (the WAL holds no data any more)
        with SegmentStore(config) as store:
            assert _read_all(store, "video") == b"".join(_event(i) for i in range(n))
    finally:
        server.stop(graceful=False)  # its data is not needed again


def _lts_keys(store: S3Store) -> set[str]:
    return {info.key for info in store.list("lts/")}


def test_lts_deletes_pending_at_a_restart_are_not_leaked(tmp_path: Path) -> None:
    """Deletes that could not reach LTS before the store stopped are done after it restarts."""
    weed_dir = tmp_path / "weed"
    server = SeaweedFS.start(weed_dir)
    try:
        settings = server.settings(timeout=2.0, max_retries=0)
        bucket = S3Store("xhub-garbage", settings.s3)
        bucket.create_bucket()
        config = SegmentStoreConfig(
            data_dir=tmp_path / "data",
            lts_url="s3://xhub-garbage/lts/",
            settings=settings,
            tiering_interval=0.05,
            lts_flush_delay=0.0,
            lts_chunk_size=64 * 1024,
            lts_retry_initial=0.1,
            lts_retry_max=0.5,
        )
        with SegmentStore(config) as store:
            for name in ("gone", "cut", "target", "source"):
                store.create_segment(name)
                for i in range(20):
                    store.append(name, _event(i))
            wait_until(lambda: store.stats().untiered_bytes == 0, what="everything tiered")
            before = _lts_keys(bucket)
            assert any("/gone/" in k for k in before)
            port = server.s3_port
            server.stop()
            store.delete("gone")
            store.truncate("cut", 15 * EVENT)
            store.merge("target", "source")
        # the store stopped with these deletes pending (LTS was down): only its state knows them
        server = SeaweedFS.start(weed_dir, s3_port=port)
        assert _lts_keys(bucket) == before
        with SegmentStore(config) as store:
            cut_chunks = {k for k in before if "/cut/" in k and k.endswith(".chunk")}
            wait_until(lambda: not any("/gone/" in k for k in _lts_keys(bucket)), what="deleted segment's objects")
            wait_until(lambda: not any("/source/" in k and "metadata" in k for k in _lts_keys(bucket)), what="meta")
            wait_until(lambda: len(cut_chunks & _lts_keys(bucket)) < len(cut_chunks), what="truncated chunks")
            # what is still referenced stayed, and reads the same
            after = _lts_keys(bucket)
            assert {k for k in before if "/source/" in k and k.endswith(".chunk")} <= after
            assert _read_all(store, "target") == b"".join(_event(i) for i in range(20)) * 2
            assert _read_all(store, "cut", 15 * EVENT) == b"".join(_event(i) for i in range(15, 20))
            assert store.stats().untiered_bytes == 0
    finally:
        server.stop(graceful=False)  # its data is not needed again
