"""The stream store embedded with SeaweedFS (S3) as long-term storage: the same suite, plus tiering."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.testing.streams import ManualClock, StreamStoreTests, read_events

pytestmark = pytest.mark.s3


class TestStreamsOnS3LTS(StreamStoreTests):
    @pytest.fixture
    def manager(
        self, tmp_path: Path, s3_root: str, s3_default: Settings, clock: ManualClock
    ) -> Iterator[StreamManager]:
        with StreamManager.embedded(tmp_path / "data", lts=s3_root, maintenance_interval=3600, clock=clock) as manager:
            yield manager


def test_events_reach_s3_and_read_back_after_reopen(tmp_path: Path, s3_root: str, s3_default: Settings) -> None:
    payloads = [bytes([i]) * 10_000 for i in range(50)]
    # lts_flush_delay=0: the last, partly filled chunks tier at once rather than after 5 s
    with StreamManager.embedded(tmp_path / "data", lts=s3_root, lts_flush_delay=0.0) as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "frames", scaling_policy=ScalingPolicy.fixed(2))
        with manager.create_writer("lab", "frames") as writer:
            for i, payload in enumerate(payloads):
                writer.write_event(payload, routing_key=str(i % 3))
        deadline = time.monotonic() + 60
        while manager.store.stats().untiered_bytes and time.monotonic() < deadline:
            time.sleep(0.2)
        assert manager.store.stats().untiered_bytes == 0
    stored = sum(info.size for info in storage.list(s3_root, settings=s3_default))
    assert stored >= sum(len(p) for p in payloads)
    with StreamManager.embedded(tmp_path / "data", lts=s3_root) as manager:
        events = read_events(manager.create_reader_group("g", "lab", ["frames"]), len(payloads))
        assert sorted(e.data for e in events) == sorted(payloads)
