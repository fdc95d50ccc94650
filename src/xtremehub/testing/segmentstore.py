"""Segment-store conformance suite: every implementation (embedded, remote client) passes it.

Subclass :class:`SegmentStoreTests` and provide ``make_store``: a callable that opens the
store under test. Calling it again after the previous store was closed must reopen the
*same* store (same data directory and LTS): that is how the suite tests durability across
restarts. Tiering should be quick in the store under test (``tiering_interval`` well under a
second, ``lts_flush_delay=0``) so that the LTS tests finish in seconds::

    class TestEmbedded(SegmentStoreTests):
        @pytest.fixture
        def make_store(self, tmp_path) -> Callable[[], SegmentStoreContract]:
            config = SegmentStoreConfig(data_dir=tmp_path, tiering_interval=0.05, lts_flush_delay=0)
            return lambda: SegmentStore(config)
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from xtremehub.errors import (
    ConditionalCheckFailed,
    EventTooLarge,
    InvalidOffset,
    SegmentNotFound,
    SegmentSealed,
    SegmentTruncated,
    StreamError,
)
from xtremehub.streams.segmentstore.contract import AppendOutcome, AppendResult, SegmentStoreContract

__all__ = ["MakeStore", "SegmentStoreTests", "wait_until"]

MakeStore = Callable[[], SegmentStoreContract]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached after {timeout:.0f}s")
        time.sleep(0.02)


def _payload(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size)


def _stored(outcomes: list[AppendOutcome]) -> list[AppendResult]:
    """The outcomes of a batch, all of which must be stored (fails the test on a refused event)."""
    for outcome in outcomes:
        if not isinstance(outcome, AppendResult):
            raise AssertionError(f"event refused: {outcome!r}")
    return outcomes  # type: ignore[return-value]


def _read_all(store: SegmentStoreContract, segment: str, offset: int = 0) -> bytes:
    out = bytearray()
    while True:
        result = store.read(segment, offset + len(out), 1 << 20)
        if not result.data:
            return bytes(out)
        out += result.data


class SegmentStoreTests:
    """The contract of :class:`~xtremehub.streams.segmentstore.contract.SegmentStoreContract`."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        raise NotImplementedError("subclasses provide a callable that opens (or reopens) the store under test")

    @pytest.fixture
    def store(self, make_store: MakeStore) -> Iterator[SegmentStoreContract]:
        store = make_store()
        try:
            yield store
        finally:
            store.close()

    @staticmethod
    def _restart(store: SegmentStoreContract, make_store: MakeStore) -> SegmentStoreContract:
        store.close()
        return make_store()

    # -- segments -------------------------------------------------------------------------
    def test_create_list_and_info(self, store: SegmentStoreContract) -> None:
        assert store.create_segment("sc/st/0.#epoch.0") is True
        assert store.create_segment("sc/st/0.#epoch.0") is False
        assert store.create_segment("sc/st/1.#epoch.0") is True
        assert store.create_segment("other/x/0") is True
        assert store.list_segments("sc/") == ["sc/st/0.#epoch.0", "sc/st/1.#epoch.0"]
        assert len(store.list_segments()) == 3
        info = store.info("sc/st/0.#epoch.0")
        assert (info.name, info.start_offset, info.length, info.sealed) == ("sc/st/0.#epoch.0", 0, 0, False)

    def test_unknown_segment_is_segment_not_found(self, store: SegmentStoreContract) -> None:
        for call in (
            lambda: store.append("nope", b"x"),
            lambda: store.read("nope", 0, 10),
            lambda: store.info("nope"),
            lambda: store.seal("nope"),
            lambda: store.truncate("nope", 0),
            lambda: store.delete("nope"),
        ):
            with pytest.raises(SegmentNotFound, match="nope"):
                call()

    # -- append and read ------------------------------------------------------------------
    def test_append_returns_offsets_and_reads_back(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        events = [_payload(i, 10 + 37 * i) for i in range(20)]
        offsets = [store.append("s", e).offset for e in events]
        expected = [sum(len(e) for e in events[:i]) for i in range(20)]
        assert offsets == expected
        assert store.info("s").length == sum(len(e) for e in events)
        assert _read_all(store, "s") == b"".join(events)
        middle = store.read("s", offsets[5] + 3, 50)
        assert middle.offset == offsets[5] + 3
        assert middle.data == b"".join(events)[offsets[5] + 3 : offsets[5] + 53]

    def test_read_past_length_is_invalid_offset(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"abc")
        assert store.read("s", 3, 10).data == b""
        with pytest.raises(InvalidOffset):
            store.read("s", 4, 10)

    def test_concurrent_async_appends_are_contiguous(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        futures = [store.append_async("s", _payload(i, 100 + i)) for i in range(300)]
        results = [f.result(timeout=60) for f in futures]
        assert [r.offset for r in results] == [sum(100 + j for j in range(i)) for i in range(300)]
        data = _read_all(store, "s")
        for i, r in enumerate(results):
            assert data[r.offset : r.offset + r.length] == _payload(i, 100 + i)

    def test_mixed_async_and_sync_appends_keep_order(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        futures = [store.append_async("s", b"a%03d;" % i) for i in range(50)]
        sync = store.append("s", b"sync;")
        assert sync.offset == 250
        assert [f.result(timeout=60).offset for f in futures] == [5 * i for i in range(50)]
        assert _read_all(store, "s") == b"".join(b"a%03d;" % i for i in range(50)) + b"sync;"

    def test_threads_keep_their_own_order(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        n_threads, per_thread = 4, 50
        offsets: dict[int, list[int]] = {t: [] for t in range(n_threads)}

        def work(t: int) -> None:
            for i in range(per_thread):
                offsets[t].append(store.append("s", f"{t}:{i:04d};".encode()).offset)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        data = _read_all(store, "s").decode()
        events = [e for e in data.split(";") if e]
        assert len(events) == n_threads * per_thread
        for t in range(n_threads):
            mine = [int(e.split(":")[1]) for e in events if e.startswith(f"{t}:")]
            assert mine == list(range(per_thread))
            assert offsets[t] == sorted(offsets[t])

    def test_large_appends_and_oversize_error(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        big = _payload(7, 3 * 1024 * 1024)
        store.append("s", big)
        assert _read_all(store, "s") == big
        with pytest.raises(EventTooLarge, match="'s'"):
            store.append("s", b"\0" * (64 * 1024 * 1024))
        assert store.info("s").length == len(big)

    def test_tail_read_waits_for_data(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"head")
        assert store.read("s", 4, 10, wait=0.05).data == b""
        timer = threading.Timer(0.2, lambda: store.append("s", b"tail"))
        timer.start()
        try:
            result = store.read("s", 4, 10, wait=30)
        finally:
            timer.join()
        assert result.data == b"tail"

    # -- conditional appends and exactly-once writers -------------------------------------
    def test_conditional_append(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        assert store.append("s", b"abc", expected_offset=0).offset == 0
        with pytest.raises(ConditionalCheckFailed, match="'s'"):
            store.append("s", b"def", expected_offset=0)
        assert store.append("s", b"def", expected_offset=3).offset == 3
        assert _read_all(store, "s") == b"abcdef"

    def test_refused_conditional_append_does_not_count_as_written(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        refused = store.append_async("s", b"x", writer_id="w", event_number=1, expected_offset=99)
        retried = store.append_async("s", b"x", writer_id="w", event_number=1, expected_offset=0)
        with pytest.raises(ConditionalCheckFailed):
            refused.result(timeout=60)
        assert not retried.result(timeout=60).duplicate
        assert store.writer_event_number("s", "w") == 1
        assert _read_all(store, "s") == b"x"

    def test_duplicate_event_numbers_are_not_written_again(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        assert store.writer_event_number("s", "w1") is None
        first = store.append("s", b"one", writer_id="w1", event_number=1)
        store.append("s", b"two", writer_id="w1", event_number=2)
        retry = store.append("s", b"two", writer_id="w1", event_number=2)
        older = store.append("s", b"one", writer_id="w1", event_number=1)
        assert (first.duplicate, retry.duplicate, older.duplicate) == (False, True, True)
        assert retry.offset == 3  # the offset of the writer's last stored event
        other = store.append("s", b"two", writer_id="w2", event_number=2)
        assert not other.duplicate
        assert store.writer_event_number("s", "w1") == 2
        assert store.writer_event_number("s", "w2") == 2
        assert _read_all(store, "s") == b"onetwotwo"

    def test_duplicates_within_one_group_commit(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        futures = [store.append_async("s", b"E%d" % (i // 2), writer_id="w", event_number=i // 2) for i in range(200)]
        results = [f.result(timeout=60) for f in futures]
        assert sum(r.duplicate for r in results) == 100
        assert _read_all(store, "s") == b"".join(b"E%d" % i for i in range(100))

    def test_dedup_survives_restart(self, store: SegmentStoreContract, make_store: MakeStore) -> None:
        store.create_segment("s")
        for i in range(1, 6):
            store.append("s", b"e%d" % i, writer_id="stable", event_number=i)
        store = self._restart(store, make_store)
        try:
            assert store.writer_event_number("s", "stable") == 5
            assert store.append("s", b"e5", writer_id="stable", event_number=5).duplicate
            assert not store.append("s", b"e6", writer_id="stable", event_number=6).duplicate
            assert _read_all(store, "s") == b"e1e2e3e4e5e6"
        finally:
            store.close()

    # -- batched appends (append_many) ---------------------------------------------------
    def test_append_many_keeps_order_and_offsets(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"head")
        events = [_payload(i, 5 + 31 * i) for i in range(40)]
        outcomes = _stored(store.append_many("s", events, writer_id="w", first_event_number=10).result(timeout=60))
        assert [(o.offset, o.length, o.duplicate) for o in outcomes] == [
            (4 + sum(len(e) for e in events[:i]), len(e), False) for i, e in enumerate(events)
        ]
        assert store.writer_event_number("s", "w") == 49
        plain = _stored(store.append_many("s", [b"x", b"y"]).result(timeout=60))  # no writer id: no dedup
        assert [o.offset for o in plain] == [4 + sum(map(len, events)), 5 + sum(map(len, events))]
        assert _read_all(store, "s") == b"head" + b"".join(events) + b"xy"
        assert store.append_many("s", []).result(timeout=60) == []

    def test_append_many_sent_twice_is_stored_once(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        events = [b"a1", b"b22", b"c333"]
        first = _stored(store.append_many("s", events, writer_id="w", first_event_number=1).result(timeout=60))
        again = store.append_many("s", events, writer_id="w", first_event_number=1).result(timeout=60)
        assert not any(o.duplicate for o in first)
        assert all(isinstance(o, AppendResult) and o.duplicate for o in again)
        assert _read_all(store, "s") == b"a1b22c333"

    def test_append_many_overlapping_a_stored_prefix_stores_the_rest(
        self, store: SegmentStoreContract, make_store: MakeStore
    ) -> None:
        store.create_segment("s")
        store.append_many("s", [b"e1", b"e2", b"e3"], writer_id="w", first_event_number=1).result(timeout=60)
        store = self._restart(store, make_store)  # the writer's numbers are durable with the data
        try:
            retry = store.append_many("s", [b"e2", b"e3", b"e4", b"e5"], writer_id="w", first_event_number=2)
            outcomes = _stored(retry.result(timeout=60))
            assert [o.duplicate for o in outcomes] == [True, True, False, False]
            assert [o.offset for o in outcomes[2:]] == [6, 8]
            assert store.writer_event_number("s", "w") == 5
            assert _read_all(store, "s") == b"e1e2e3e4e5"
        finally:
            store.close()

    def test_append_many_refuses_oversize_events_alone(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        events = [b"first", b"\1" * (10 * 1024 * 1024), b"middle", b"\2" * (64 * 1024 * 1024), b"last"]
        outcomes = store.append_many("s", events, writer_id="w", first_event_number=1).result(timeout=120)
        assert [type(o).__name__ for o in outcomes] == [
            "AppendResult",
            "EventTooLarge",
            "AppendResult",
            "EventTooLarge",
            "AppendResult",
        ]
        assert "'s'" in str(outcomes[1])
        assert [o.offset for o in outcomes if isinstance(o, AppendResult)] == [0, 5, 11]
        assert store.writer_event_number("s", "w") == 5  # the stored events keep their own numbers
        assert _read_all(store, "s") == b"firstmiddlelast"

    def test_append_many_to_sealed_or_missing_segment_refuses_every_event(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"12345")
        store.seal("s")
        sealed = store.append_many("s", [b"a", b"b"], writer_id="w", first_event_number=1).result(timeout=60)
        assert [type(o) for o in sealed] == [SegmentSealed, SegmentSealed]
        missing = store.append_many("nope", [b"a"], writer_id="w", first_event_number=1).result(timeout=60)
        assert isinstance(missing[0], SegmentNotFound)
        assert store.info("s").length == 5
        with pytest.raises(InvalidOffset, match="together"):
            store.append_many("s", [b"a"], writer_id="w")

    def test_append_many_batches_interleave_in_order(self, store: SegmentStoreContract) -> None:
        for name in ("a", "b"):
            store.create_segment(name)
        futures: list[Future[Any]] = []
        for i in range(30):
            events = [b"%d.%d;" % (i, j) for j in range(i % 5 + 1)]
            futures.append(store.append_many("ab"[i % 2], events, writer_id="w", first_event_number=100 * i))
            futures.append(store.append_async("ab"[i % 2], b"s%d;" % i))
        for future in futures:
            future.result(timeout=60)
        for k, name in enumerate("ab"):
            expected = b"".join(
                b"".join(b"%d.%d;" % (i, j) for j in range(i % 5 + 1)) + b"s%d;" % i for i in range(k, 30, 2)
            )
            assert _read_all(store, name) == expected

    def test_everything_survives_restart(self, store: SegmentStoreContract, make_store: MakeStore) -> None:
        for name in ("a", "b", "c"):
            store.create_segment(name)
        for i in range(60):
            store.append("abc"[i % 3], _payload(i, 500))
        store.seal("b")
        store.truncate("c", 1000)
        store = self._restart(store, make_store)
        try:
            assert store.list_segments() == ["a", "b", "c"]
            assert _read_all(store, "a") == b"".join(_payload(i, 500) for i in range(0, 60, 3))
            assert store.info("b").sealed
            assert store.info("c").start_offset == 1000
            assert _read_all(store, "c", 1000) == b"".join(_payload(i, 500) for i in range(2, 60, 3))[1000:]
        finally:
            store.close()

    # -- seal -----------------------------------------------------------------------------
    def test_seal(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"12345")
        assert store.seal("s") == 5
        assert store.seal("s") == 5  # idempotent
        with pytest.raises(SegmentSealed, match="'s'"):
            store.append("s", b"more")
        assert store.info("s").sealed
        first = store.read("s", 0, 100)
        assert first.data == b"12345"
        assert first.end_of_segment
        assert store.read("s", 5, 100).end_of_segment
        assert store.read("s", 5, 100, wait=5).data == b""

    def test_seal_wakes_tail_readers(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        timer = threading.Timer(0.2, lambda: store.seal("s"))
        timer.start()
        try:
            result = store.read("s", 0, 10, wait=30)
        finally:
            timer.join()
        assert result.end_of_segment
        assert result.data == b""

    # -- merge ----------------------------------------------------------------------------
    def test_merge_appends_source_and_deletes_it(self, store: SegmentStoreContract) -> None:
        store.create_segment("t")
        store.create_segment("t#txn")
        store.append("t", b"before-")
        store.append("t#txn", b"txn-1,")
        store.append("t#txn", b"txn-2")
        store.seal("t#txn")
        assert store.merge("t", "t#txn") == 7
        assert store.merge("t", "t#txn") == 7  # a retry after the commit is idempotent
        assert store.list_segments("t") == ["t"]
        store.append("t", b"-after")
        assert _read_all(store, "t") == b"before-txn-1,txn-2-after"
        with pytest.raises(SegmentNotFound):
            store.merge("t", "never-existed")

    def test_merge_into_sealed_target_fails(self, store: SegmentStoreContract) -> None:
        store.create_segment("t")
        store.create_segment("src")
        store.append("src", b"x")
        store.seal("src")
        store.seal("t")
        with pytest.raises(SegmentSealed):
            store.merge("t", "src")
        assert store.list_segments() == ["src", "t"]

    def test_merge_is_atomic_for_readers(self, store: SegmentStoreContract) -> None:
        store.create_segment("t")
        store.append("t", b"T" * 1000)
        sources = []
        for k in range(5):
            name = f"src{k}"
            store.create_segment(name)
            for _i in range(20):
                store.append(name, bytes([65 + k]) * 500)
            store.seal(name)
            sources.append(name)
        seen: set[int] = set()
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.add(store.info("t").length)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for name in sources:
                store.merge("t", name)
        finally:
            stop.set()
            watcher.join()
        assert seen <= {1000 + 10_000 * k for k in range(6)}, sorted(seen)
        data = _read_all(store, "t")
        assert data == b"T" * 1000 + b"".join(bytes([65 + k]) * 10_000 for k in range(5))

    def test_merge_survives_restart(self, store: SegmentStoreContract, make_store: MakeStore) -> None:
        store.create_segment("t")
        store.create_segment("s")
        store.append("t", b"target|")
        store.append("s", b"source")
        store.seal("s")
        store.merge("t", "s")
        store = self._restart(store, make_store)
        try:
            assert store.list_segments() == ["t"]
            assert _read_all(store, "t") == b"target|source"
            assert store.merge("t", "s") == 7
        finally:
            store.close()

    # -- truncate and delete --------------------------------------------------------------
    def test_truncate(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"0123456789")
        store.truncate("s", 4)
        store.truncate("s", 2)  # below the start: no-op
        assert store.info("s").start_offset == 4
        with pytest.raises(SegmentTruncated, match="'s'"):
            store.read("s", 3, 10)
        assert store.read("s", 4, 100).data == b"456789"
        with pytest.raises(InvalidOffset):
            store.truncate("s", 11)
        store.append("s", b"AB")
        assert _read_all(store, "s", 4) == b"456789AB"

    def test_delete_and_recreate(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"old data", writer_id="w", event_number=9)
        store.delete("s")
        assert store.list_segments() == []
        with pytest.raises(SegmentNotFound):
            store.read("s", 0, 10)
        assert store.create_segment("s")
        assert store.info("s").length == 0
        assert store.writer_event_number("s", "w") is None
        store.append("s", b"new")
        assert _read_all(store, "s") == b"new"

    def test_errors_are_stream_errors(self, store: SegmentStoreContract) -> None:
        with pytest.raises(StreamError):
            store.info("missing")

    # -- tiering to LTS -------------------------------------------------------------------
    def _wait_tiered(self, store: SegmentStoreContract, segment: str) -> None:
        wait_until(lambda: store.info(segment).tiered_length == store.info(segment).length, what=f"{segment} tiered")

    def test_tiered_data_reads_back_and_survives_restart(
        self, store: SegmentStoreContract, make_store: MakeStore
    ) -> None:
        store.create_segment("s")
        events = [_payload(i, 20_000 + i) for i in range(40)]
        for e in events:
            store.append("s", e)
        self._wait_tiered(store, "s")
        wait_until(lambda: store.stats().untiered_bytes == 0, what="empty backlog")
        expected = b"".join(events)
        assert _read_all(store, "s") == expected
        # a ranged historical read in the middle, across chunk boundaries
        at = len(expected) // 3
        assert store.read("s", at, 300_000).data == expected[at : at + 300_000]
        store.append("s", b"fresh tail")
        store = self._restart(store, make_store)
        try:
            assert _read_all(store, "s") == expected + b"fresh tail"
            assert store.info("s").tiered_length >= len(expected)
        finally:
            store.close()

    def test_digest_of_many_events_after_tiering(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        digest = hashlib.sha256()
        futures = []
        for i in range(2000):
            e = _payload(i, 300)
            digest.update(e)
            futures.append(store.append_async("s", e, writer_id="w", event_number=i))
        assert not any(f.result(timeout=60).duplicate for f in futures)
        self._wait_tiered(store, "s")
        assert hashlib.sha256(_read_all(store, "s")).hexdigest() == digest.hexdigest()

    def test_truncate_and_delete_tiered_segments(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        events = [_payload(i, 50_000) for i in range(10)]
        for e in events:
            store.append("s", e)
        self._wait_tiered(store, "s")
        store.truncate("s", 250_000)
        with pytest.raises(SegmentTruncated):
            store.read("s", 0, 10)
        assert _read_all(store, "s", 250_000) == b"".join(events)[250_000:]
        store.delete("s")
        with pytest.raises(SegmentNotFound):
            store.read("s", 250_000, 10)

    def test_merge_of_tiered_source(self, store: SegmentStoreContract) -> None:
        store.create_segment("t")
        store.create_segment("src")
        store.append("t", b"t" * 70_000)
        store.append("src", b"s" * 90_000)
        self._wait_tiered(store, "src")
        store.seal("src")
        assert store.merge("t", "src") == 70_000
        store.append("t", b"end")
        self._wait_tiered(store, "t")
        assert _read_all(store, "t") == b"t" * 70_000 + b"s" * 90_000 + b"end"

    def test_stats(self, store: SegmentStoreContract) -> None:
        store.create_segment("s")
        store.append("s", b"x" * 1000)
        stats = store.stats()
        assert stats.lts_available
        assert not stats.throttled
        assert stats.wal_bytes >= 1000 or stats.untiered_bytes == 0
        self._wait_tiered(store, "s")
        wait_until(lambda: store.stats().untiered_bytes == 0, what="empty backlog")
