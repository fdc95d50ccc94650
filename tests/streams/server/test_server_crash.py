"""Crash test: ``kill -9`` the server process while writers write through TCP, restart, repeat.

Every event a writer saw acknowledged must be in the stream exactly once afterwards. Writers
keep their stable writer ids and reconnect on their own (the client re-sends pending appends
after the restart; the store drops those it already holds), so retries are exactly-once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from xtremehub.streams import EventPointer, ScalingPolicy, StreamManager


class ServerProcess:
    """``python -m xtremehub.streams.server`` on a data directory, restartable on the same port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.log = (data.parent / "server.log").open("a")

    def start(self) -> str:
        cmd = [sys.executable, "-m", "xtremehub.streams.server", "--data", str(self.data)]
        cmd += ["--port", str(self.port), "--maintenance-interval", "3600"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert " on tcp://" in line, f"server did not start: {line!r}"
        self.port = int(line.rsplit(":", 1)[1])
        return f"tcp://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc.stdout.close()  # type: ignore[union-attr]

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.proc.stdout.close()  # type: ignore[union-attr]
        return code

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
        self.log.close()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data")
    try:
        yield proc
    finally:
        proc.close()


def _writer(
    url: str, wid: str, stop: threading.Event, acked: list[str], errors: list[BaseException], pipelined: bool
) -> None:
    manager = StreamManager(url)
    try:
        writer = manager.create_writer("crash", "events", writer_id=wid, max_in_flight=32 if pipelined else 0)
        futures: list[tuple[str, Future[EventPointer]]] = []
        i = 0
        while not stop.is_set():
            data = f"{wid}-{i}"
            futures.append((data, writer.write_event(data.encode(), routing_key=f"key-{i % 7}")))
            i += 1
            for d, f in [x for x in futures if x[1].done()]:
                f.result()
                acked.append(d)
            futures = [x for x in futures if not x[1].done()]
        writer.flush()
        for d, f in futures:
            f.result()
            acked.append(d)
        writer.close()
    except BaseException as exc:
        errors.append(exc)
    finally:
        manager.close()


@pytest.mark.slow
def test_kill9_at_random_points_keeps_every_acknowledged_event_exactly_once(server_process: ServerProcess) -> None:
    url = server_process.start()
    with StreamManager(url) as manager:
        manager.create_scope("crash")
        manager.create_stream("crash", "events", scaling_policy=ScalingPolicy.fixed(3))
    stop = threading.Event()
    acked: dict[str, list[str]] = {f"w{k}": [] for k in range(4)}
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_writer, args=(url, wid, stop, acked[wid], errors, k % 2 == 1))
        for k, wid in enumerate(acked)
    ]
    for t in threads:
        t.start()
    rng = random.Random(4)
    kills = 5
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 1.5))
        before = sum(len(a) for a in acked.values())
        server_process.kill9()
        time.sleep(rng.uniform(0.0, 0.5))
        assert server_process.start() == url
        # Writers get through again after the restart (they block while the server is down).
        deadline = time.monotonic() + 60
        while sum(len(a) for a in acked.values()) <= before and time.monotonic() < deadline and not errors:
            time.sleep(0.05)
        assert sum(len(a) for a in acked.values()) > before, "no write acknowledged after the restart"
    stop.set()
    for t in threads:
        t.join(120)
    assert not errors, errors
    total_acked = sum(len(a) for a in acked.values())
    assert total_acked > kills * 4

    assert server_process.terminate() == 0  # graceful stop after the last restart, then read back
    url = server_process.start()
    with StreamManager(
        url,
    ) as manager:
        group = manager.create_reader_group("check", "crash", ["events"], start="head")
        reader = group.create_reader("r", sync_interval=0.05)
        seen: Counter[str] = Counter()
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 3.0:
            event = reader.read_next(timeout=0.5)
            if event is not None:
                seen[event.data.decode()] += 1
                idle_since = time.monotonic()
        reader.reader_offline()
    duplicates = {e: n for e, n in seen.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} events stored twice, e.g. {list(duplicates.items())[:5]}"
    missing = [e for a in acked.values() for e in a if e not in seen]
    assert not missing, f"{len(missing)} of {total_acked} acknowledged events lost, e.g. {missing[:5]}"
    for wid, events in acked.items():  # per writer, the stream holds a gap-free prefix of its numbering
        numbers = sorted(int(e.rsplit("-", 1)[1]) for e in seen if e.startswith(f"{wid}-"))
        assert numbers == list(range(len(numbers))), f"{wid}: gaps in its events"
        assert len(numbers) >= len(events)


@pytest.mark.slow
def test_batch_acknowledged_as_a_run_survives_kill9_once(server_process: ServerProcess) -> None:
    """A batch acknowledged through APPEND_BATCH (one run) is on disk after ``kill -9``; re-sent, it is a duplicate."""
    from xtremehub.streams.remote import RemoteSegmentStore
    from xtremehub.streams.segmentstore.contract import SegmentBatch

    url = server_process.start()
    events = [f"event-{i:03d}".encode() for i in range(200)]
    store = RemoteSegmentStore(url)
    try:
        store.create_segment("k/s/0")
        (run,) = store.append_runs([SegmentBatch("k/s/0", events, 10)], writer_id="w")
        acked = run.result(timeout=60)
        assert acked.ok
        assert acked.offsets == [i * 9 for i in range(200)]
        assert not acked.duplicates
    finally:
        store.close()
    server_process.kill9()
    assert server_process.start() == url
    store = RemoteSegmentStore(url)
    try:
        assert store.read("k/s/0", 0, 1 << 20).data == b"".join(events)
        (again,) = store.append_runs([SegmentBatch("k/s/0", [*events[150:], b"new"], 160)], writer_id="w")
        outcome = again.result(timeout=60)
        assert sorted(outcome.duplicates) == list(range(50)), outcome  # the stored prefix
        assert outcome.offsets[:50] == [199 * 9] * 50
        assert outcome.offsets[50] == 200 * 9
        assert store.info("k/s/0").length == 200 * 9 + 3
        assert store.writer_event_number("k/s/0", "w") == 210
    finally:
        store.close()
