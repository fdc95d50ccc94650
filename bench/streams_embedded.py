"""Stream client API vs the segment store used directly, embedded, in one run.

Measures (durable writes: an event counts once ``write_event`` / ``append`` returned):
  * write throughput, 1 KiB and 100 KiB events, 1 / 4 / 16 writer threads, through
    ``StreamManager`` writers vs ``SegmentStore.append`` with the same framed bytes, writer ids
    and event numbers (ratio = cost of the client layer: routing, framing, futures, re-routing);
    plus writers keeping WINDOW events in flight (``max_in_flight``), whose events queued behind
    a batch in flight are coalesced into one ``append_batches`` (one group commit for many);
  * end-to-end latency writer -> tail reader (p50/p95/p99) at a steady rate, through a writer
    and a reader-group reader vs ``append`` and a tail ``read(wait=...)`` loop on the store.

Usage:
    .venv/bin/python bench/streams_embedded.py            # 3 alternating rounds of 2 s per cell (~1.5 min)
    .venv/bin/python bench/streams_embedded.py --quick    # 1 round of 1 s per cell
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client._framing import EventDecoder, encode_event

SEGMENTS = 4
WINDOW = 32


def _run_threads(n: int, seconds: float, work: Callable[[int, Callable[[], bool]], int]) -> float:
    """Start ``n`` threads doing ``work(i, running)``; returns events per second over all of them."""
    stop_at = time.perf_counter() + seconds
    counts = [0] * n

    def body(i: int) -> None:
        counts[i] = work(i, lambda: time.perf_counter() < stop_at)

    start = time.perf_counter()
    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def throughput(
    manager: StreamManager, size: int, writers: int, seconds: float, tag: str, rounds: int
) -> tuple[float, float, float]:
    """Medians (client API, direct store, client API with WINDOW in flight) in events/s over ``rounds`` rounds."""
    payload = b"x" * size
    manager.create_stream("bench", f"api-{tag}", scaling_policy=ScalingPolicy.fixed(SEGMENTS))
    manager.create_stream("bench", f"raw-{tag}", scaling_policy=ScalingPolicy.fixed(SEGMENTS))
    manager.create_stream("bench", f"win-{tag}", scaling_policy=ScalingPolicy.fixed(SEGMENTS))
    raw_segments = [s.name for s in manager.get_stream("bench", f"raw-{tag}").active_segments]

    def api(i: int, running: Callable[[], bool], stream: str = f"api-{tag}", window: int = 0) -> int:
        count = 0
        with manager.create_writer("bench", stream, max_in_flight=window) as writer:
            while running():
                writer.write_event(payload, routing_key=f"k{i}-{count % 8}")
                count += 1
        return count  # close() flushed: every event counted is durable

    def windowed(i: int, running: Callable[[], bool]) -> int:
        return api(i, running, f"win-{tag}", WINDOW)

    def raw(i: int, running: Callable[[], bool]) -> int:
        count = 0
        frame = encode_event(payload, f"k{i}")
        writer_id = uuid.uuid4().hex  # fresh per round: a reused id would make every append a duplicate
        while running():
            segment = raw_segments[(i + count) % SEGMENTS]
            manager.store.append(segment, frame, writer_id=writer_id, event_number=count)
            count += 1
        return count

    ours, base, win = [], [], []
    for r in range(rounds):  # alternate which goes first: the disk and the other tenants drift
        if r % 2:
            base.append(_run_threads(writers, seconds, raw))
            ours.append(_run_threads(writers, seconds, api))
        else:
            ours.append(_run_threads(writers, seconds, api))
            base.append(_run_threads(writers, seconds, raw))
        win.append(_run_threads(writers, seconds, windowed))
    return statistics.median(ours), statistics.median(base), statistics.median(win)


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e3, q[94] * 1e3, q[98] * 1e3


def latency(manager: StreamManager, rate: float, seconds: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """End-to-end latency percentiles (ms): (client API, direct store)."""
    stamp = struct.Struct(">d")
    manager.create_stream("bench", "lat-api")
    manager.create_stream("bench", "lat-raw")
    filler = b"y" * (1024 - stamp.size)
    count = int(rate * seconds)

    def produce(send: Callable[[bytes], None]) -> None:
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            send(stamp.pack(time.perf_counter()) + filler)

    # client API
    group = manager.create_reader_group("lat", "bench", ["lat-api"], start="tail")
    reader = group.create_reader("r", sync_interval=1.0)
    api_lat: list[float] = []
    writer = manager.create_writer("bench", "lat-api")
    producer = threading.Thread(target=produce, args=(writer.write_event,))
    producer.start()
    while len(api_lat) < count:
        event = reader.read_next(timeout=5.0)
        if event is None:
            break
        api_lat.append(time.perf_counter() - stamp.unpack_from(event.data)[0])
    producer.join()
    writer.close()
    reader.reader_offline()

    # the store directly
    segment = manager.get_stream("bench", "lat-raw").active_segments[0].name
    raw_lat: list[float] = []
    numbers = iter(range(count))
    producer = threading.Thread(
        target=produce,
        args=(
            lambda b: manager.store.append(segment, encode_event(b, None), writer_id="lat", event_number=next(numbers)),
        ),
    )
    producer.start()
    decoder, offset = EventDecoder(segment, 0), 0
    while len(raw_lat) < count:
        result = manager.store.read(segment, offset, 1 << 20, wait=5.0)
        if not result.data:
            break
        offset += len(result.data)
        decoder.feed(result.data)
        while (item := decoder.next_event()) is not None:
            raw_lat.append(time.perf_counter() - stamp.unpack_from(item[3])[0])
    producer.join()
    return _percentiles(api_lat), _percentiles(raw_lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s per cell instead of 3 rounds of 2 s")
    parser.add_argument("--dir", help="data directory (default: a fresh /tmp/streamapi-bench-*)")
    parser.add_argument(
        "--no-fsync", action="store_true", help="store without fsync: isolates the CPU cost of the client layer"
    )
    args = parser.parse_args()
    seconds, rounds = (1.0, 1) if args.quick else (2.0, 3)
    root = Path(args.dir or tempfile.mkdtemp(prefix="streamapi-bench-"))
    try:
        with StreamManager.embedded(root / "data", maintenance_interval=3600, fsync=not args.no_fsync) as manager:
            manager.create_scope("bench")
            kind = "write throughput WITHOUT fsync" if args.no_fsync else "durable write throughput"
            print(f"{kind} (median of {rounds} x {seconds:.0f} s, {SEGMENTS} segments, data in {root})")
            print(
                f"{'event':>7} {'writers':>7} {'API ev/s':>10} {'API MiB/s':>9} {'store ev/s':>10} {'API/store':>9} "
                f"{f'API {WINDOW} in flight':>17} {'/store':>7}"
            )
            for size in (1024, 100 * 1024):
                for writers in (1, 4, 16):
                    ours, base, win = throughput(manager, size, writers, seconds, f"{size}-{writers}", rounds)
                    print(
                        f"{size // 1024:>5} K {writers:>7} {ours:>10.0f} {ours * size / 2**20:>9.1f} "
                        f"{base:>10.0f} {ours / base:>8.2f}x {win:>17.0f} {win / base:>6.2f}x"
                    )
            rate = 200.0
            api, raw = latency(manager, rate, 2 * seconds)
            print(f"\nend-to-end latency writer -> tail reader, 1 KiB events at {rate:.0f}/s (ms)")
            print(f"{'':>8} {'p50':>7} {'p95':>7} {'p99':>7}")
            print(f"{'API':>8} {api[0]:>7.2f} {api[1]:>7.2f} {api[2]:>7.2f}")
            print(f"{'store':>8} {raw[0]:>7.2f} {raw[1]:>7.2f} {raw[2]:>7.2f}")
            print(f"{'API/store':>8} {api[0] / raw[0]:>6.2f}x {api[1] / raw[1]:>6.2f}x {api[2] / raw[2]:>6.2f}x")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
