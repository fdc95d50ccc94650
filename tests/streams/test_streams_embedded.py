"""The stream store embedded in-process (local LTS): the conformance suite plus embedded-only checks."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.errors import DataDirLocked, SegmentSealed
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.controller import Controller
from xtremehub.testing.streams import ManualClock, StreamStoreTests, read_events


class TestEmbeddedStreams(StreamStoreTests):
    @pytest.fixture
    def manager(self, tmp_path: Path, clock: ManualClock) -> Iterator[StreamManager]:
        with StreamManager.embedded(tmp_path / "data", maintenance_interval=3600, clock=clock) as manager:
            yield manager


def _open_and_report(path: str, queue: multiprocessing.Queue[str]) -> None:
    try:
        StreamManager.embedded(path).close()
        queue.put("opened")
    except DataDirLocked as exc:
        queue.put(f"locked: {exc}")


def test_second_process_on_the_same_data_dir_gets_data_dir_locked(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "data"):
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[str] = ctx.Queue()
        proc = ctx.Process(target=_open_and_report, args=(str(tmp_path / "data"), queue))
        proc.start()
        answer = queue.get(timeout=60)
        proc.join(60)
    assert answer.startswith("locked"), answer
    with StreamManager.embedded(tmp_path / "data"):  # released on close
        pass


def test_metadata_and_events_survive_a_reopen(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(1))
        with manager.create_writer("lab", "s", writer_id="w") as writer:
            for i in range(5):
                writer.write_event(str(i).encode())
        old = manager.get_stream("lab", "s").active_segments[0]
        manager.controller.scale_stream("lab", "s", [old.name], [(0.0, 0.5), (0.5, 1.0)])
        group = manager.create_reader_group("g", "lab", ["s"])
        assert [int(e.data) for e in read_events(group, 3)] == [0, 1, 2]
    with StreamManager.embedded(tmp_path / "data") as manager:
        info = manager.get_stream("lab", "s")
        assert info.epoch == 1
        assert len(info.active_segments) == 2
        writer = manager.create_writer("lab", "s", writer_id="w")
        with pytest.raises(SegmentSealed):
            manager.store.append(old.name, b"x")
        writer.write_event(b"5")
        writer.close()
        group = manager.get_reader_group("g", "lab")
        assert [int(e.data) for e in read_events(group, 3)] == [3, 4, 5]


def test_recovery_finishes_an_interrupted_commit_then_scale(tmp_path: Path) -> None:
    """Crash between the durable metadata and the store operations: reopening completes them."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s")
        txn = manager.create_transaction_writer("lab", "s").begin_txn()
        txn.write_event(b"in txn")
        txn.flush()
        controller = manager.controller
        assert isinstance(controller, Controller)
        controller._set_state(txn.txn_id, "committing")  # the commit's first durable step, then "death"
    with StreamManager.embedded(tmp_path / "data") as manager:
        assert manager.controller.get_transaction(txn.txn_id).state == "committed"
        segment = manager.get_stream("lab", "s").active_segments[0].name
        controller = manager.controller
        assert isinstance(controller, Controller)
        with controller._db.transaction() as cur:  # a scale's metadata commit, then "death"
            cur.execute("UPDATE segments SET sealed = 1 WHERE scope = 'lab' AND stream = 's'")
            cur.execute("INSERT INTO segments VALUES ('lab', 's', 1, 1, 0.0, 1.0, ?, 0, NULL, 0)", (time.time(),))
            cur.execute("INSERT INTO predecessors VALUES ('lab', 's', 1, 0)")
            cur.execute("UPDATE streams SET epoch = 1, next_number = 2")
    with StreamManager.embedded(tmp_path / "data") as manager:
        assert manager.store.info(segment).sealed
        assert "lab/s/1.#epoch.1" in manager.store.list_segments("lab/s/")
        with manager.create_writer("lab", "s") as writer:
            writer.write_event(b"after")
        events = read_events(manager.create_reader_group("g", "lab", ["s"]), 2)
        assert [e.data for e in events] == [b"in txn", b"after"]


def test_background_maintenance_applies_retention(tmp_path: Path) -> None:
    from xtremehub.streams import RetentionPolicy

    with StreamManager.embedded(tmp_path / "data", maintenance_interval=0.05) as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", retention_policy=RetentionPolicy.by_size(1000, cut_interval=0.05))
        segment = manager.get_stream("lab", "s").active_segments[0].name
        with manager.create_writer("lab", "s") as writer:
            deadline = time.monotonic() + 20
            while manager.store.info(segment).start_offset == 0 and time.monotonic() < deadline:
                writer.write_event(bytes(200))
                time.sleep(0.01)
        assert manager.store.info(segment).start_offset > 0
