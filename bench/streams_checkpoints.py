"""Reader-group checkpoints: what taking them costs the readers, and how long one takes.

Both cells run in one process on one embedded store, alternating: a group of 2 reader threads
reads a pre-written 4-segment stream to its end, "processing" each event for ``--work`` seconds
(a sleep, as for I/O)

  * baseline: no checkpoint;
  * ours: while they read, the main thread takes checkpoints back to back, pausing
    ``--every`` seconds between them (``initiate_checkpoint`` until completed).

Printed: read throughput of both and its ratio, checkpoints taken, and the checkpoint latency
(initiate -> completed) p50/p95 next to the readers' ``sync_interval`` (a reader learns a
checkpoint at its next sync, so the latency is about one or two sync intervals).

Usage:
    .venv/bin/python bench/streams_checkpoints.py            # 3 alternating rounds, 20,000 events
    .venv/bin/python bench/streams_checkpoints.py --quick    # 1 round, 10,000 events
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from xtremehub.streams import ReaderGroup, ScalingPolicy, StreamManager

READERS = 2
SEGMENTS = 4


def read_all(group: ReaderGroup, total: int, sync_interval: float, work: float, reading: threading.Event) -> float:
    """Seconds for ``READERS`` reader threads to read ``total`` events (``reading`` set once all joined)."""
    counts = [0] * READERS
    joined = threading.Barrier(READERS, action=reading.set)

    def body(i: int) -> None:
        reader = group.create_reader(f"r{i}", sync_interval=sync_interval)
        joined.wait()
        while sum(counts) < total:
            event = reader.read_next(timeout=0.05)
            if event is not None and not event.is_checkpoint:
                time.sleep(work)  # the application's processing (I/O: releases the GIL)
                counts[i] += 1
        while reader.read_next(timeout=0) is not None:  # return a pending marker's record, if any
            pass
        reader.reader_offline()

    start = time.perf_counter()
    threads = [threading.Thread(target=body, args=(i,)) for i in range(READERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def run_cell(
    manager: StreamManager, stream: str, total: int, name: str, every: float | None, sync_interval: float, work: float
) -> tuple[float, list[float]]:
    """(events/s, checkpoint latencies in s) of one group reading the stream from its head."""
    group = manager.create_reader_group(name, "bench", [stream])
    latencies: list[float] = []
    done, reading = threading.Event(), threading.Event()

    def checkpoints() -> None:
        n = 0
        reading.wait()
        while not done.is_set():
            start = time.perf_counter()
            try:
                group.initiate_checkpoint(f"cp-{n}", timeout=10)
            except Exception:  # the readers went offline at the end: the last one may not complete
                if not done.is_set():
                    raise
                return
            latencies.append(time.perf_counter() - start)
            n += 1
            done.wait(every)

    taker = threading.Thread(target=checkpoints) if every is not None else None
    if taker is not None:
        taker.start()
    seconds = read_all(group, total, sync_interval, work, reading)
    done.set()
    if taker is not None:
        taker.join()
    group.delete()
    return total / seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 10,000 events")
    parser.add_argument("--every", type=float, default=0.1, help="pause between two checkpoints (s)")
    parser.add_argument("--sync-interval", type=float, default=0.05, help="the readers' sync_interval (s)")
    parser.add_argument("--work", type=float, default=0.0001, help="processing time per event (s, a sleep)")
    args = parser.parse_args()
    rounds, total = (1, 10_000) if args.quick else (3, 20_000)
    root = Path(tempfile.mkdtemp(prefix="xhub-bench-cp-"))
    try:
        with StreamManager.embedded(root, maintenance_interval=3600) as manager:
            manager.create_scope("bench")
            manager.create_stream("bench", "events", scaling_policy=ScalingPolicy.fixed(SEGMENTS))
            with manager.create_writer("bench", "events", max_in_flight=256) as writer:
                for i in range(total):
                    writer.write_event(b"x" * 100, routing_key=f"k{i % 64}")
            base, ours, latencies, taken = [], [], [], []
            for r in range(rounds):  # alternate which goes first
                cells = [("base", None), ("ours", args.every)]
                for label, every in cells if r % 2 == 0 else cells[::-1]:
                    rate, lat = run_cell(
                        manager, "events", total, f"g-{label}-{r}", every, args.sync_interval, args.work
                    )
                    (base if every is None else ours).append(rate)
                    if every is not None:
                        latencies += lat
                        taken.append(len(lat))
            b, o = statistics.median(base), statistics.median(ours)
            print(
                f"{total:,} events of 100 B, {READERS} readers, {SEGMENTS} segments, {rounds} round(s), "
                f"{args.work * 1e6:.0f} us of work per event"
            )
            print(f"read, no checkpoints      : {b:10,.0f} ev/s")
            print(f"read, checkpoint every {args.every:g} s: {o:10,.0f} ev/s   ours/base {o / b:.2f}x")
            if latencies:
                lat_ms = sorted(x * 1000 for x in latencies)
                p95 = lat_ms[min(len(lat_ms) - 1, int(0.95 * len(lat_ms)))]
                print(
                    f"checkpoints taken per round: {taken}; latency p50 {statistics.median(lat_ms):.1f} ms, "
                    f"p95 {p95:.1f} ms (sync_interval {args.sync_interval * 1000:.0f} ms)"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
