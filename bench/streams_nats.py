"""The stream API on four engines in one run: embedded, our server, JetStream (1 node, 3 replicas).

Every system is driven through the same ``xtremehub.streams`` client code (``StreamManager``,
``EventStreamWriter``); only the two contracts underneath change:
  * embedded: ``StreamManager.embedded`` (WAL fsync before the ack, group commit);
  * server: ``python -m xtremehub.streams.server`` on 127.0.0.1, ``StreamManager("tcp://...")``;
  * jetstream-1: one ``nats-server -js`` node, ``StreamManager("nats://...?replicas=1")``;
  * jetstream-3: three clustered nodes, streams replicated 3 times (Raft quorum before the ack).

Loads (the existing stream benchmarks, bench/streams_server.py):
  * durable 1 KiB writes, 1 and 4 writers, each keeping up to WINDOW events in flight;
  * video: 3 streams x 30 frames/s x 500 KB, one synchronous writer per stream, ack latency.

Each run measures every system; ``--runs`` runs (default 3) give the median and the spread.
nats-server comes from Debian (``apt-get install -y nats-server``). Usage:
    .venv/bin/python bench/streams_nats.py             # 3 runs, 3 s cells, 6 s of video
    .venv/bin/python bench/streams_nats.py --quick     # 1 run, shorter cells
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams_server import FPS, FRAME, STREAMS, WINDOW, Paced, ours_server, percentiles
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.testing.jetstream import JetStreamCluster

WRITERS = (1, 4)
SIZE = 1024
SEGMENTS = 4
SYSTEMS = ("embedded", "server", "jetstream-1", "jetstream-3")


@contextmanager
def open_system(name: str, tmp: Path) -> Iterator[StreamManager]:
    """A fresh StreamManager on ``name``'s engine, everything under ``tmp``."""
    with ExitStack() as stack:
        if name == "embedded":
            manager = StreamManager.embedded(tmp / "data", maintenance_interval=3600)
        elif name == "server":
            manager = StreamManager(stack.enter_context(ours_server(tmp)))
        else:
            nodes = 1 if name == "jetstream-1" else 3
            cluster = stack.enter_context(JetStreamCluster(tmp / "nats", nodes=nodes))
            manager = StreamManager(f"{cluster.url}?namespace=bench&replicas={nodes}")
        with manager:
            manager.create_scope("bench")
            yield manager


class Load:
    """The two loads on one manager."""

    def __init__(self, manager: StreamManager) -> None:
        self.manager = manager
        self.n = 0

    def _stream(self, segments: int) -> str:
        self.n += 1
        self.manager.create_stream("bench", f"s{self.n}", scaling_policy=ScalingPolicy.fixed(segments))
        return f"s{self.n}"

    def throughput(self, writers: int, seconds: float) -> float:
        stream = self._stream(SEGMENTS)
        payload = b"x" * SIZE
        counts = [0] * writers

        def body(i: int) -> None:
            with self.manager.create_writer("bench", stream, max_in_flight=WINDOW) as w:
                count, stop = 0, time.perf_counter() + seconds
                while time.perf_counter() < stop:
                    w.write_event(payload, routing_key=f"k{i}-{count % 16}")
                    count += 1
                w.flush()
                counts[i] = count

        start = time.perf_counter()
        threads = [threading.Thread(target=body, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.perf_counter() - start)

    def video(self, seconds: float) -> list[float]:
        streams = [self._stream(1) for _ in range(STREAMS)]
        writers = [self.manager.create_writer("bench", s) for s in streams]
        frame = os.urandom(FRAME)
        try:
            return Paced.run(STREAMS, seconds, lambda s, i: writers[s].write_event(frame).result)
        finally:
            for w in writers:
                w.close()


def one_run(base: Path, cell: float, video_seconds: float) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name in SYSTEMS:
        tmp = base / name
        tmp.mkdir(parents=True)
        with open_system(name, tmp) as manager:
            load = Load(manager)
            row: dict[str, float] = {}
            for writers in WRITERS:
                row[f"w{writers}"] = load.throughput(writers, cell)
            p50, p95, p99 = percentiles(load.video(video_seconds))
            row.update(p50=p50, p95=p95, p99=p99)
        shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"   {name:<12} 1 KiB x1 {row['w1']:>8.0f} ev/s  x4 {row['w4']:>8.0f} ev/s  "
            f"video ack p50/p95/p99 {p50:6.2f} / {p95:6.2f} / {p99:6.2f} ms",
            flush=True,
        )
        results[name] = row
    return results


def summary(runs: list[dict[str, dict[str, float]]]) -> None:
    def cell(name: str, key: str, digits: int = 0) -> str:
        values = [r[name][key] for r in runs]
        med = statistics.median(values)
        return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    def ratio(name: str, key: str, base: str) -> str:
        values = [r[name][key] / r[base][key] for r in runs]
        return f"{statistics.median(values):.2f}x"

    print(f"\nmedian (min-max) of {len(runs)} run(s); ratios are medians of same-run ratios")
    print("\n| system | 1 KiB x1 ev/s | 1 KiB x4 ev/s | x4 vs embedded | x4 vs server |")
    print("|---|---:|---:|---:|---:|")
    for name in SYSTEMS:
        print(
            f"| {name} | {cell(name, 'w1')} | {cell(name, 'w4')} | {ratio(name, 'w4', 'embedded')} "
            f"| {ratio(name, 'w4', 'server')} |"
        )
    print(f"\n| video ack (ms), {STREAMS} x {FPS} fps x {FRAME // 1000} KB | p50 | p95 | p99 | p95 vs server |")
    print("|---|---:|---:|---:|---:|")
    for name in SYSTEMS:
        print(
            f"| {name} | {cell(name, 'p50', 2)} | {cell(name, 'p95', 2)} | {cell(name, 'p99', 2)} "
            f"| {ratio(name, 'p95', 'server')} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of short cells")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    cell, video_seconds = (1.5, 3.0) if args.quick else (3.0, 6.0)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {runs} run(s), window {WINDOW}")
    base = Path(tempfile.mkdtemp(prefix="nats-bench-", dir="/tmp"))
    results: list[dict[str, dict[str, float]]] = []
    try:
        for i in range(runs):
            print(f"-- run {i + 1}", flush=True)
            results.append(one_run(base / f"run{i}", cell, video_seconds))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    summary(results)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
