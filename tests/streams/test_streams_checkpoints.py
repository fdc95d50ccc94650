"""Reader-group checkpoints, embedded and through the stream server.

The application pattern under test (exactly-once): an application keeps the ids of the events it
processed; when its reader returns a checkpoint marker it stores that state under the
checkpoint's name. After a crash, the group is reset to the checkpoint and must deliver exactly
the events the stored state does not hold: none lost, none twice.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xtremehub.errors import (
    AlreadyExists,
    CheckpointFailed,
    CheckpointNotFound,
    CheckpointTimeout,
    InvalidStreamArgument,
    ReaderGroupReset,
)
from xtremehub.streams import Checkpoint, EventStreamReader, ReaderGroup, ScalingPolicy, StreamManager
from xtremehub.streams.client._framing import key_point
from xtremehub.streams.server import ServerConfig, serve_background


@contextlib.contextmanager
def _session(path: Path, via: str) -> Iterator[StreamManager]:
    """An embedded store at ``path``, used in-process or through a stream server on a free port."""
    with StreamManager.embedded(path, maintenance_interval=3600) as embedded:
        if via == "embedded":
            yield embedded
            return
        with (
            serve_background(embedded.store, embedded.controller, ServerConfig(shutdown_grace=5.0)) as server,
            StreamManager(server.url) as remote,
        ):
            yield remote


@pytest.fixture(params=["embedded", "server"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamManager]:
    with _session(tmp_path / "data", request.param) as manager:
        yield manager


def _stream(manager: StreamManager, segments: int) -> tuple[str, str]:
    scope, stream = f"sc{uuid.uuid4().hex[:8]}", f"st{uuid.uuid4().hex[:8]}"
    manager.create_scope(scope)
    manager.create_stream(scope, stream, scaling_policy=ScalingPolicy.fixed(segments))
    return scope, stream


def _write(manager: StreamManager, scope: str, stream: str, ids: range) -> None:
    with manager.create_writer(scope, stream) as writer:
        for i in ids:
            writer.write_event(str(i).encode(), routing_key=str(i % 7))


class App:
    """One application instance: the ids it processed, and its state saved at each checkpoint marker."""

    def __init__(self, reader: EventStreamReader, *, work: float = 0.0) -> None:
        self.reader, self.work = reader, work
        self.processed: list[int] = []
        self.saved: dict[str, list[int]] = {}
        self.markers = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def step(self, timeout: float) -> bool:
        """Process the next event or marker; False when nothing came."""
        event = self.reader.read_next(timeout)
        if event is None:
            return False
        if event.is_checkpoint:
            assert event.checkpoint_name is not None
            assert event.data == b""
            self.saved[event.checkpoint_name] = list(self.processed)
            self.markers += 1
        else:
            time.sleep(self.work)  # the application's processing
            self.processed.append(int(event.data))
        return True

    def start(self) -> App:
        def run() -> None:
            try:
                while not self._stop.is_set():
                    self.step(0.02)
            except BaseException as exc:  # surfaced by stop()
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop processing (the reader is left as it is: a crash unless it goes offline)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._error is not None:
            raise self._error


def _wait(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _drain(group: ReaderGroup, count: int, names: tuple[str, ...] = ("r",)) -> list[int]:
    """Ids read by new readers of ``group`` until ``count`` came, then check that nothing more comes."""
    apps = [App(group.create_reader(n, sync_interval=0.02)).start() for n in names]
    _wait(lambda: sum(len(a.processed) for a in apps) >= count, f"{count} events")
    for app in apps:
        app.stop()
    for app in apps:
        while app.step(0.2):  # anything beyond the expected count would show up here
            pass
        app.reader.reader_offline()
    return sorted(i for a in apps for i in a.processed)


def _until_idle(*apps: App) -> None:
    """Step each app until none of them gets anything more."""
    busy = True
    while busy:
        busy = False
        for app in apps:
            while app.step(0.05):
                busy = True


def test_exactly_once_processing_across_a_crash_and_a_reset(manager: StreamManager) -> None:
    scope, stream = _stream(manager, 3)
    _write(manager, scope, stream, range(150))
    group = manager.create_reader_group("g", scope, [stream])
    apps = [App(group.create_reader(n, sync_interval=0.02), work=0.003).start() for n in ("a", "b")]
    _wait(lambda: sum(len(a.processed) for a in apps) >= 30, "30 events processed")
    checkpoint = group.initiate_checkpoint("cp-1", timeout=30)
    assert checkpoint.completed
    assert checkpoint.name == "cp-1"
    assert [(c.scope, c.stream) for c in checkpoint.stream_cuts] == [(scope, stream)]
    assert len(checkpoint.stream_cuts[0].positions) == 3
    _write(manager, scope, stream, range(150, 300))
    _wait(lambda: sum(len(a.processed) for a in apps) == 300, "all 300 events processed")
    for app in apps:
        app.stop()  # and "crash": no reader_offline
    assert sorted(i for a in apps for i in a.processed) == list(range(300)), "normal operation lost or repeated"
    assert all(a.markers == 1 for a in apps)
    state = sorted(i for a in apps for i in a.saved["cp-1"])
    assert len(state) == len(set(state)), "an event is in the saved state twice"
    assert 30 <= len(state) <= 150, "the checkpoint completed before 150..299 were written"

    group.reset_to_checkpoint(checkpoint)
    with pytest.raises(ReaderGroupReset):  # a reader of before the reset cannot carry on
        apps[0].reader.read_next(timeout=0.1)
    replay = _drain(group, 300 - len(state), names=("a", "b"))
    assert sorted(state + replay) == list(range(300)), "lost or duplicated relative to the checkpointed state"
    assert [c.name for c in group.list_checkpoints()] == ["cp-1"]


def test_readers_joining_and_leaving_during_a_checkpoint(manager: StreamManager) -> None:
    scope, stream = _stream(manager, 6)
    _write(manager, scope, stream, range(120))
    group = manager.create_reader_group("g", scope, [stream])
    a = App(group.create_reader("a", sync_interval=0.01))
    c = App(group.create_reader("c", sync_interval=0.01))
    for _ in range(10):
        a.step(0.05)
        c.step(0.05)
    assert len(a.reader.segments) == 3
    assert len(c.reader.segments) == 3
    pending = manager.controller.initiate_checkpoint(scope, "g", "cp", 30.0)
    assert pending.state == "pending"
    assert pending.waiting == ("a", "c")
    with pytest.raises(CheckpointFailed, match="in progress"):  # one at a time
        manager.controller.initiate_checkpoint(scope, "g", "other", 30.0)
    b = App(group.create_reader("b", sync_interval=0.01))  # joins during the checkpoint: fair share is now 2
    _wait(lambda: a.step(0.05) and a.markers == 1, "a's marker")
    assert len(a.reader.segments) == 3, "a reader yet to record its checkpoint gave a segment away"
    assert b.reader.segments == []
    c_before = list(c.processed)
    c.reader.reader_offline()  # leaves without ever returning the marker: hands its positions over
    assert manager.controller.get_checkpoint(scope, "g", "cp").waiting == ("a",)
    b.step(0.05)  # takes c's segments and reads past the cut while a has not recorded yet
    assert len(b.reader.segments) == 3
    a.step(0.05)  # a's next read records the checkpoint
    checkpoint = group.get_checkpoint("cp")
    assert checkpoint.completed
    state = sorted(a.saved["cp"] + c_before)
    _until_idle(a, b)
    assert sorted(c_before + a.processed + b.processed) == list(range(120))
    from_checkpoint = manager.create_reader_group("h", scope, [stream], start=checkpoint)
    replay = _drain(from_checkpoint, 120 - len(state))
    assert sorted(state + replay) == list(range(120))


def test_segment_split_during_a_checkpoint(manager: StreamManager) -> None:
    scope, stream = _stream(manager, 1)
    _write(manager, scope, stream, range(10))
    (old,) = manager.get_stream(scope, stream).active_segments
    group = manager.create_reader_group("g", scope, [stream])
    app = App(group.create_reader("a", sync_interval=5.0))
    for _ in range(5):
        assert app.step(1.0)
    manager.controller.initiate_checkpoint(scope, "g", "cp", 30.0)
    manager.controller.scale_stream(scope, stream, [old.name], [(0.0, 0.5), (0.5, 1.0)])
    _write(manager, scope, stream, range(10, 30))  # into the successors
    _wait(lambda: app.step(0.05) and app.markers == 1, "the marker")
    _until_idle(app)
    checkpoint = group.get_checkpoint("cp")
    assert checkpoint.completed
    assert sorted(app.processed) == list(range(30))
    state = app.saved["cp"]
    assert set(state) <= set(range(10)), "an event of a successor came before the marker"
    replay = _drain(manager.create_reader_group("h", scope, [stream], start=checkpoint), 30 - len(state))
    assert sorted(state + replay) == list(range(30))
    app.reader.reader_offline()


def test_a_reader_that_never_reads_times_the_checkpoint_out(manager: StreamManager) -> None:
    scope, stream = _stream(manager, 2)
    group = manager.create_reader_group("g", scope, [stream])
    empty = group.initiate_checkpoint("no-readers", timeout=5)  # nobody to wait for
    assert empty.completed
    assert [c.offsets for c in empty.stream_cuts] == [c.offsets for c in group.stream_cuts()]
    with pytest.raises(AlreadyExists):
        group.initiate_checkpoint("no-readers", timeout=5)
    idle = group.create_reader("idle", sync_interval=0.01)
    with pytest.raises(CheckpointTimeout, match="idle"):
        group.initiate_checkpoint("cp", timeout=0.3)
    with pytest.raises(CheckpointNotFound):
        group.get_checkpoint("cp")
    assert [c.name for c in group.list_checkpoints()] == ["no-readers"]
    with pytest.raises(CheckpointFailed, match="not completed"):
        group.reset_to_checkpoint(manager.controller.initiate_checkpoint(scope, "g", "pending", 30.0))
    assert manager.controller.cancel_checkpoint(scope, "g", "pending")
    with pytest.raises(InvalidStreamArgument):
        group.initiate_checkpoint("bad/name")
    assert group.delete_checkpoint("no-readers")
    assert group.list_checkpoints() == []
    idle.reader_offline()


@pytest.mark.parametrize("via", ["embedded", "server"])
def test_checkpoints_survive_a_restart(tmp_path: Path, via: str) -> None:
    with _session(tmp_path / "data", via) as manager:
        scope, stream = _stream(manager, 2)
        _write(manager, scope, stream, range(40))
        group = manager.create_reader_group("g", scope, [stream])
        app = App(group.create_reader("a", sync_interval=0.01), work=0.003).start()
        _wait(lambda: len(app.processed) >= 10, "10 events")
        checkpoint = group.initiate_checkpoint("cp", timeout=30)
        app.stop()
        state = app.saved["cp"]
        text = checkpoint.to_json()
    with _session(tmp_path / "data", via) as manager:
        group = manager.get_reader_group("g", scope)
        (again,) = group.list_checkpoints()
        assert again == checkpoint
        assert Checkpoint.from_json(text) == checkpoint
        group.reset_to_checkpoint("cp")
        replay = _drain(group, 40 - len(state))
        assert sorted(state + replay) == list(range(40))


def test_randomised_joins_leaves_and_scaling_keep_every_checkpoint_consistent(tmp_path: Path) -> None:
    """Readers come and go, segments split and merge, checkpoints are taken back to back; each
    completed checkpoint's cut must split the events exactly as the readers' markers did."""
    rng = random.Random(7)
    total = 1500
    with StreamManager.embedded(tmp_path / "data", maintenance_interval=3600) as manager:
        scope, stream = _stream(manager, 3)
        group = manager.create_reader_group("g", scope, [stream])
        order = threading.Lock()  # joins, leaves and initiations never overlap: membership is exact
        seq = itertools.count()
        lives: list[dict[str, Any]] = []
        taken: list[tuple[Checkpoint, set[str], int]] = []
        written, stop = threading.Event(), threading.Event()
        scaled = threading.Semaphore(0)  # one release per scale: the writer waits for scales between parts
        scales = 0

        def write() -> None:
            # Event-driven, not timed: every part after the first is written after one more scale, so
            # the stream is rescaled under the writer however fast the machine writes.
            parts = 5
            for part in range(parts):
                if part:
                    assert scaled.acquire(timeout=60), "no scale in 60 s"
                _write(manager, scope, stream, range(part * total // parts, (part + 1) * total // parts))
            written.set()

        def scale() -> None:
            nonlocal scales
            while not written.is_set():
                time.sleep(0.05)
                segs = manager.get_stream(scope, stream).active_segments
                if len(segs) < 5 and rng.random() < 0.6:
                    seg = rng.choice(segs)
                    mid = (seg.key_low + seg.key_high) / 2
                    halves = [(seg.key_low, mid), (mid, seg.key_high)]
                    manager.controller.scale_stream(scope, stream, [seg.name], halves)
                elif len(segs) >= 2:
                    i = rng.randrange(len(segs) - 1)
                    manager.controller.scale_stream(
                        scope, stream, [segs[i].name, segs[i + 1].name], [(segs[i].key_low, segs[i + 1].key_high)]
                    )
                else:
                    continue
                scales += 1
                scaled.release()

        def live(name: str, lifetime: float) -> None:
            with order:
                reader = group.create_reader(name, sync_interval=0.1)
                life: dict[str, Any] = {"name": name, "joined": next(seq), "left": None}
                lives.append(life)
            app = App(reader)
            end = time.monotonic() + lifetime
            while time.monotonic() < end and not stop.is_set():
                app.step(0.01)
            with order:
                reader.reader_offline()
                life.update(left=next(seq), processed=app.processed, saved=app.saved)

        def checkpoints() -> None:
            n = 0
            while not stop.is_set():
                with order:
                    pending = manager.controller.initiate_checkpoint(scope, "g", f"cp{n}", 10.0)
                    at = next(seq)
                until = time.monotonic() + 10
                while time.monotonic() < until:
                    checkpoint = group.get_checkpoint(pending.name)
                    if checkpoint.completed:
                        taken.append((checkpoint, set(pending.waiting), at))
                        break
                    time.sleep(0.005)
                n += 1
                time.sleep(rng.random() * 0.05)

        helpers = [threading.Thread(target=f) for f in (write, scale, checkpoints)]
        for t in helpers:
            t.start()
        readers: list[threading.Thread] = []
        give_up = time.monotonic() + 120
        # Until everything is written and enough checkpoints and reader lives happened (counted,
        # not timed: a fast machine runs more of them in the same time, a slow one takes longer).
        while not written.is_set() or len(taken) < 6 or len(lives) < 6:
            assert time.monotonic() < give_up, f"after 120 s: {len(taken)} checkpoints, {len(lives)} readers"
            if sum(t.is_alive() for t in readers) < 3:
                readers.append(threading.Thread(target=live, args=(f"r{len(readers)}", rng.random() * 0.8)))
                readers[-1].start()
            time.sleep(0.02)
        stop.set()
        for t in readers + helpers:
            t.join(30)
        assert len(taken) >= 6
        assert len(lives) >= 6
        assert scales >= 4
        for checkpoint, waiting, at in taken[:: max(1, len(taken) // 6)]:  # a spread of them: each replay costs
            state: list[int] = []
            for life in lives:
                if life["name"] in waiting:  # online at the start: up to its marker, or all it read before leaving
                    state += life["saved"].get(checkpoint.name, life["processed"])
                elif life["left"] < at:  # gone before the start: all it read is before the cut
                    state += life["processed"]
            check = manager.create_reader_group(f"v-{checkpoint.name}", scope, [stream], start=checkpoint)
            reader = check.create_reader("v", sync_interval=0.01)
            replay: list[int] = []
            until = time.monotonic() + 30
            while len(replay) < total - len(state) and time.monotonic() < until:
                if (event := reader.read_next(timeout=0.5)) is not None:
                    replay.append(int(event.data))
            while (event := reader.read_next(timeout=0.1)) is not None:  # anything more would be a duplicate
                replay.append(int(event.data))
            reader.reader_offline()
            assert sorted(state + replay) == list(range(total)), f"{checkpoint.name} is not a consistent cut"


def test_a_segment_read_to_its_end_is_not_read_again_after_reader_offline(manager: StreamManager) -> None:
    """A reader that goes offline before reporting a segment it finished hands it over at its end."""
    scope, stream = _stream(manager, 2)
    first, second = manager.get_stream(scope, stream).active_segments
    key = next(f"k{i}" for i in range(1000) if first.owns(key_point(f"k{i}")))
    with manager.create_writer(scope, stream) as writer:
        for i in range(3):
            writer.write_event(f"a{i}".encode(), routing_key=key)
    manager.controller.scale_stream(scope, stream, [first.name], [(first.key_low, first.key_high)])  # seals it
    group = manager.create_reader_group("g", scope, [stream])
    reader = group.create_reader("r", sync_interval=3600)
    assert sorted(reader.segments) == sorted([first.name, second.name])
    got = [reader.read_next(timeout=5.0) for _ in range(3)]
    assert [e.data for e in got if e is not None] == [b"a0", b"a1", b"a2"]
    assert reader.read_next(timeout=0) is None  # finds the end of the first segment, reports it at the next sync
    assert first.name not in reader.segments
    assert {s.segment: s.state for s in group.state().segments}[first.name] == "assigned"
    reader.reader_offline()
    again = group.create_reader("r2", sync_interval=0.01)
    assert again.read_next(timeout=0.3) is None, "events of the finished segment were delivered twice"
    again.reader_offline()
