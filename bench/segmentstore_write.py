"""Segment store: durable append throughput and ack latency, against plain-file baselines in one run.

Every append is durable when it returns (fsync'd), for ours and the baselines alike:
  * naive:   each writer thread ``open(path, 'ab')`` + ``write`` + ``os.fsync`` per append
  * batched: writers hand appends to one thread that writes everything queued and fsyncs once
             (the simplest group commit: no checksums, no index, no dedup, no tiering)
  * ours:    ``SegmentStore.append`` (checksummed WAL records, group commit, tail cache,
             writer dedup; tiering to a local-directory LTS runs in the background)

1. Throughput: 1 KiB and 100 KiB events, 1, 4 and 16 writer threads (one segment per writer).
2. Ack latency at a video-like load: S streams of 30 fps frames of ~500 KB (about 15 MB/s per
   stream), one paced writer thread per stream; p50/p95/p99 of the time an append takes.
3. LTS-outage buffering: with LTS unreachable, one 15 MB/s stream ingests until back pressure;
   seconds of ingestion with the memory budget only vs memory + disk budget (the seed platform
   reports 77 s vs 292 s, 3.8x, for M = 1.5 GB and D = 5 GB; here M and D are scaled down 100x).

Run:  .venv/bin/python bench/segmentstore_write.py [--quick] [--dir /tmp/segstore-bench]
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from xtremehub.errors import BackPressure
from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig

KiB = 1024
MB = 1_000_000
NAMES = ("naive", "batched", "ours", "ours-wal")


class Naive:
    """One file per writer; write + fsync per append."""

    name = "naive"

    def __init__(self, root: Path, writers: int) -> None:
        self.files = [open(root / f"naive-{i}.log", "ab") for i in range(writers)]  # noqa: SIM115

    def append(self, writer: int, data: bytes) -> None:
        fh = self.files[writer]
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        for fh in self.files:
            fh.close()


class Batched:
    """One file; a committer thread writes all queued appends and fsyncs once per batch."""

    name = "batched"

    def __init__(self, root: Path, writers: int) -> None:
        self.fh = open(root / "batched.log", "ab")  # noqa: SIM115
        self.queue: queue.SimpleQueue[tuple[bytes, Future[None]] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (item := self.queue.get()) is not None:
            batch = [item]
            while True:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                batch.append(nxt)
            self.fh.write(b"".join(data for data, _ in batch))
            self.fh.flush()
            os.fsync(self.fh.fileno())
            for _, future in batch:
                future.set_result(None)

    def append(self, writer: int, data: bytes) -> None:
        future: Future[None] = Future()
        self.queue.put((data, future))
        future.result()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.fh.close()


class Ours:
    """The segment store, one segment per writer; tiering to a local-directory LTS on the same disk."""

    name = "ours"
    tiering_interval = 1.0

    def __init__(self, root: Path, writers: int) -> None:
        config = SegmentStoreConfig(
            data_dir=root / "store", memory_budget=512 * 1024 * 1024, tiering_interval=self.tiering_interval
        )
        self.store = SegmentStore(config)
        self.segments = [f"bench/stream/{i}" for i in range(writers)]
        for name in self.segments:
            self.store.create_segment(name)

    def append(self, writer: int, data: bytes) -> None:
        self.store.append(self.segments[writer], data)

    def close(self) -> None:
        self.store.close()


class OursWalOnly(Ours):
    """The segment store with tiering deferred past the run: the WAL path alone."""

    name = "ours-wal"
    tiering_interval = 3600.0


Target = Callable[[Path, int], Naive | Batched | Ours]
TARGETS: list[Target] = [Naive, Batched, Ours, OursWalOnly]


def _fresh(base: Path) -> Path:
    root = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    return root


def throughput(base: Path, target: Target, size: int, writers: int, seconds: float) -> float:
    """Durable appends per second with ``writers`` threads appending ``size``-byte events."""
    root = _fresh(base)
    sink = target(root, writers)
    payload = os.urandom(size)
    counts = [0] * writers
    stop = time.monotonic() + seconds

    def work(w: int) -> None:
        n = 0
        while time.monotonic() < stop:
            sink.append(w, payload)
            n += 1
        counts[w] = n

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    sink.close()
    shutil.rmtree(root, ignore_errors=True)
    return sum(counts) / elapsed


def video_latency(base: Path, target: Target, streams: int, seconds: float, frame: int = 500_000) -> list[float]:
    """Ack latencies (ms) of 30 fps frames on ``streams`` paced streams."""
    root = _fresh(base)
    sink = target(root, streams)
    payload = os.urandom(frame)
    latencies: list[list[float]] = [[] for _ in range(streams)]
    start = time.monotonic() + 0.05

    def work(s: int) -> None:
        period = 1 / 30
        due = start + s * period / streams  # streams out of phase, like independent cameras
        end = start + seconds
        while due < end:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            sink.append(s, payload)
            latencies[s].append((time.perf_counter() - t0) * 1000)
            due += period

    threads = [threading.Thread(target=work, args=(s,)) for s in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    shutil.rmtree(root, ignore_errors=True)
    return [x for per in latencies for x in per]


def outage_buffering(base: Path, memory: int, disk: int, limit: float) -> float:
    """Seconds a paced 15 MB/s stream (30 fps x 500 KB) ingests while LTS is unreachable."""
    root = _fresh(base)
    (root / "no-lts").write_bytes(b"")  # a file where the LTS directory should be: every tiering attempt fails
    config = SegmentStoreConfig(
        data_dir=root / "store",
        lts_url=str(root / "no-lts" / "lts"),
        memory_budget=memory,
        disk_budget=disk,
        lts_retry_initial=0.05,
        lts_retry_max=0.2,
    )
    payload = os.urandom(500_000)
    with SegmentStore(config) as store:
        store.create_segment("video")
        started = due = last_ok = time.monotonic()
        try:
            while last_ok - started < limit:
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                store.append("video", payload, timeout=0.5)
                last_ok = time.monotonic()
                due += 1 / 30
        except BackPressure:
            pass
        elapsed = last_ok - started  # until the last accepted frame (not counting the refused one's wait)
    shutil.rmtree(root, ignore_errors=True)
    return elapsed


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute in all)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/segstore-bench"), help="scratch directory (local disk)")
    parser.add_argument("--skip-throughput", action="store_true", help="only the latency and outage parts")
    parser.add_argument("--streams", type=int, nargs="+", default=None, help="video streams (default 2 4, quick: 4)")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 5.0
    video_seconds = 4.0 if args.quick else 15.0
    streams_list = args.streams or ([4] if args.quick else [2, 4])
    args.dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="segstore-bench-", dir=args.dir))
    print(f"scratch: {base}  (cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f})")
    try:
        print("\n## durable append throughput (events/s, MB/s)\n")
        header = ["event", "writers", *NAMES, "ours/naive", "ours/batched"]
        print("| " + " | ".join(header) + " |")
        print("|---|---:|" + "---:|" * (len(header) - 2))
        for size in () if args.skip_throughput else (1 * KiB, 100 * KiB):
            for writers in (1, 4, 16):
                rates = {t.name: throughput(base, t, size, writers, seconds) for t in TARGETS}  # type: ignore[attr-defined]
                cells = [f"{rates[n]:,.0f} ({rates[n] * size / MB:,.1f} MB/s)" for n in NAMES]
                print(
                    f"| {size // KiB} KiB | {writers} | {' | '.join(cells)} | "
                    f"{rates['ours'] / rates['naive']:.2f}x | {rates['ours'] / rates['batched']:.2f}x |",
                    flush=True,
                )
        for streams in streams_list:
            print(f"\n## ack latency, {streams} video streams x 30 fps x 500 KB (~{streams * 15} MB/s), ms\n")
            print("| writer | frames | p50 | p95 | p99 | max |")
            print("|---|---:|---:|---:|---:|---:|")
            p95 = {}
            for target in TARGETS:
                lat = video_latency(base, target, streams, video_seconds)
                name = target.name  # type: ignore[attr-defined]
                p95[name] = percentile(lat, 95)
                print(
                    f"| {name} | {len(lat)} | {percentile(lat, 50):.2f} | {p95[name]:.2f} | "
                    f"{percentile(lat, 99):.2f} | {max(lat):.2f} |",
                    flush=True,
                )
            ratios = ", ".join(
                f"{n}/{b} {p95[n] / p95[b]:.2f}x" for n in ("ours", "ours-wal") for b in ("naive", "batched")
            )
            print(f"\np95 ratios: {ratios}")
        memory, disk = 15 * MB, 50 * MB
        print(f"\n## LTS outage at 15 MB/s: seconds until back pressure (M = {memory // MB} MB, D = {disk // MB} MB)\n")
        mem_only = outage_buffering(base, memory, 0, 60)
        mem_disk = outage_buffering(base, memory, disk, 60)
        print("| budgets | seconds of ingestion | expected (budget / rate) |")
        print("|---|---:|---:|")
        print(f"| memory only | {mem_only:.1f} | {memory / 15e6:.1f} |")
        print(f"| memory + disk | {mem_disk:.1f} | {(memory + disk) / 15e6:.1f} |")
        print(f"\nratio memory+disk / memory only: {mem_disk / mem_only:.2f}x (seed platform: 3.8x)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
