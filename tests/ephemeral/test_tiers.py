"""Tier policies through the node service: thresholds, spills, read-through, relocate, pins, TTLs, races."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.ephemeral import EphemeralClient, NodeService, TierConfig, client_for
from xtremehub.ephemeral.client import reset_clients
from xtremehub.errors import ConfigError, ObjectNotFound, TierFull

MiB = 1 << 20


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Callable[..., tuple[NodeService, EphemeralClient]]]:
    """Start a node service with the given tier options; stopped after the test."""
    started: list[NodeService] = []

    def start(**options: object) -> tuple[NodeService, EphemeralClient]:
        settings = Settings(home=tmp_path / f"home-{len(started)}")
        options.setdefault("disk_dir", tmp_path / "disk")
        svc = NodeService(TierConfig(**options), settings).start()  # type: ignore[arg-type]
        started.append(svc)
        return svc, client_for(settings)

    yield start
    reset_clients()
    for svc in started:
        svc.stop()


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_memory_over_threshold_spills_lru_to_disk_then_persist(
    node: Callable[..., tuple[NodeService, EphemeralClient]], tmp_path: Path
) -> None:
    persist = tmp_path / "persist"
    _svc, c = node(memory_limit=2 * MiB, disk_limit=2 * MiB, persist_url=str(persist))
    blobs = {f"o{i}": os.urandom(MiB) for i in range(6)}
    for name, data in blobs.items():
        c.put("b", name, data)
        c.read("b", "o0", 0, 1)  # o0 stays the most recently used
    wait_until(lambda: c.stats()["memory_bytes"] <= 2 * MiB and c.stats()["disk_bytes"] <= 2 * MiB)
    stats = c.stats()
    assert stats["demotions"] >= 2
    assert stats["spills"] >= 2
    assert stats["objects_memory"] + stats["objects_disk"] <= 4
    assert c.locate("b", "o0")["tier"] == "memory"  # least recently used went first, not o0
    spilled = sorted(p.name for p in (persist / "b").iterdir() if not p.name.startswith("."))
    assert "o1" in spilled
    assert "o0" not in spilled
    for name, data in blobs.items():  # every object still readable: read-through from the persistency tier
        assert c.read("b", name, 0, 1 << 30) == data
    assert c.stats()["read_through"] >= 2


def test_threshold_as_fraction_of_ram() -> None:
    cfg = TierConfig(memory_limit=0.5)
    import psutil

    assert cfg.memory_bytes() == int(0.5 * psutil.virtual_memory().total)
    with pytest.raises(ConfigError, match="fraction"):
        TierConfig(memory_limit=1.5)


def test_relocate_prefix_to_persist_and_to_another_url(
    node: Callable[..., tuple[NodeService, EphemeralClient]], tmp_path: Path
) -> None:
    _svc, c = node(memory_limit=64 * MiB, persist_url=str(tmp_path / "p"))
    for name in ("ckpt/1", "ckpt/2", "other/x"):
        c.put("b", name, name.encode())
    assert c.relocate("b", "ckpt/") == ["xhub-eph://b/ckpt/1", "xhub-eph://b/ckpt/2"]
    assert (tmp_path / "p" / "b" / "ckpt" / "2").read_bytes() == b"ckpt/2"
    assert not (tmp_path / "p" / "b" / "other").exists()
    assert c.stats()["objects_not_persisted"] == 1
    c.relocate("b", "other/", to=str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "other" / "x").read_bytes() == b"other/x"


def test_relocate_on_close(node: Callable[..., tuple[NodeService, EphemeralClient]], tmp_path: Path) -> None:
    svc, c = node(memory_limit=64 * MiB, persist_url=str(tmp_path / "p"), relocate_on_close=True)
    c.put("b", "result.bin", b"keep me")
    svc.stop()
    assert (tmp_path / "p" / "b" / "result.bin").read_bytes() == b"keep me"


def test_pinned_objects_are_never_spilled(
    node: Callable[..., tuple[NodeService, EphemeralClient]], tmp_path: Path
) -> None:
    _svc, c = node(memory_limit=2 * MiB, persist_url=str(tmp_path / "p"))
    c.put("b", "hot", os.urandom(MiB), pin=True)
    for i in range(4):
        c.put("b", f"cold{i}", os.urandom(MiB))
    wait_until(lambda: c.stats()["memory_bytes"] <= 2 * MiB)
    assert c.locate("b", "hot")["tier"] == "memory"
    assert not (tmp_path / "p" / "b" / "hot").exists()
    c.pin("b", "hot", False)
    c.put("b", "new", os.urandom(2 * MiB))
    wait_until((tmp_path / "p" / "b" / "hot").exists)


def test_ttl_expires_scratch_data(node: Callable[..., tuple[NodeService, EphemeralClient]]) -> None:
    _svc, c = node(memory_limit=64 * MiB)
    c.put("b", "scratch", b"tmp", ttl=0.2)
    c.put("b", "keep", b"stays")
    assert c.read("b", "scratch", 0, 10) == b"tmp"
    time.sleep(0.3)
    with pytest.raises(ObjectNotFound):
        c.read("b", "scratch", 0, 10)
    wait_until(lambda: c.stats()["expired"] >= 1)
    assert [o["key"] for o in c.list("b", "")] == ["keep"]


def test_stats_count_hits_per_tier(node: Callable[..., tuple[NodeService, EphemeralClient]]) -> None:
    _svc, c = node(memory_limit=64 * MiB)
    c.put("b", "k", b"12345")
    before = c.stats()
    for _ in range(3):
        c.read("b", "k", 0, 5)
    after = c.stats()
    assert after["hits_memory"] - before["hits_memory"] == 3
    assert after["memory_bytes"] == 5
    assert after["objects_memory"] == 1
    with pytest.raises(ObjectNotFound):
        c.read("b", "missing", 0, 1)
    assert c.stats()["misses"] == after["misses"] + 1


def test_two_writers_of_one_key_last_complete_write_wins(
    node: Callable[..., tuple[NodeService, EphemeralClient]],
) -> None:
    """Readers only ever see one whole version; the write that completes last is the one that stays."""
    _svc, c = node(memory_limit=256 * MiB)
    versions = [bytes([i]) * (4 * MiB) for i in range(8)]
    done: list[dict[str, object]] = []
    lock = threading.Lock()
    seen: set[bytes] = set()
    stop = threading.Event()

    def write(i: int) -> None:
        info = c.put("b", "contended", versions[i])
        with lock:
            done.append({**info, "i": i})

    def read() -> None:
        while not stop.is_set():
            try:
                data = c.read("b", "contended", 0, 1 << 30)
            except ObjectNotFound:
                continue
            assert data in versions  # never a mix, never partial
            seen.add(data[:1])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    last = max(done, key=lambda d: float(d["mtime"]))  # type: ignore[arg-type]  # commit order
    assert c.head("b", "contended")["etag"] == last["etag"]
    assert c.read("b", "contended", 0, 1 << 30) == versions[int(last["i"])]  # type: ignore[call-overload]
    assert seen


def test_disk_full_by_threshold_without_persistency_is_tier_full(
    node: Callable[..., tuple[NodeService, EphemeralClient]],
) -> None:
    """No tmpfs can be made here: a small disk threshold stands for a full disk (nothing to spill to)."""
    svc, c = node(memory_limit=MiB, disk_limit=MiB, admit_timeout=0.5)
    c.put("b", "a", os.urandom(MiB))
    c.put("b", "b", os.urandom(MiB))
    with pytest.raises(TierFull) as info:
        c.put("b", "c", os.urandom(MiB))
    assert isinstance(info.value, TimeoutError)
    assert "xhub-eph://b/c" in str(info.value)
    assert c.stats()["rejected_writes"] == 1
    assert not any(p.name.startswith("w-") for p in Path(c.tmp_dir).iterdir())  # the refused write left nothing
    c.delete("b", "a")
    c.put("b", "c", b"fits again")
    assert storage.get("xhub-eph://b/c", settings=svc.settings) == b"fits again"
