"""Batches as runs: the store's one-outcome-per-batch path and the writer's batch-settled futures."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait
from pathlib import Path
from typing import Any

import pytest

from xtremehub.errors import EventTooLarge, InvalidOffset, SegmentNotFound, SegmentSealed
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.eventfuture import EventFuture, EventPointer, settle_run
from xtremehub.streams.client.writer import EventStreamWriter, WriterConfig
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
from xtremehub.streams.segmentstore.contract import AppendResult, SegmentBatch
from xtremehub.streams.segmentstore.runs import RunOutcome


# -- RunOutcome ------------------------------------------------------------------------------
def test_run_outcome_forms_agree_with_per_event_outcomes() -> None:
    run = RunOutcome.contiguous("s", 10, [3, 4, 5], duplicates=1, at=7)
    assert run.offsets == [7, 10, 14]
    assert run.ok
    assert len(run) == 3
    assert run.outcomes() == [AppendResult("s", 7, 3, True), AppendResult("s", 10, 4), AppendResult("s", 14, 5)]
    assert RunOutcome.of("s", run.outcomes(), [3, 4, 5]).outcomes() == run.outcomes()
    refused = RunOutcome.refused("s", [1, 2, 3], SegmentSealed("sealed"), duplicates=1, at=0)
    assert not refused.ok
    assert refused.error(0) is None
    assert isinstance(refused.error(2), SegmentSealed)
    both = RunOutcome.concat([run, refused])
    assert both.offsets == [7, 10, 14, 0, -1, -1]
    assert sorted(both.duplicates) == [0, 3]
    assert sorted(both.errors) == [4, 5]
    assert both.lengths == [3, 4, 5, 1, 2, 3]


# -- event futures ---------------------------------------------------------------------------
def test_event_futures_settle_together_and_behave_as_futures() -> None:
    condition = threading.Condition()
    futures = [EventFuture(condition) for _ in range(4)]
    called: list[int] = []
    futures[1].add_done_callback(lambda f: called.append(f.result().offset))
    waiter = threading.Thread(target=lambda: called.append(futures[2].result(timeout=30).offset))
    waiter.start()
    done, pending = wait(futures, timeout=0.01)
    assert not done
    assert len(pending) == 4
    settle_run(condition, futures, RunOutcome.contiguous("s", 100, [1, 2, 3, 4]), [0, 1, 2])
    waiter.join(30)
    assert sorted(called) == [101, 103]
    assert [f.result() for f in futures[:3]] == [
        EventPointer("s", 100, 1),
        EventPointer("s", 101, 2),
        EventPointer("s", 103, 3),
    ]
    assert not futures[3].done()
    with pytest.raises(TimeoutError):
        futures[3].result(timeout=0.05)
    futures[3].set_exception(SegmentSealed("late"))
    assert isinstance(futures[3].exception(), SegmentSealed)
    assert set(as_completed(futures, timeout=5)) == set(futures)


def test_a_wake_up_for_another_event_is_not_a_timeout() -> None:
    """The condition is shared: waking for event A must not end a wait for event B without a timeout."""
    condition = threading.Condition()
    a, b = EventFuture(condition), EventFuture(condition)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(b.result()))
    thread.start()
    time.sleep(0.05)
    settle_run(condition, [a], RunOutcome.contiguous("s", 0, [5]), [0])  # notifies b's waiter too
    time.sleep(0.05)
    assert thread.is_alive()
    assert not results
    settle_run(condition, [b], RunOutcome.contiguous("s", 5, [1]), [0])
    thread.join(10)
    assert results == [EventPointer("s", 5, 1)]
    done, _ = wait([a, b], return_when=FIRST_COMPLETED, timeout=1)
    assert done == {a, b}


# -- the embedded store's runs ---------------------------------------------------------------
def test_embedded_runs_dedup_a_prefix_refuse_whole_and_large_events_alone(tmp_path: Path) -> None:
    config = SegmentStoreConfig(data_dir=tmp_path / "d", max_append_size=100)
    with SegmentStore(config) as store:
        store.create_segment("s")
        (first,) = store.append_runs([SegmentBatch("s", [b"aa", b"bbb"], 1)], writer_id="w")
        assert first.result(timeout=30).offsets == [0, 2]
        # a re-sent batch whose first events are stored: the stored prefix is duplicate, the rest appended
        (again,) = store.append_runs([SegmentBatch("s", [b"bbb", b"c", b"dd"], 2)], writer_id="w")
        run = again.result(timeout=30)
        assert run.offsets == [2, 5, 6]
        assert list(run.duplicates) == [0]
        assert run.ok
        # an event over the limit in the middle is refused alone, the others keep their numbers
        (mixed,) = store.append_runs([SegmentBatch("s", [b"e", b"x" * 101, b"f"], 5)], writer_id="w")
        run = mixed.result(timeout=30)
        assert run.offsets[0] == 8
        assert run.offsets[2] == 9
        assert isinstance(run.error(1), EventTooLarge)
        assert store.writer_event_number("s", "w") == 7
        store.seal("s")
        (sealed, missing) = store.append_runs(
            [SegmentBatch("s", [b"f", b"g", b"h"], 7), SegmentBatch("nope", [b"i"], 1)], writer_id="w"
        )
        run = sealed.result(timeout=30)
        assert list(run.duplicates) == [0]
        assert all(isinstance(run.error(i), SegmentSealed) for i in (1, 2))
        assert isinstance(missing.result(timeout=30).error(0), SegmentNotFound)
        assert store.read("s", 0, 100).data == b"aabbbcddef"
    with SegmentStore(config) as store:  # the same after recovery from the WAL
        assert store.read("s", 0, 100).data == b"aabbbcddef"
        assert store.writer_event_number("s", "w") == 7


# -- the writer ------------------------------------------------------------------------------
class RefusingStore:
    """The real store, except that every batch is refused whole with an error that is not re-sent."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append_runs(
        self, batches: Sequence[SegmentBatch], *, writer_id: str | None = None, timeout: float | None = None
    ) -> list[Future[RunOutcome]]:
        self.batches += len(batches)
        out: list[Future[RunOutcome]] = []
        for batch in batches:
            future: Future[RunOutcome] = Future()
            future.set_result(RunOutcome.refused(batch.segment, [len(e) for e in batch.events], InvalidOffset("no")))
            out.append(future)
        return out


def test_a_refused_batch_fails_every_event_future(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(2))
        store = RefusingStore(manager.store)
        writer = EventStreamWriter(manager.controller, store, "lab", "s", config=WriterConfig(max_in_flight=64))
        futures = [writer.write_event(f"e{i}".encode(), routing_key=f"k{i % 3}") for i in range(40)]
        with pytest.raises(InvalidOffset):
            writer.flush()
        assert all(isinstance(f.exception(timeout=30), InvalidOffset) for f in futures)
        assert store.batches >= 2


def test_pipelined_events_keep_their_order_per_key_through_the_server(tmp_path: Path) -> None:
    from xtremehub.streams.server import serve_background

    with (
        StreamManager.embedded(tmp_path / "data") as local,
        serve_background(local.store, local.controller) as server,
        StreamManager(server.url) as manager,
    ):
        manager.create_scope("lab")
        manager.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(3))
        with manager.create_writer("lab", "s", max_in_flight=32) as writer:
            futures = [writer.write_event(f"{i % 5}:{i}".encode(), routing_key=f"k{i % 5}") for i in range(2000)]
        pointers = [f.result(timeout=60) for f in futures]
        group = manager.create_reader_group("g", "lab", ["s"], start="head")
        reader = group.create_reader("r")
        seen: dict[str, list[int]] = {}
        while sum(len(v) for v in seen.values()) < 2000:
            event = reader.read_next(timeout=10)
            assert event is not None, "events missing"
            key, number = event.data.decode().split(":")
            seen.setdefault(key, []).append(int(number))
        reader.reader_offline()
    assert all(numbers == sorted(numbers) for numbers in seen.values())
    assert sorted(n for numbers in seen.values() for n in numbers) == list(range(2000))
    by_segment: dict[str, list[int]] = {}
    for p in pointers:
        by_segment.setdefault(p.segment, []).append(p.offset)
    assert all(offsets == sorted(set(offsets)) for offsets in by_segment.values())  # distinct, in write order


def test_appended_events_are_copied_before_the_call_returns(tmp_path: Path) -> None:
    """The commit thread joins the events later: a caller reusing its list or a bytearray
    after the call must not change what is stored (a reviewer found both acknowledged as lost)."""
    config = SegmentStoreConfig(data_dir=tmp_path / "d", group_commit_delay=0.05)
    with SegmentStore(config) as store:
        store.create_segment("s")
        events: list[bytes] = [b"0123456789", b"abcdefghij"]
        futures = store.append_runs([SegmentBatch("s", events, 0)], writer_id="w")
        events.clear()  # reused at once, while the group commit still waits
        run = futures[0].result(timeout=30)
        assert run.ok
        assert run.offsets == [0, 10]
        buffer = bytearray(b"AAAA")
        more = store.append_many("s", [buffer])
        buffer[:] = b"ZZZZ"
        assert more.result(timeout=30)
        assert store.info("s").length == 24
        assert store.read("s", 0, 100).data == b"0123456789abcdefghijAAAA"


def test_parts_of_a_multi_batch_request_share_one_condition_and_settle_together() -> None:
    import concurrent.futures as cf

    from xtremehub.streams.remote.store import _split

    condition = threading.Condition()  # the remote store's, shared by all its append_runs futures
    request: cf.Future[list[RunOutcome]] = cf.Future()
    parts = _split(request, 3, condition)
    assert all(p._condition is condition for p in parts)
    called: list[str] = []
    parts[1].add_done_callback(lambda f: called.append(f.result().segment))
    waited: list[str] = []
    waiter = threading.Thread(target=lambda: waited.append(parts[2].result(timeout=10).segment))
    waiter.start()
    with pytest.raises(cf.TimeoutError):
        parts[0].result(timeout=0.05)
    request.set_result([RunOutcome.contiguous(s, 0, [1]) for s in "abc"])
    waiter.join()
    assert called == ["b"]
    assert waited == ["c"]
    assert [p.result().segment for p in parts] == ["a", "b", "c"]
    assert not cf.wait(parts, timeout=1).not_done
    failed: cf.Future[list[RunOutcome]] = cf.Future()
    parts = _split(failed, 2, condition)
    failed.set_exception(ConnectionError("lost"))
    assert [type(p.exception()).__name__ for p in parts] == ["ConnectionError", "ConnectionError"]


def test_a_written_event_future_shows_only_the_future_api(tmp_path: Path) -> None:
    """The future ``write_event`` returns is also the writer's record of the event; the writer's
    own bookkeeping (dropping the frame, reading the outcome) must not be callable as public API."""
    with StreamManager.embedded(tmp_path / "data") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "s")
        with manager.create_writer("lab", "s") as writer:
            future = writer.write_event(b"x")
            pointer = future.result(timeout=30)
        assert isinstance(future, EventFuture)
        public = {name for name in dir(future) if not name.startswith("_")}
        assert public <= {name for name in dir(Future) if not name.startswith("_")} | {
            "frame",
            "number",
            "point",
            "segment",
            "sent",
        }
        assert not {"release", "stored", "error"} & public
        assert future.cancel() is False
        assert pointer.segment.startswith("lab/s/")
