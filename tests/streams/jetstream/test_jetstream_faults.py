"""Fault tests on a real 3-node JetStream cluster (replication 3): a node, then the leader, killed mid-load.

Four writers write numbered events while a reader group of two readers reads; one node is killed
with SIGKILL. Every acknowledged event must be read exactly once, no event twice, each routing
key in order, and writes must resume within the cluster's failover time (measured and printed).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.testing.jetstream import JetStreamCluster

WRITERS = 4
KEYS_PER_WRITER = 4
#: Seconds of writing before the kill, and after writes resumed.
BEFORE, AFTER = 1.5, 3.0
#: Acknowledgements after the kill that show writes resumed (the few in flight at the kill do not).
RESUMED = 100
#: The longest write stall accepted: JetStream elects a new leader in a few seconds.
MAX_FAILOVER = 20.0


def _write(manager: StreamManager, scope: str, w: int, stop: threading.Event, acks: list[tuple[float, str]]) -> None:
    with manager.create_writer(scope, "load", writer_id=f"writer-{w}") as writer:
        i = 0
        while not stop.is_set():
            payload = f"{w}:{i}"
            writer.write_event(payload.encode(), routing_key=f"k{w}-{i % KEYS_PER_WRITER}").result(timeout=90)
            acks.append((time.monotonic(), payload))
            i += 1


@pytest.mark.parametrize("victim", ["follower", "leader"])
def test_kill_a_node_during_writes_and_reads(tmp_path: Path, victim: str) -> None:
    with JetStreamCluster(tmp_path / "cluster", nodes=3) as cluster:
        url = f"{cluster.url}?namespace=fault&replicas=3&timeout=60"
        with StreamManager(url) as manager:
            manager.create_scope("f")
            manager.create_stream("f", "load", scaling_policy=ScalingPolicy.fixed(4))
            group = manager.create_reader_group("g", "f", ["load"])
            readers = [group.create_reader(f"r{i}") for i in range(2)]
            read: list[tuple[str, str | None]] = []
            read_lock = threading.Lock()
            stop_writing, stop_reading = threading.Event(), threading.Event()

            def consume(reader: object) -> None:
                while not stop_reading.is_set():
                    event = reader.read_next(timeout=0.5)  # type: ignore[attr-defined]
                    if event is not None and not event.is_checkpoint:
                        with read_lock:
                            read.append((event.data.decode(), event.routing_key))

            acks: list[list[tuple[float, str]]] = [[] for _ in range(WRITERS)]
            threads = [threading.Thread(target=consume, args=(r,), daemon=True) for r in readers]
            threads += [
                threading.Thread(target=_write, args=(manager, "f", w, stop_writing, acks[w]), daemon=True)
                for w in range(WRITERS)
            ]
            for t in threads:
                t.start()
            time.sleep(BEFORE)
            leader = cluster.leader("FAULT_SEGMENTS")
            node = leader if victim == "leader" else next(n for n in cluster.alive() if n != leader)
            killed_at = time.monotonic()
            cluster.kill(node)
            # write on until RESUMED events were acknowledged after the kill, then AFTER seconds more
            while time.monotonic() < killed_at + MAX_FAILOVER:
                if sum(1 for per in acks for t, _ in per[-RESUMED:] if t > killed_at) >= RESUMED:
                    break
                time.sleep(0.05)
            time.sleep(AFTER)
            stop_writing.set()
            for t in threads[2:]:
                t.join(120)
            acked = {p for per in acks for _, p in per}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with read_lock:
                    if acked <= {p for p, _ in read}:
                        break
                time.sleep(0.1)
            stop_reading.set()
            for t in threads[:2]:
                t.join(30)
            for r in readers:
                r.close()

    times = sorted(t for per in acks for t, _ in per)
    after = [t for t in times if t > killed_at]
    assert after, "no write was acknowledged after the kill"
    stall = max(b - a for a, b in zip([killed_at, *after], after, strict=False))
    before = sum(1 for t in times if t <= killed_at)
    print(
        f"\n[jetstream fault: killed the {victim} {node}] {before} events acked before, {len(after)} after; "
        f"longest write stall after the kill: {stall:.2f} s"
    )
    assert stall < MAX_FAILOVER, f"writes stalled {stall:.1f}s after killing the {victim}"
    assert len(after) >= RESUMED, f"only {len(after)} writes acknowledged after killing the {victim}"
    payloads = [p for p, _ in read]
    assert len(payloads) == len(set(payloads)), "an event was read twice"
    assert acked <= set(payloads), f"{len(acked - set(payloads))} acknowledged events lost"
    last: dict[tuple[str | None, int], int] = defaultdict(lambda: -1)
    for payload, key in read:
        w, i = map(int, payload.split(":"))
        assert i > last[(key, w)], f"event {payload} of key {key} out of order"
        last[(key, w)] = i
