"""Embedded store specifics: data-directory lock, torn WAL tails, WAL reclaim, budgets and config."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xtremehub.errors import BackPressure, ConfigError, CorruptData, DataDirLocked, EventTooLarge, StoreClosed
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.streams.segmentstore.wal import WalFiles
from xtremehub.testing.segmentstore import wait_until

SLOW_TIERING = {"tiering_interval": 3600.0}  # no tiering pass during the test: bytes stay in the WAL

OPEN_IN_CHILD = """
import sys
from xtremehub.errors import DataDirLocked
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
try:
    SegmentStore(SegmentStoreConfig(data_dir=sys.argv[1])).close()
except DataDirLocked as exc:
    print("locked:", exc)
    sys.exit(3)
print("opened")
"""


def _open_in_child(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN_IN_CHILD, str(data_dir)], capture_output=True, text=True, timeout=60, check=False
    )


def test_second_process_gets_data_dir_locked(tmp_path: Path) -> None:
    store = SegmentStore(SegmentStoreConfig(data_dir=tmp_path))
    try:
        child = _open_in_child(tmp_path)
        assert child.returncode == 3, child.stderr
        assert f"owned by process {os.getpid()}" in child.stdout
        with pytest.raises(DataDirLocked, match=str(tmp_path)):
            SegmentStore(SegmentStoreConfig(data_dir=tmp_path))  # a second store in this process too
    finally:
        store.close()
    child = _open_in_child(tmp_path)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "opened"


def _newest_wal(data_dir: Path) -> Path:
    return max(p for p in (data_dir / "wal").glob("wal-*.log") if p.stat().st_size)  # not a prepared empty file


def _write_events(data_dir: Path, n: int) -> list[int]:
    with SegmentStore(SegmentStoreConfig(data_dir=data_dir, **SLOW_TIERING)) as store:  # type: ignore[arg-type]
        store.create_segment("s")
        return [store.append("s", b"event-%03d;" % i, writer_id="w", event_number=i).offset for i in range(n)]


def _damage_cut(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 3)


def _damage_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage_header(path: Path) -> None:
    # keep only 4 bytes of the last record (its header is 9 bytes): a write torn inside its header
    _, records = WalFiles(path.parent).recover()
    os.truncate(path, records[-1].pos + 4)


@pytest.mark.parametrize("damage", [_damage_cut, _damage_flip, _damage_header], ids=["cut", "flipped", "header"])
def test_torn_last_record_is_cut_at_recovery(tmp_path: Path, damage: object) -> None:
    offsets = _write_events(tmp_path, 10)
    wal = _newest_wal(tmp_path)
    size_before = wal.stat().st_size
    damage(wal)  # type: ignore[operator]
    with SegmentStore(SegmentStoreConfig(data_dir=tmp_path, **SLOW_TIERING)) as store:  # type: ignore[arg-type]
        assert store.info("s").length == offsets[9]  # the torn 10th event is gone, nothing else
        assert store.read("s", 0, 1000).data == b"".join(b"event-%03d;" % i for i in range(9))
        assert store.writer_event_number("s", "w") == 8
        assert store.append("s", b"event-009;", writer_id="w", event_number=9).offset == offsets[9]
    assert wal.stat().st_size < size_before  # the damaged tail was cut off the file itself
    with SegmentStore(SegmentStoreConfig(data_dir=tmp_path, **SLOW_TIERING)) as store:  # type: ignore[arg-type]
        assert store.read("s", 0, 1000).data == b"".join(b"event-%03d;" % i for i in range(10))


def test_garbage_after_the_last_record_is_cut(tmp_path: Path) -> None:
    _write_events(tmp_path, 5)
    with open(_newest_wal(tmp_path), "ab") as fh:
        fh.write(os.urandom(1000))
    with SegmentStore(SegmentStoreConfig(data_dir=tmp_path, **SLOW_TIERING)) as store:  # type: ignore[arg-type]
        assert store.read("s", 0, 1000).data == b"".join(b"event-%03d;" % i for i in range(5))


def test_interrupted_roll_falls_back_to_the_previous_file(tmp_path: Path) -> None:
    _write_events(tmp_path, 5)
    newest = _newest_wal(tmp_path)
    number = int(newest.name[4:-4]) + 1
    (newest.parent / f"wal-{number:08d}.log").write_bytes(b"\x01\x02\x03")  # a checkpoint torn while rolling
    with SegmentStore(SegmentStoreConfig(data_dir=tmp_path, **SLOW_TIERING)) as store:  # type: ignore[arg-type]
        assert store.read("s", 0, 1000).data == b"".join(b"event-%03d;" % i for i in range(5))


def test_wal_files_are_deleted_once_tiered(tmp_path: Path) -> None:
    config = SegmentStoreConfig(data_dir=tmp_path, wal_file_size=64 * 1024, tiering_interval=0.05, lts_flush_delay=0)
    with SegmentStore(config) as store:
        store.create_segment("s")
        for i in range(100):
            store.append("s", bytes([i]) * 10_000)
        wait_until(lambda: store.stats().untiered_bytes == 0, what="backlog tiered")
        wait_until(lambda: len(list(config.wal_dir.glob("wal-*.log"))) <= 2, what="WAL files reclaimed")
        assert store.stats().wal_bytes < 200_000
        assert store.read("s", 0, 2_000_000).data == b"".join(bytes([i]) * 10_000 for i in range(100))
        chunks = list((tmp_path / "lts").rglob("*.chunk"))
        assert sum(c.stat().st_size for c in chunks) == 1_000_000
    # TIERED records have no fsync of their own: the files they released were deleted only
    # after a sync, so a reopened store finds every byte (in LTS) from the surviving WAL.
    with SegmentStore(config) as store:
        assert store.stats().untiered_bytes == 0
        assert store.read("s", 0, 2_000_000).data == b"".join(bytes([i]) * 10_000 for i in range(100))


def test_wal_file_removal_shrinks_then_unlinks(tmp_path: Path) -> None:
    wal = WalFiles(tmp_path, fsync=False)
    wal.roll({"segments": []})
    wal.roll({"segments": []})
    old = wal.path(1)
    with open(old, "ab") as fh:
        fh.write(os.urandom(10_000))
    wal.forget(1)
    wal.remove(1, step=3_000)
    assert not old.exists()
    wal.remove(1)  # already gone: nothing to do
    assert [p.name for p in tmp_path.iterdir()] == [wal.path(2).name]
    wal.close()


def test_backlog_budget_throttles_then_raises_back_pressure(tmp_path: Path) -> None:
    # an LTS that cannot be written (a file where the LTS directory should be): everything stays local
    (tmp_path / "not-a-dir").write_bytes(b"")
    config = SegmentStoreConfig(
        data_dir=tmp_path / "data",
        lts_url=str(tmp_path / "not-a-dir" / "lts"),
        memory_budget=30_000,
        disk_budget=50_000,
        tiering_interval=0.02,
        lts_retry_initial=0.01,
        lts_retry_max=0.05,
    )
    with SegmentStore(config) as store:
        store.create_segment("s")
        accepted = 0
        for _ in range(8):  # 80 kB fit the budgets
            store.append("s", b"x" * 10_000, timeout=0.2)
            accepted += 10_000
        with pytest.raises(BackPressure, match="nothing was written"):
            store.append("s", b"x" * 10_000, timeout=0.2)
        assert store.info("s").length == accepted
        stats = store.stats()
        assert not stats.lts_available
        assert stats.untiered_bytes == accepted
        assert stats.cache_bytes <= 30_000
        assert stats.spill_bytes >= 50_000
    with SegmentStore(config) as store:  # nothing acknowledged was lost
        assert store.read("s", 0, 1_000_000).data == b"x" * 80_000


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SegmentStore(SegmentStoreConfig(data_dir=tmp_path))
    store.create_segment("s")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosed):
        store.append("s", b"x")
    with pytest.raises(StoreClosed):
        store.read("s", 0, 1)


def test_bad_config_and_oversize_append(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="wal_file_size"):
        SegmentStoreConfig(data_dir=tmp_path, wal_file_size=0)
    with SegmentStore(SegmentStoreConfig(data_dir=tmp_path, max_append_size=100)) as store:
        store.create_segment("s")
        with pytest.raises(EventTooLarge, match="101 bytes"):
            store.append("s", b"x" * 101)


def test_missing_wal_file_is_reported(tmp_path: Path) -> None:
    _write_events(tmp_path, 3)
    with SegmentStore(SegmentStoreConfig(data_dir=tmp_path, **SLOW_TIERING)) as store:  # type: ignore[arg-type]
        store.append("s", b"more")  # rolled at open: this lands in a newer file than the first events
    ids = WalFiles(tmp_path / "wal").file_ids()
    assert len(ids) >= 2
    (tmp_path / "wal" / f"wal-{ids[0]:08d}.log").unlink()
    with pytest.raises(CorruptData, match="missing"):
        SegmentStore(SegmentStoreConfig(data_dir=tmp_path, **SLOW_TIERING))  # type: ignore[arg-type]


def test_small_backlogs_wait_for_half_a_chunk_or_a_seal(tmp_path: Path) -> None:
    config = SegmentStoreConfig(data_dir=tmp_path, tiering_interval=0.02, lts_flush_delay=3600, lts_chunk_size=100_000)
    with SegmentStore(config) as store:
        store.create_segment("a")
        store.create_segment("b")
        store.append("a", b"a" * 10_000)
        store.append("b", b"b" * 10_000)
        time.sleep(0.3)  # many tiering passes: none may write a 10 kB chunk
        assert store.info("a").tiered_length == 0
        assert not list((tmp_path / "lts").rglob("*.chunk"))
        store.append("a", b"a" * 40_000)  # half a chunk: due
        wait_until(lambda: store.info("a").tiered_length == 50_000, what="half a chunk tiered")
        assert store.info("b").tiered_length == 0
        store.seal("b")  # sealed: nothing more will come, tier it now
        wait_until(lambda: store.info("b").tiered_length == 10_000, what="sealed segment tiered")
        assert sorted(c.stat().st_size for c in (tmp_path / "lts").rglob("*.chunk")) == [10_000, 50_000]


def test_done_callback_may_append_synchronously(tmp_path: Path) -> None:
    """A future's callback runs in the committing thread; appending from it must not deadlock."""
    with SegmentStore(SegmentStoreConfig(data_dir=tmp_path)) as store:
        store.create_segment("s")
        offsets: list[int] = []
        futures = [store.append_async("s", b"a") for _ in range(20)]
        for future in futures:
            future.add_done_callback(lambda f: offsets.append(store.append("s", b"b", timeout=30).offset))
        for future in futures:
            future.result(timeout=60)
        wait_until(lambda: len(offsets) == 20, what="callback appends")
        data = store.read("s", 0, 100).data
        assert sorted(data) == sorted(b"a" * 20 + b"b" * 20)
        assert all(data[o : o + 1] == b"b" for o in offsets)


def test_lts_garbage_is_part_of_the_checkpoint() -> None:
    from xtremehub.streams.segmentstore.state import StoreState

    state = StoreState()
    for name in ("a", "b", "c"):
        state.apply_create(name, f"cid-{name}")
        state.apply_append(name, 0, [(None, None, 10)], file_id=1, pos=0)
        state.apply_tiered(name, f"cid-{name}", 0, 10, f"k-{name}")
    state.apply_append("b", 10, [(None, None, 10)], file_id=1, pos=10)
    state.apply_truncate("b", 10)
    state.apply_merge("a", "c")
    state.apply_delete("a")  # holds its own chunk and c's
    restored = StoreState.from_checkpoint(state.checkpoint())
    assert restored.garbage_keys == {"k-a", "k-b", "k-c"}
    assert restored.dead_segments == {("a", "cid-a")}
    assert restored.merged_away == {("c", "cid-c")}
    assert StoreState.from_checkpoint({"segments": []}).garbage_keys == set()  # older checkpoints
