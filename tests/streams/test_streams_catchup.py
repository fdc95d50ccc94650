"""Readers catching up on a long backlog: bigger reads, one read ahead, and still every event once, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.reader import MAX_READ_SIZE, READ_SIZE, ReaderGroup
from xtremehub.streams.server import ServerConfig, serve_background
from xtremehub.testing.streams import read_events

EVENT = 20_000
EVENTS = 400  # 8 MB in two segments: several full reads per segment


class CountingReads:
    """Wraps a segment store and records the ``max_length`` of every read (thread-safe)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> Any:
        with self._lock:
            self.sizes.append(max_length)
        return self._inner.read(segment, offset, max_length, wait=wait)


@pytest.fixture(params=["embedded", "server"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamManager]:
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=3600)
    try:
        if request.param == "embedded":
            yield embedded
        else:
            config = ServerConfig(shutdown_grace=5.0)
            with serve_background(embedded.store, embedded.controller, config) as srv, StreamManager(srv.url) as r:
                yield r
    finally:
        embedded.close()


def _payload(key: int, seq: int) -> bytes:
    return (f"{key}:{seq}:".encode() * EVENT)[:EVENT]


def _fill(manager: StreamManager, keys: int) -> None:
    """Stream cu/s in two segments with EVENTS events over ``keys`` routing keys, and group g on it."""
    manager.create_scope("cu")
    manager.create_stream("cu", "s", scaling_policy=ScalingPolicy.fixed(2))
    with manager.create_writer("cu", "s", max_in_flight=32) as writer:
        for i in range(EVENTS):
            writer.write_event(_payload(i % keys, i // keys), routing_key=f"key-{i % keys}")
        writer.flush()
    manager.create_reader_group("g", "cu", ["s"])


def test_a_reader_catching_up_reads_big_and_ahead_and_loses_nothing(manager: StreamManager) -> None:
    _fill(manager, 3)
    store = CountingReads(manager.store)
    group = ReaderGroup(manager.controller, store, "cu", "g")

    events = read_events(group, EVENTS)

    seen: dict[str, list[int]] = {}
    for event in events:
        assert event.routing_key is not None
        key, seq, _ = event.data.split(b":", 2)
        assert event.data == _payload(int(key), int(seq)), "payload damaged"
        seen.setdefault(event.routing_key, []).append(int(seq))
    assert sorted(seen) == ["key-0", "key-1", "key-2"]
    for seqs in seen.values():
        assert seqs == list(range(len(seqs))), "per-key order broken or events missing"
    assert sum(len(v) for v in seen.values()) == EVENTS
    # The reader grew its reads while behind (1 MiB, 2 MiB, ... at most MAX_READ_SIZE) ...
    assert max(store.sizes) > READ_SIZE
    assert max(store.sizes) <= MAX_READ_SIZE
    # ... so 8 MB took far fewer requests than 1 MiB reads would (8 + the tail polls).
    big = [s for s in store.sizes if s > READ_SIZE]
    assert len(big) >= 2


class GatedReads(CountingReads):
    """Reads of ``slow`` after its first byte wait until ``gate`` opens (at most ``limit`` seconds):
    a segment whose LTS reads lag behind the others'."""

    def __init__(self, inner: Any, slow: str, limit: float) -> None:
        super().__init__(inner)
        self.slow, self.limit, self.gate = slow, limit, threading.Event()

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> Any:
        if segment == self.slow and offset > 0:
            self.gate.wait(self.limit)
        return super().read(segment, offset, max_length, wait=wait)


def test_a_reader_catching_up_takes_the_segment_whose_read_came_back_first(tmp_path: Path) -> None:
    """While one segment's read ahead is slow, the reader delivers the other segments' events
    instead of waiting for it (before: it waited whenever the slow segment's turn came)."""
    with StreamManager.embedded(tmp_path / "data", maintenance_interval=3600) as manager:
        _fill(manager, 2)
        segments = manager.store.list_segments("cu/s/")
        assert len(segments) == 2
        limit = 30.0
        store = GatedReads(manager.store, segments[0], limit)
        group = ReaderGroup(manager.controller, store, "cu", "g")
        counts = dict.fromkeys(segments, 0)
        with group.create_reader("r") as reader:
            fast_total = manager.store.info(segments[1]).length
            fast_read = 0
            started = time.monotonic()
            while fast_read < fast_total:
                event = reader.read_next(timeout=limit)
                assert event is not None
                counts[event.position.segment] += 1
                if event.position.segment == segments[1]:
                    fast_read = event.position.next_offset
            took = time.monotonic() - started
            assert not store.gate.is_set()
            store.gate.set()
            while sum(counts.values()) < EVENTS:
                event = reader.read_next(timeout=limit)
                assert event is not None, "events missing"
                counts[event.position.segment] += 1
        # every event of the fast segment came while the slow one's read was still held back
        assert took < limit / 2, f"the reader waited for the slow segment ({took:.1f} s)"
        assert sum(counts.values()) == EVENTS
