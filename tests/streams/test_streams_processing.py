"""Processing that scales with the stream: workers follow the segments, outputs exactly once.

Real parts only: a stream server over an embedded store on a loopback port, workers as
long-running tasks of a real executor (local processes, and a real local Ray), killed with
SIGKILL. Each input event ``k<key>:<n>`` yields two outputs ``...:<n>/a`` and ``...:<n>/b``;
the output stream must hold every one of them exactly once, in per-key order.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from xtremehub import FunctionExecutor
from xtremehub.errors import InvalidStreamArgument, StreamNotFound
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.reader import EventRead
from xtremehub.streams.client.writer import EventPointer
from xtremehub.streams.processing import ProcessorConfig, StreamProcessor, iter_outputs
from xtremehub.streams.processing._state import TxnRecord, commit_order
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background

KEYS = 8


@pytest.fixture
def served(tmp_path: Path) -> Iterator[StreamServer]:
    """A stream server on a free loopback port; the controller scales every 0.2 s."""
    embedded = StreamManager.embedded(tmp_path / "data", maintenance_interval=0.2)
    try:
        with serve_background(embedded.store, embedded.controller, ServerConfig(shutdown_grace=5.0)) as server:
            yield server
    finally:
        embedded.close()


@pytest.fixture
def manager(served: StreamServer) -> Iterator[StreamManager]:
    with StreamManager(served.url) as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "in")
        manager.create_stream("lab", "out", scaling_policy=ScalingPolicy.fixed(2))
        yield manager


def tagger() -> Callable[[EventRead], list[Any]]:
    """Two outputs per event, the second with an explicit key (a closure: it travels by value)."""

    def tag(event: EventRead) -> list[Any]:
        return [event.data + b"/a", (event.data + b"/b", event.routing_key)]

    return tag


class Producer(threading.Thread):
    """Writes ``k<i>:<n>`` events, round-robin over the keys, at ``rate`` events/s until stopped."""

    def __init__(self, url: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.rate = url, rate
        self.written = 0
        self.acks: dict[str, Future[EventPointer]] = {}
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with StreamManager(self.url) as manager, manager.create_writer("lab", "in", max_in_flight=64) as writer:
                start = time.monotonic()
                while not self.halt.is_set():
                    due = int((time.monotonic() - start) * self.rate) + 1
                    while self.written < due and not self.halt.is_set():  # a slow machine falls behind
                        key = f"k{self.written % KEYS}"
                        text = f"{key}:{self.written // KEYS}"
                        self.acks[text] = writer.write_event(text.encode(), routing_key=key)
                        self.written += 1
                    writer.flush()
                    time.sleep(0.01)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> int:
        self.halt.set()
        self.join(120)
        assert not self.is_alive(), "the producer did not stop (flush() blocked?)"
        assert self.error is None, self.error
        refused = {text: ack.exception() for text, ack in self.acks.items() if ack.exception() is not None}
        assert not refused, refused
        return self.written


def read_outputs(manager: StreamManager, expected: int, timeout: float = 30.0) -> list[EventRead]:
    """Everything in lab/out once ``expected`` events are there (and a moment more for extras)."""
    group = manager.create_reader_group(f"check-{time.monotonic_ns()}", "lab", ["out"])
    reader = group.create_reader("checker")
    events: list[EventRead] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = reader.read_next(timeout=0.5)
        if event is not None:
            events.append(event)
        elif len(events) >= expected:
            break
    reader.reader_offline()
    return events


def assert_exactly_once_in_order(events: list[EventRead], written: int) -> None:
    per_key: dict[str, list[str]] = defaultdict(list)
    for event in events:
        text = event.data.decode()
        assert event.routing_key == text.split(":")[0], text
        per_key[event.routing_key].append(text.split(":", 1)[1])
    for i in range(KEYS):
        key = f"k{i}"
        count = written // KEYS + (1 if i < written % KEYS else 0)
        expected = [f"{n}/{tag}" for n in range(count) for tag in ("a", "b")]
        got = per_key.get(key, [])
        if got != expected:
            missing = sorted(set(expected) - set(got))[:5]
            dupes = sorted(x for x in set(got) if got.count(x) > 1)[:5]
            raise AssertionError(f"{key}: {len(got)} outputs for {len(expected)}; missing {missing}, twice {dupes}")
    assert len(events) == 2 * written


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def split(manager: StreamManager) -> None:
    """Split the widest active segment of lab/in in two."""
    seg = max(manager.get_stream("lab", "in").active_segments, key=lambda s: s.key_high - s.key_low)
    mid = (seg.key_low + seg.key_high) / 2
    manager.controller.scale_stream("lab", "in", [seg.name], [(seg.key_low, mid), (mid, seg.key_high)])


def merge(manager: StreamManager) -> None:
    """Merge the first two neighbouring active segments of lab/in."""
    active = sorted(manager.get_stream("lab", "in").active_segments, key=lambda s: s.key_low)
    left, right = active[0], active[1]
    manager.controller.scale_stream("lab", "in", [left.name, right.name], [(left.key_low, right.key_high)])


def workers_are(job: StreamProcessor, n: int) -> Callable[[], bool]:
    def check() -> bool:
        status = job.status()
        return len(status.workers) == n and not status.retiring

    return check


def kill_a_worker(job: StreamProcessor) -> None:
    wait_for("workers to report their processes", lambda: len(job.worker_processes()) >= 2)
    failures = len(job.status().failures)
    name, (_, pid) = sorted(job.worker_processes().items())[-1]
    os.kill(pid, signal.SIGKILL)
    wait_for(f"the driver to notice worker {name} died", lambda: len(job.status().failures) > failures)


def scenario(served: StreamServer, manager: StreamManager, executor: FunctionExecutor) -> None:
    """Rescale 1 -> 2 -> 3 -> 2 -> 1 segments by hand and kill a worker, under steady load."""
    job = StreamProcessor(
        served.url,
        "lab",
        "in",
        "out",
        tagger(),
        executor=executor,
        scaling_cooldown=3600.0,  # no auto-scaling here: the test scales by hand
        scale_down_delay=0.3,
        checkpoint_interval=0.3,
        poll_interval=0.05,
    )
    producer = Producer(served.url, rate=300.0)
    with job:
        producer.start()
        wait_for("a first commit", lambda: job.status().checkpoints >= 2)
        split(manager)
        wait_for("2 workers", workers_are(job, 2))
        split(manager)
        wait_for("3 workers", workers_are(job, 3))
        kill_a_worker(job)
        wait_for("3 workers again", workers_are(job, 3))
        merge(manager)
        wait_for("2 workers after a merge", workers_are(job, 2))
        merge(manager)
        wait_for("1 worker after a merge", workers_are(job, 1))
        written = producer.finish()
        events = read_outputs(manager, 2 * written)
    assert_exactly_once_in_order(events, written)
    status = job.status()
    assert len(status.failures) == 1, status.failures
    assert "died" in status.failures[0]
    assert max(s.workers for s in job.history) == 3
    assert len(status.finished) == 3  # 4 started (one replaced the killed one): 2 retired by merges, 1 by stop
    # nothing came after stop: read everything again (the whole time it needs: 1 s was too short for
    # ~2,400 events under a loaded CI run), then one empty poll for extras
    assert len(read_outputs(manager, 2 * written)) == 2 * written


def test_exactly_once_through_rescaling_and_a_killed_worker_local(served: StreamServer, manager: StreamManager) -> None:
    with FunctionExecutor("local", max_workers=6, progress=False) as executor:
        scenario(served, manager, executor)


@pytest.mark.ray
def test_exactly_once_through_rescaling_and_a_killed_worker_ray(
    ray_engine: Any, served: StreamServer, manager: StreamManager
) -> None:
    with FunctionExecutor("ray", progress=False, task_options={"num_cpus": 0.25}) as executor:
        scenario(served, manager, executor)


def test_workers_follow_auto_scaling(served: StreamServer, manager: StreamManager) -> None:
    """Load above the target splits segments and adds workers; once it stops, merges retire them."""
    job = StreamProcessor(
        served.url,
        "lab",
        "in",
        "out",
        tagger(),
        backend="local",
        max_workers=4,
        events_per_second_per_segment=60.0,
        scaling_window=1.0,
        scaling_cooldown=1.0,
        scale_down_delay=0.5,
        checkpoint_interval=0.3,
        poll_interval=0.05,
    )
    assert (
        manager.get_stream("lab", "in").config.scaling
        == ProcessorConfig(
            events_per_second_per_segment=60.0, scaling_window=1.0, scaling_cooldown=1.0
        ).scaling_policy()
        or True
    )  # set by start(), checked below
    producer = Producer(served.url, rate=300.0)
    with job:
        assert manager.get_stream("lab", "in").config.scaling == ScalingPolicy.by_event_rate(
            60.0, window=1.0, cooldown=1.0
        )
        producer.start()
        wait_for("a split and a second worker", lambda: len(job.status().workers) >= 2, timeout=20)
        written = producer.finish()
        wait_for("merges and retired workers", workers_are(job, 1), timeout=30)
        events = read_outputs(manager, 2 * written)
    assert_exactly_once_in_order(events, written)
    peak = max(job.history, key=lambda s: s.workers)
    assert peak.segments >= 2, peak
    assert peak.workers >= 2, peak
    assert job.history[-1].segments < peak.segments


def test_processor_arguments_are_checked(served: StreamServer, manager: StreamManager) -> None:
    with pytest.raises(InvalidStreamArgument, match="scale_down_delay"):
        ProcessorConfig(scale_down_delay=-1)
    with pytest.raises(InvalidStreamArgument, match="events_per_second_per_segment"):
        StreamProcessor(served.url, "lab", "in", "out", tagger(), events_per_second_per_segment=0)
    with pytest.raises(InvalidStreamArgument, match="unknown processor options"):
        StreamProcessor(served.url, "lab", "in", "out", tagger(), workers_per_segmnt=2)
    with pytest.raises(InvalidStreamArgument, match="txn_lease"):
        ProcessorConfig(txn_lease=10, checkpoint_timeout=30)
    with pytest.raises(StreamNotFound):
        StreamProcessor(served.url, "lab", "in", "missing", tagger()).start()
    assert ProcessorConfig(workers_per_segment=0.5).workers_for(3) == 2
    assert ProcessorConfig(workers_per_segment=2, max_workers=5).workers_for(3) == 5


def test_outputs_are_normalised() -> None:
    assert list(iter_outputs([b"x", bytearray(b"y"), (b"z", None)], "k")) == [(b"x", "k"), (b"y", "k"), (b"z", None)]
    with pytest.raises(InvalidStreamArgument, match="iterable of outputs"):
        list(iter_outputs(b"one payload", "k"))  # type: ignore[arg-type]
    with pytest.raises(InvalidStreamArgument, match="must be bytes"):
        list(iter_outputs(["text"], "k"))  # type: ignore[list-item]


def test_commit_order_follows_segment_succession() -> None:
    records = [
        TxnRecord("lab/in/4.#epoch.2", 0, "after-merge"),
        TxnRecord("lab/in/1.#epoch.0", 500, "second-half"),
        TxnRecord("lab/in/2.#epoch.1", 0, "split-right"),
        TxnRecord("lab/in/1.#epoch.0", 0, "first-half"),
    ]
    assert [r.txn_id for r in commit_order(records)] == ["first-half", "second-half", "split-right", "after-merge"]


def write_numbered(manager: StreamManager, start: int, count: int) -> None:
    with manager.create_writer("lab", "in", max_in_flight=64) as writer:
        for n in range(start, start + count):
            key = f"k{n % KEYS}"
            writer.write_event(f"{key}:{n // KEYS}".encode(), routing_key=key)


def test_a_job_started_again_resumes_after_its_last_commit(served: StreamServer, manager: StreamManager) -> None:
    options: dict[str, Any] = {"backend": "local", "max_workers": 2, "checkpoint_interval": 0.2}
    write_numbered(manager, 0, 80)
    with StreamProcessor(served.url, "lab", "in", "out", tagger(), name="resumable", **options) as job:
        wait_for("the first 80 events", lambda: len(read_outputs(manager, 160, timeout=0.5)) == 160)
    write_numbered(manager, 80, 80)  # while no job runs
    with StreamProcessor(served.url, "lab", "in", "out", tagger(), name="resumable", **options) as again:
        write_numbered(manager, 160, 80)
        events = read_outputs(manager, 480)
    assert_exactly_once_in_order(events, 240)
    assert job.status().last_checkpoint is not None
    assert again.status().failures == ()


def test_a_function_that_keeps_failing_stops_the_job(served: StreamServer, manager: StreamManager) -> None:
    def picky(event: EventRead) -> list[bytes]:
        if event.data == b"k3:2":
            raise ValueError(f"cannot process {event.data!r}")
        return [event.data]

    write_numbered(manager, 0, 40)
    job = StreamProcessor(
        served.url, "lab", "in", "out", picky, backend="local", max_workers=1, max_failures=1, checkpoint_interval=0.2
    )
    job.start()
    wait_for("the job to give up", lambda: not job.status().running)
    with pytest.raises(ValueError, match="cannot process b'k3:2'"):
        job.stop()
    assert len(job.status().failures) >= 2  # 2 in a row (a commit of earlier events may come between)
    outputs = {e.data for e in read_outputs(manager, 0, timeout=1.0)}
    assert b"k3:2" not in outputs  # nothing after the last commit is visible, and never twice:
    assert len(outputs) == len(read_outputs(manager, 0, timeout=1.0))


def test_a_hung_worker_holds_up_checkpoints_until_their_timeout(
    served: StreamServer, manager: StreamManager, tmp_path: Path
) -> None:
    flag = tmp_path / "hung-once"

    def slow_once(event: EventRead) -> list[Any]:
        if event.data == b"k1:3" and not flag.exists():
            flag.touch()
            time.sleep(4)  # hangs past checkpoint_timeout, once
        return [event.data + b"/a", (event.data + b"/b", event.routing_key)]

    write_numbered(manager, 0, 80)
    job = StreamProcessor(
        served.url,
        "lab",
        "in",
        "out",
        slow_once,
        backend="local",
        max_workers=1,
        checkpoint_interval=0.2,
        checkpoint_timeout=1.0,
        txn_lease=10.0,
    )
    with job:
        wait_for("a timed-out checkpoint", lambda: any("timed out" in f for f in job.status().failures))
        write_numbered(manager, 80, 80)
        events = read_outputs(manager, 320)
    assert_exactly_once_in_order(events, 160)
    assert flag.exists()


def test_commits_left_half_done_by_a_stopped_driver_are_finished_on_resume(tmp_path: Path) -> None:
    """The driver records a checkpoint's transactions before committing them; a resume commits the rest."""
    import json as _json

    from xtremehub.streams.kvtable import KeyValueTable
    from xtremehub.streams.processing._state import COMMITTED, COMMITTING

    with StreamManager.embedded(tmp_path / "s") as manager:
        manager.create_scope("lab")
        manager.create_stream("lab", "out")
        txn_writer = manager.create_transaction_writer("lab", "out")
        txns = []
        for i in range(3):
            txn = txn_writer.begin_txn()
            txn.write_event(b"out-%d" % i, routing_key="k")
            txn.flush()
            txns.append(txn)
        txns[0].commit()  # the driver stopped after the first of three commits
        table = KeyValueTable(manager, "lab", "job-state")
        table.put(COMMITTED, b"cp-1")
        table.put(COMMITTING, _json.dumps({"checkpoint": "cp-2", "txns": [t.txn_id for t in txns]}).encode())
        processor = StreamProcessor.__new__(StreamProcessor)  # only the resume bookkeeping is exercised
        processor._manager, processor._table, processor.name = manager, table, "job"
        assert processor._finish_commit() == "cp-2"
        assert table.get(COMMITTED).value == b"cp-2"  # type: ignore[union-attr]
        assert table.get(COMMITTING) is None
        reader = manager.create_reader_group("check", "lab", ["out"]).create_reader("r")
        got = [e.data for e in iter(lambda: reader.read_next(timeout=2.0), None)]
        assert got == [b"out-0", b"out-1", b"out-2"]  # every output once, in commit order
